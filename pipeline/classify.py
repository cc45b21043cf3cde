"""scikit-learn models: co-creation detector, sector and type labellers; train, predict, persist.

Each model sees two feature groups: TF-IDF over lemmas (unigrams and bigrams) and the rule
evidence of nlp.py (construction, participant and organisation counts, sentence scores). Models are
saved with skops, which refuses to load any type outside scikit-learn, NumPy and SciPy, so a
model file cannot run code; a JSON card beside it records data, metrics and versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler

from pipeline.codebook import load_codebook
from pipeline.errors import ModelError  # re-exported: callers import it from here
from pipeline.modelfile import load_parts, save_parts
from pipeline.nlp import Analysis

log = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "radar"
# skops already trusts plain estimators; these are the exact other types our trained models hold
# (tests/test_modelfile.py derives them by training). Never a prefix: skops can call any trusted
# function with stored arguments while loading (numpy.testing's runstring runs code).
TRUSTED_TYPES = frozenset({
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
})
RECALL_TARGET = 0.9  # the flag queue favours recall: what the detector misses is lost


@dataclass
class Example:
    """One labelled text: real (dev), written for training, or an analyst's review."""

    id: str
    title: str
    text: str
    cocreation: bool
    sector: str | None = None
    type: str | None = None
    origin: str = "dev"  # dev | written | review
    source: str = ""
    borderline: bool = False


@dataclass
class Prediction:
    """The detector's and labellers' output for one article."""

    cocreation_score: float
    flagged: bool
    sector: str | None
    sector_scores: dict[str, float]
    type: str | None
    type_scores: dict[str, float]


def frame(analyses: list[Analysis]) -> pd.DataFrame:
    """Return the two model inputs as a DataFrame: `lemmas` (text) and `features` (dicts)."""
    return pd.DataFrame({"lemmas": [a.lemmas for a in analyses], "features": [a.features for a in analyses]})


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
    return Pipeline([("features", features),
                     ("model", LogisticRegression(C=c, class_weight="balanced", max_iter=5000))])


def fit_detector(x: pd.DataFrame, y: np.ndarray, seed: int = 0) -> CalibratedClassifierCV:
    """Fit the co-creation detector with sigmoid calibration over internal folds."""
    folds = int(min(5, max(2, y.sum() // 4)))  # each calibration fold needs some positives
    # ensemble=False: one pipeline fitted on all data plus a calibrator fitted on out-of-fold scores,
    # so the saved model holds one vocabulary instead of one per fold.
    # C=0.2: strong regularisation; 5-fold AP on the real labels peaked at C 0.1-0.25 (0.48 at C=4).
    model = CalibratedClassifierCV(make_pipeline(c=0.2), method="sigmoid", cv=folds, ensemble=False)
    return model.fit(x, y)


def fit_labeller(x: pd.DataFrame, labels: list[str]) -> Pipeline:
    """Fit a sector or type classifier on positives only."""
    return make_pipeline(c=8.0).fit(x, np.asarray(labels))


@dataclass
class RadarModel:
    """The three models, the flag threshold and the card that describes them."""

    detector: CalibratedClassifierCV
    sector: Pipeline
    type: Pipeline
    threshold: float
    card: dict = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Return the model version recorded on its card."""
        return self.card.get("model_version", "untrained")

    def predict(self, analyses: list[Analysis]) -> list[Prediction]:
        """Score and label articles; sector and type are given for every article, used for flagged ones."""
        if not analyses:
            return []
        x = frame(analyses)
        scores = self.detector.predict_proba(x)[:, 1]
        sectors = self.sector.predict_proba(x)
        types = self.type.predict_proba(x)
        return [self._one(float(s), sp, tp) for s, sp, tp in zip(scores, sectors, types)]

    def _one(self, score: float, sector_p: np.ndarray, type_p: np.ndarray) -> Prediction:
        sector_scores = {str(k): round(float(v), 4) for k, v in zip(self.sector.classes_, sector_p)}
        type_scores = {str(k): round(float(v), 4) for k, v in zip(self.type.classes_, type_p)}
        return Prediction(
            cocreation_score=round(score, 4), flagged=score >= self.threshold,
            sector=max(sector_scores, key=sector_scores.get), sector_scores=sector_scores,
            type=max(type_scores, key=type_scores.get), type_scores=type_scores,
        )


def threshold_for_recall(scores: np.ndarray, labels: np.ndarray, target: float = RECALL_TARGET) -> float:
    """Return the highest threshold whose recall on these scores reaches the target."""
    positives = np.sort(scores[labels.astype(bool)])[::-1]
    if len(positives) == 0:
        return 0.5
    needed = int(np.ceil(target * len(positives)))
    return float(positives[needed - 1])


def data_hash(examples: list[Example]) -> str:
    """Return a hash of the training examples' ids, labels and texts."""
    digest = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: (e.origin, e.id)):
        digest.update(json.dumps([ex.origin, ex.id, ex.cocreation, ex.sector, ex.type, ex.text],
                                 ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def train_model(examples: list[Example], analyses: list[Analysis], threshold: float,
                metrics: dict | None = None) -> RadarModel:
    """Train the detector on all examples and the labellers on the positives; write the card."""
    x = frame(analyses)
    y = np.array([ex.cocreation for ex in examples], dtype=int)
    detector = fit_detector(x, y)
    # A reviewer may accept an example before choosing its sector or type; such rows train detection only.
    with_sector = [i for i in np.flatnonzero(y) if examples[i].sector]
    with_type = [i for i in np.flatnonzero(y) if examples[i].type]
    sector = fit_labeller(x.iloc[with_sector], [examples[i].sector for i in with_sector])
    type_ = fit_labeller(x.iloc[with_type], [examples[i].type for i in with_type])
    card = make_card(examples, threshold, metrics or {})
    return RadarModel(detector, sector, type_, threshold, card)


def make_card(examples: list[Example], threshold: float, metrics: dict) -> dict:
    """Describe a model: data hashes and counts, labels, codebook, metrics, library versions."""
    import sklearn
    import spacy
    import simplemma
    codebook = load_codebook()
    digest = data_hash(examples)
    counts: dict[str, dict[str, int]] = {}
    for ex in examples:
        bucket = counts.setdefault(ex.origin, {"texts": 0, "positives": 0})
        bucket["texts"] += 1
        bucket["positives"] += int(ex.cocreation)
    now = datetime.now(timezone.utc)
    # The version changes with the data, the lexicon (the evidence features) and the model's definition.
    spec = hashlib.sha256(f"{digest}{lexicon_digest()}{make_pipeline(0.0)!r}{RECALL_TARGET}".encode()).hexdigest()
    return {
        "model_version": f"{now:%Y%m%d}-{spec[:8]}",
        "trained_at": now.isoformat(timespec="seconds"),
        "codebook_version": codebook.version,
        "labels": {"sector": list(codebook.sectors), "type": list(codebook.types)},
        "threshold": round(threshold, 4),
        "threshold_policy": f"highest threshold with recall >= {RECALL_TARGET} on out-of-fold scores",
        "lexicon_sha256": lexicon_digest(),
        "training_data": {"sha256": digest, "counts": counts,
                          "ids": sorted(f"{ex.origin}:{ex.id}" for ex in examples)},
        "metrics": metrics,
        "libraries": {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                      "spacy": spacy.__version__, "simplemma": simplemma.__version__,
                      "skops": __import__("skops").__version__},
    }


def lexicon_digest() -> str:
    """Return a hash of the lexicon files the evidence features come from."""
    from pipeline.nlp import LEXICON_DIR
    digest = hashlib.sha256()
    for path in sorted(LEXICON_DIR.glob("*.toml")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def save_model(model: RadarModel, directory: Path = MODEL_DIR, extra_files: dict[str, str] | None = None) -> Path:
    """Write model.skops, card.json (with the file's SHA-256), card.md and extra files as one directory."""
    parts = {"detector": model.detector, "sector": model.sector, "type": model.type, "threshold": model.threshold}
    return save_parts(parts, directory, model.card, extra_files, card_markdown)


def load_model(directory: Path = MODEL_DIR) -> RadarModel:
    """Load a saved model, refusing a changed file, types outside TRUSTED_TYPES and another codebook's card."""
    parts, card = load_parts(directory, TRUSTED_TYPES)
    return RadarModel(parts["detector"], parts["sector"], parts["type"], float(parts["threshold"]), card)


def card_markdown(card: dict) -> str:
    """Render a model card as short Markdown."""
    lines = [f"# Model card: cocreatie-radar {card['model_version']}", "",
             f"- Trained: {card['trained_at']}", f"- Codebook version: {card['codebook_version']}",
             f"- Flag threshold: {card['threshold']} ({card['threshold_policy']})",
             f"- Training data sha256: `{card['training_data']['sha256']}`", "", "## Training data", "",
             "| origin | texts | positives |", "|---|---|---|"]
    lines += [f"| {k} | {v['texts']} | {v['positives']} |" for k, v in card["training_data"]["counts"].items()]
    lines += ["", "Texts of origin `written` were written by the project for training; they never count in an "
              "evaluation.", "", "## Metrics (cross-validated on real texts only)", "", "```json",
              json.dumps(card.get("metrics", {}), indent=2, ensure_ascii=False), "```", "", "## Libraries", ""]
    lines += [f"- {k} {v}" for k, v in card["libraries"].items()]
    return "\n".join(lines) + "\n"
