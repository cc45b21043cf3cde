"""The estimator every model of the radar starts from: hashed lemma n-grams and lexicon features, logistic regression.

The detector (classify) and the sector and type labellers (labellers) both build on it; it lives here, below both,
so that neither imports the other for it.
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler


def make_pipeline(c: float) -> Pipeline:
    """Return an untrained text + evidence logistic-regression pipeline."""
    # Hashed n-grams instead of a vocabulary: skops stores a 50k-term vocabulary as 10 MB, and a
    # stateless hasher also lets Dask workers vectorise archives without sharing a vocabulary.
    text = Pipeline([("hash", HashingVectorizer(ngram_range=(1, 2), n_features=2**18, alternate_sign=False,
                                                norm=None)),
                     ("tfidf", TfidfTransformer(sublinear_tf=True))])
    features = ColumnTransformer([
        ("text", text, "lemmas"),
        ("evidence", Pipeline([("dict", DictVectorizer()), ("scale", MaxAbsScaler())]), "features"),
    ])
    # liblinear's dual solver: many more features than rows, and 5-30x faster than lbfgs here.
    return Pipeline([("features", features),
                     ("model", LogisticRegression(C=c, class_weight="balanced", solver="liblinear", dual=True,
                                                  max_iter=5000))])
