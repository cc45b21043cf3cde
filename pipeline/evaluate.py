"""Labelled data, cross-validated evaluation, metrics and the keyword baseline.

Only real texts are ever scored: texts written for training join the training folds and nothing
else, and the flag threshold of each fold is chosen on that fold's training part (nested), so the
reported figures are never measured on texts a model or threshold was fitted to.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix
from sklearn.model_selection import StratifiedKFold

from pipeline.classify import Example, fit_detector, fit_labeller, frame, threshold_for_recall
from pipeline.errors import ConfigError
from pipeline.nlp import Analysis

log = logging.getLogger(__name__)

WRITTEN_PATH = Path(__file__).resolve().parents[1] / "data" / "training" / "written.jsonl"
# The alert a newcomer would set up: the obvious words. Measured on the real dev labels it finds
# about half the cases and most of what it flags is wrong (see the issue text and `radar eval`).
KEYWORDS = re.compile(
    r"\b(participatie\w*|inspraak\w*|co-?creatie|cocreatie|meedenk\w*|denken? mee|meebeslis\w*|burgerberaad|"
    r"burgerpanel|klankbordgroep|samen met (de )?(bewoners|inwoners|buurtbewoners|patiënten|ouders|leerlingen)|"
    r"betrokken bij|bewonersavond|zelfbouw\w*)\b", re.IGNORECASE)


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL file into dicts; a bad line is a ConfigError that names it (labels must be whole)."""
    from pipeline.ingest import read_jsonl as read_lines
    rows = []
    for _number, record in read_lines(path):
        if isinstance(record, str):
            raise ConfigError(f"{path} {record}")
        rows.append(record)
    return rows


def load_labelled(articles: Path, labels: Path, origin: str = "dev") -> list[Example]:
    """Join an articles file and a labels file on `id`; texts without a body are left out."""
    texts = {str(r["id"]): r for r in read_jsonl(articles)}
    examples = []
    for label in read_jsonl(labels):
        article = texts.get(str(label["id"]))
        if article is None or not (article.get("text") or "").strip():
            continue
        examples.append(Example(
            id=str(label["id"]), title=article.get("title") or "", text=article["text"],
            cocreation=bool(label["cocreation"]), sector=label.get("sector"), type=label.get("type"),
            origin=origin, source=(article.get("source") or "").split(":")[0], borderline=bool(label.get("borderline")),
        ))
    return examples


def load_written(path: Path = WRITTEN_PATH) -> list[Example]:
    """Load the texts the project wrote for training (never used to evaluate)."""
    if not path.exists():
        return []
    return [Example(id=str(r["id"]), title=r.get("title", ""), text=r["text"], cocreation=bool(r["cocreation"]),
                    sector=r.get("sector"), type=r.get("type"), origin="written", source="written")
            for r in read_jsonl(path)]


def keyword_flags(texts: Iterable[str]) -> np.ndarray:
    """Return the keyword baseline's flags (1 when any obvious co-creation word occurs)."""
    return np.array([int(bool(KEYWORDS.search(t))) for t in texts])


def detection_metrics(scores: np.ndarray, labels: np.ndarray, flags: np.ndarray) -> dict:
    """Return precision, recall, F1 at the flags, average precision and precision@k."""
    labels = labels.astype(int)
    tp = int(((flags == 1) & (labels == 1)).sum())
    precision = tp / flags.sum() if flags.sum() else 0.0
    recall = tp / labels.sum() if labels.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    order = np.argsort(-scores, kind="stable")
    result = {"texts": int(len(labels)), "positives": int(labels.sum()), "flagged": int(flags.sum()),
              "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
              "average_precision": round(float(average_precision_score(labels, scores)), 4) if labels.sum() else None}
    for k in (10, 20, 50):
        result[f"precision_at_{k}"] = round(float(labels[order[:k]].mean()), 4) if len(labels) >= k else None
    return result


def label_metrics(gold: list[str], predicted: list[str], classes: Iterable[str]) -> dict:
    """Return accuracy and a confusion matrix (rows gold, columns predicted)."""
    classes = [c for c in classes if c in set(gold) | set(predicted)]
    if not gold:
        return {"accuracy": None, "n": 0}
    matrix = confusion_matrix(gold, predicted, labels=classes)
    return {"accuracy": round(float(np.mean(np.array(gold) == np.array(predicted))), 4), "n": len(gold),
            "labels": classes, "confusion": matrix.tolist()}


def _fold_threshold(train_real: list[int], y: np.ndarray, fit: Callable, seed: int) -> float:
    """Choose a threshold on out-of-fold scores inside the training part only (nested CV)."""
    inner = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    scores = np.zeros(len(train_real))
    idx = np.array(train_real)
    for inner_train, inner_test in inner.split(idx, y[idx]):
        model = fit(list(idx[inner_train]))
        scores[inner_test] = model(list(idx[inner_test]))
    return threshold_for_recall(scores, y[idx])


def cross_validate(real: list[Example], real_analyses: list[Analysis], extra: list[Example],
                   extra_analyses: list[Analysis], folds: int = 5, seed: int = 13,
                   progress: Callable[[], None] | None = None) -> dict:
    """Cross-validate detection, sector and type on the real examples; extra ones only train."""
    y = np.array([e.cocreation for e in real], dtype=int)
    y_extra = np.array([e.cocreation for e in extra], dtype=int)
    x_real, x_extra = frame(real_analyses), frame(extra_analyses)

    def fit(train_idx: list[int]):
        import pandas as pd
        x = pd.concat([x_real.iloc[train_idx], x_extra], ignore_index=True)
        model = fit_detector(x, np.concatenate([y[train_idx], y_extra]), seed)
        return lambda idx: model.predict_proba(x_real.iloc[idx])[:, 1]

    scores, flags = np.zeros(len(real)), np.zeros(len(real), dtype=int)
    sectors: dict[int, str] = {}
    types: dict[int, str] = {}
    thresholds = []
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in outer.split(np.zeros(len(y)), y):
        threshold = _fold_threshold(list(train_idx), y, fit, seed)
        scores[test_idx] = fit(list(train_idx))(list(test_idx))
        flags[test_idx] = (scores[test_idx] >= threshold).astype(int)
        thresholds.append(round(threshold, 4))
        _predict_labels(real, x_real, extra, x_extra, train_idx, test_idx, sectors, types)
        if progress:
            progress()
    return summarise_cv(real, y, scores, flags, sectors, types, thresholds)


def _predict_labels(real, x_real, extra, x_extra, train_idx, test_idx, sectors, types) -> None:
    import pandas as pd
    pos_train = [i for i in train_idx if real[i].cocreation and real[i].sector and real[i].type]
    pos_extra = [i for i, e in enumerate(extra) if e.cocreation and e.sector and e.type]
    pos_test = [i for i in test_idx if real[i].cocreation and real[i].sector and real[i].type]
    if not pos_test:
        return
    x = pd.concat([x_real.iloc[pos_train], x_extra.iloc[pos_extra]], ignore_index=True)
    for attr, out in (("sector", sectors), ("type", types)):
        labels = [getattr(real[i], attr) for i in pos_train] + [getattr(extra[i], attr) for i in pos_extra]
        model = fit_labeller(x, labels)
        for i, label in zip(pos_test, model.predict(x_real.iloc[pos_test])):
            out[i] = str(label)


def summarise_cv(real: list[Example], y: np.ndarray, scores: np.ndarray, flags: np.ndarray,
                 sectors: dict[int, str], types: dict[int, str], thresholds: list[float]) -> dict:
    """Return overall and per-source metrics, label accuracy and the keyword baseline."""
    from pipeline.codebook import load_codebook
    codebook = load_codebook()
    keywords = keyword_flags(f"{e.title}\n{e.text}" for e in real)
    result = {"folds_thresholds": thresholds, "overall": detection_metrics(scores, y, flags),
              "keyword_baseline": detection_metrics(keywords.astype(float), y, keywords), "by_source": {}}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(real):
        groups[ex.source].append(i)
    for source, idx in sorted(groups.items()):
        idx_arr = np.array(idx)
        result["by_source"][source] = {
            "model": detection_metrics(scores[idx_arr], y[idx_arr], flags[idx_arr]),
            "keyword_baseline": detection_metrics(keywords[idx_arr].astype(float), y[idx_arr], keywords[idx_arr]),
        }
    gold_pos = sorted(sectors)
    result["sector"] = label_metrics([real[i].sector for i in gold_pos], [sectors[i] for i in gold_pos], codebook.sectors)
    result["type"] = label_metrics([real[i].type for i in gold_pos], [types[i] for i in gold_pos], codebook.types)
    result["oof_scores"] = {real[i].id: round(float(s), 4) for i, s in enumerate(scores)}
    result["oof"] = [{"id": e.id, "source": e.source, "borderline": e.borderline, "cocreation": e.cocreation,
                      "score": round(float(scores[i]), 4), "flagged": bool(flags[i]), "sector": e.sector,
                      "predicted_sector": sectors.get(i), "type": e.type, "predicted_type": types.get(i)}
                     for i, e in enumerate(real)]
    return result


def evaluate_model(articles: Path, labels: Path, model_dir: Path) -> dict:
    """Score labelled texts with a saved model and return detection, sector and type metrics."""
    from pipeline.codebook import load_codebook
    from pipeline.score import Scorer

    examples = load_labelled(articles, labels, origin="eval")
    if not examples:
        raise ConfigError(f"no labelled texts found: no id in {labels} matches a text in {articles}")
    scorer = Scorer.load(model_dir)
    results = scorer.score([{"id": e.id, "title": e.title, "text": e.text} for e in examples])
    y = np.array([e.cocreation for e in examples], dtype=int)
    scores = np.array([r["cocreation_score"] for r in results])
    flags = np.array([int(r["flagged"]) for r in results])
    codebook = load_codebook()
    trained_ids = {i.split(":", 1)[1] for i in scorer.model.card.get("training_data", {}).get("ids", [])}
    result = {"model_version": scorer.model.version, "threshold": scorer.model.threshold,
              "seen_in_training": sum(e.id in trained_ids for e in examples),
              "overall": detection_metrics(scores, y, flags), "by_source": {}}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.source or "unknown"].append(i)
    for source, idx in sorted(groups.items()):
        arr = np.array(idx)
        result["by_source"][source] = detection_metrics(scores[arr], y[arr], flags[arr])
    positives = [i for i, e in enumerate(examples) if e.cocreation]
    result["sector"] = label_metrics([examples[i].sector for i in positives], [results[i]["sector"] for i in positives],
                                     codebook.sectors)
    result["type"] = label_metrics([examples[i].type for i in positives], [results[i]["type"] for i in positives],
                                   codebook.types)
    return result
