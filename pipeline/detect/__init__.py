"""Finding co-creation in a text: the Dutch NLP, passages, the models and their labellers, scoring, training, evaluation.

May import the shared modules, the store and ingest (the JSONL records and extraction training reads).
"""
