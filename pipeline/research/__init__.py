"""The reviewed collection as data: the notebook DataFrame (load_dataset, score_texts) and the dataset export.

May import the shared modules, the store and detect.
"""
