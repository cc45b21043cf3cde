"""What readers see and send: the published collection (pages, Atom feeds), the digest, submissions, the live app.

May import the shared modules, the store, ingest (to fetch a submitted link), research and review (its server).
"""
