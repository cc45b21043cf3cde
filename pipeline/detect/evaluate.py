"""Labelled data, cross-validated evaluation, metrics and the keyword baseline.

Only real texts are ever scored: texts written for training join the training folds and nothing
else, and the flag threshold of each fold is chosen on that fold's training part (nested), so the
reported figures are never measured on texts a model or threshold was fitted to.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix

from pipeline.detect.classify import Example, threshold_for_recall
from pipeline.errors import ConfigError
from pipeline.detect.nlp import Analysis
from pipeline.detect.crossval import source_group
from pipeline.resources import WRITTEN_FILE

log = logging.getLogger(__name__)

WRITTEN_PATH = WRITTEN_FILE
# The alert a newcomer would set up: the obvious words. Measured on the real dev labels it finds
# about half the cases and most of what it flags is wrong (see the issue text and `radar eval`).
KEYWORDS = re.compile(
    r"\b(participatie\w*|inspraak\w*|co-?creatie|cocreatie|meedenk\w*|denken? mee|meebeslis\w*|burgerberaad|"
    r"burgerpanel|klankbordgroep|samen met (de )?(bewoners|inwoners|buurtbewoners|patiënten|ouders|leerlingen)|"
    r"betrokken bij|bewonersavond|zelfbouw\w*)\b", re.IGNORECASE)


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL file into dicts; a bad line is a ConfigError that names it (labels must be whole)."""
    from pipeline.ingest.jsonl import read_jsonl as read_lines
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
            evidence=label.get("evidence") or None, kind=article.get("kind") or "",
            group=source_group((article.get("source") or "").split(":")[0], article.get("outlet")),
        ))
    return examples


def load_written(path: Path = WRITTEN_PATH) -> list[Example]:
    """Load the texts the project wrote for training (never used to evaluate)."""
    if not path.exists():
        return []
    return [Example(id=str(r["id"]), title=r.get("title", ""), text=r["text"], cocreation=bool(r["cocreation"]),
                    sector=r.get("sector"), type=r.get("type"), origin="written", source="written",
                    evidence=r.get("evidence") or None)
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


def cross_validate(real: list[Example], real_analyses: list[Analysis], extra: list[Example],
                   extra_analyses: list[Analysis], folds: int = 10, random_folds: int = 5,
                   progress: Callable[[], None] | None = None) -> dict:
    """Cross-validate on the real examples, grouped by source and in random folds; extra ones only train.

    Returns both summaries, the out-of-fold rows and, from the grouped run, the calibration the final
    model uses (calibrator, threshold on clear positives, label confidences).
    """
    from pipeline.detect.crossval import Trainer, cross_validate_folds
    trainer = Trainer(real, real_analyses, extra, extra_analyses)
    grouped = cross_validate_folds(trainer, grouped=True, folds=folds, progress=progress)
    result = {"grouped": summarise_cv(real, grouped), "calibration": final_calibration(real, grouped),
              "oof": oof_rows(real, grouped)}
    if random_folds:  # random folds only to show how much they flatter; the quality gate skips them
        result["random"] = summarise_cv(real, cross_validate_folds(trainer, grouped=False, folds=random_folds,
                                                                   progress=progress))
    return result


def final_calibration(real: list[Example], result) -> dict:
    """Fit the calibrator, flag threshold and label confidences on grouped out-of-fold outputs."""
    from pipeline.detect.classify import fit_calibrator
    from pipeline.detect.labellers import confidence_for_accuracy
    from pipeline.detect.crossval import clear_positives
    y = np.array([e.cocreation for e in real], dtype=int)
    calibrator = fit_calibrator(result.raw, y)
    probability = calibrator.predict_proba(result.raw.reshape(-1, 1))[:, 1]
    confidence = {}
    for attr, found in result.labels.items():
        items = sorted(found.items())
        confidence[attr] = round(confidence_for_accuracy([p for _, (_, p) in items],
                                                         [label == getattr(real[i], attr) for i, (label, _) in items]), 4)
    return {"calibrator": calibrator, "label_confidence": confidence,
            "threshold": threshold_for_recall(probability, clear_positives(real).astype(int))}


def summarise_cv(real: list[Example], result) -> dict:
    """Return detection at the threshold, per source, DPG news, labels against the majority, evidence overlap."""
    from pipeline.codebook import load_codebook
    codebook = load_codebook()
    y = np.array([e.cocreation for e in real], dtype=int)
    keywords = keyword_flags(f"{e.title}\n{e.text}" for e in real)
    summary = {"folds_thresholds": result.thresholds,
               "overall": detection_summary(real, result.probability, result.flags),
               "keyword_baseline": detection_summary(real, keywords.astype(float), keywords),
               "by_source": {}}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(real):
        groups[ex.source].append(i)
    for source, idx in sorted(groups.items()):
        arr = np.array(idx)
        summary["by_source"][source] = detection_metrics(result.probability[arr], y[arr], result.flags[arr])
    dpg = np.array([i for i, e in enumerate(real) if e.source.startswith("dpgmedia")], dtype=int)
    if len(dpg):
        summary["dpg_news"] = detection_metrics(result.probability[dpg], y[dpg], result.flags[dpg])
    for attr, classes in (("sector", codebook.sectors), ("type", codebook.types)):
        summary[attr] = label_summary(real, attr, result.labels[attr], classes)
    summary["evidence_overlap"] = evidence_overlap(real, result.highlighted)
    return summary


def detection_summary(real: list[Example], scores: np.ndarray, flags: np.ndarray) -> dict:
    """Return detection metrics plus recall on clear and borderline positives and the news flag rate."""
    y = np.array([e.cocreation for e in real], dtype=int)
    result = detection_metrics(scores, y, flags)
    clear = np.array([e.cocreation and not e.borderline for e in real])
    border = np.array([e.cocreation and e.borderline for e in real])
    news = np.array([e.kind == "news" for e in real])
    result["recall_clear"] = round(float(flags[clear].mean()), 4) if clear.any() else None
    result["recall_borderline"] = round(float(flags[border].mean()), 4) if border.any() else None
    result["news_texts"] = int(news.sum())
    result["news_flagged"] = int(flags[news].sum())
    result["news_flag_rate"] = round(float(flags[news].mean()), 4) if news.any() else None
    return result


def label_summary(real: list[Example], attr: str, found: dict[int, tuple[str, float]], classes) -> dict:
    """Return accuracy, macro recall and confident-suggestion figures beside the majority baseline."""
    idx = sorted(found)
    gold = [getattr(real[i], attr) for i in idx]
    predicted = [found[i][0] for i in idx]
    result = label_metrics(gold, predicted, classes)
    if not gold:
        return result
    majority = Counter(gold).most_common(1)[0][0]
    present = sorted(set(gold))
    recalls = [np.mean([p == g for g, p in zip(gold, predicted) if g == label]) for label in present]  # noqa: B905 (parallel gold and predicted labels)
    result.update({"majority_label": majority, "majority_accuracy": round(gold.count(majority) / len(gold), 4),
                   "macro_recall": round(float(np.mean(recalls)), 4),
                   "majority_macro_recall": round(1 / len(present), 4)})
    return result


def evidence_overlap(real: list[Example], highlighted: list[list[tuple[int, int]]]) -> dict:
    """Return the share of positives whose gold evidence quote overlaps a highlighted key sentence."""
    from pipeline.detect.passages import evidence_span
    hits = total = 0
    for ex, spans in zip(real, highlighted):  # noqa: B905 (parallel lists of one length by construction)
        span = evidence_span(ex.text, ex.evidence) if ex.cocreation else None
        if span is None:
            continue
        total += 1
        hits += any(start < span[1] and end > span[0] for start, end in spans)
    return {"positives_with_quote": total, "overlap": round(hits / total, 4) if total else None}


def oof_rows(real: list[Example], result) -> list[dict]:
    """Return one out-of-fold row per real text, for notebooks (cv_predictions.jsonl)."""
    rows = []
    for i, e in enumerate(real):
        sector = result.labels["sector"].get(i, (None, None))
        type_ = result.labels["type"].get(i, (None, None))
        rows.append({"id": e.id, "source": e.source, "group": e.group, "kind": e.kind, "borderline": e.borderline,
                     "cocreation": e.cocreation, "score": round(float(result.probability[i]), 4),
                     "flagged": bool(result.flags[i]), "sector": e.sector, "predicted_sector": sector[0],
                     "type": e.type, "predicted_type": type_[0]})
    return rows


def evaluate_model(articles: Path, labels: Path, model_dir: Path) -> dict:
    """Score labelled texts with a saved model and return detection, sector and type metrics."""
    from pipeline.codebook import load_codebook
    from pipeline.detect.score import Scorer

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
    result: dict[str, Any] = {"model_version": scorer.model.version, "threshold": scorer.model.threshold,
              "seen_in_training": sum(e.id in trained_ids for e in examples),
              "overall": detection_summary(examples, scores, flags), "by_source": {}}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.source or "unknown"].append(i)
    for source, idx in sorted(groups.items()):
        arr = np.array(idx)
        result["by_source"][source] = detection_metrics(scores[arr], y[arr], flags[arr])
    for attr, classes in (("sector", codebook.sectors), ("type", codebook.types)):
        found = {i: (results[i][attr], results[i][f"{attr}_scores"].get(results[i][attr], 0.0))
                 for i, e in enumerate(examples) if e.cocreation and getattr(e, attr) and results[i][attr]}
        result[attr] = label_summary(examples, attr, found, classes)
        result[attr]["confident"] = sum(results[i][f"{attr}_confident"] for i in found)
    return result
