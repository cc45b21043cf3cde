"""Cocreatie Radar: find co-creation at social organisations in Dutch news.

Importing this package has no side effects: no model is loaded, no database opened. The notebook
API is `load_dataset(...)` and `score_texts(...)`; both import their machinery on first use.
"""

__version__ = "0.1.0"
__all__ = ["load_dataset", "score_texts"]


def load_dataset(*args, **kwargs):
    """Return articles, scores, predictions, evidence and review labels as a DataFrame (see pipeline.research.dataset)."""
    from pipeline.research.dataset import load_dataset as _load
    return _load(*args, **kwargs)


def score_texts(texts):
    """Score Dutch texts with the shipped models and return a DataFrame (see pipeline.research.dataset)."""
    from pipeline.research.dataset import score_texts as _score
    return _score(texts)
