"""Getting text in: feeds, polite fetching, extraction and repairs, deduplication, JSONL files and WARC archives.

May import the shared modules at the top of the package and the store.
"""
