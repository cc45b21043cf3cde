"""Training: gather labelled texts, cross-validate on the real ones, fit the final models, save them."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.classify import Example, RadarModel, save_model, threshold_for_recall, train_model
from pipeline.evaluate import cross_validate, load_labelled, load_written
from pipeline.extract import content_hash
from pipeline.nlp import analyse

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Real labelled examples (evaluated) and extra ones (written for training, only trained on)."""

    real: list[Example]
    extra: list[Example]


def gather_examples(articles: Path | None, labels: Path | None, use_written: bool = True,
                    database_url: str | None = None) -> TrainingData:
    """Load the real labelled texts, the analysts' final reviews and, optionally, the written texts."""
    real = load_labelled(articles, labels) if articles and labels else []
    if database_url:
        # A dev text that was also ingested and reviewed must count once, or CV would test on training text.
        known = {content_hash(e.text) for e in real}
        real += [e for e in reviewed_examples(database_url) if content_hash(e.text) not in known]
    extra = load_written() if use_written else []
    return TrainingData(real, extra)


def reviewed_examples(database_url: str) -> list[Example]:
    """Return the analysts' final labels from the store as real examples (source 'review')."""
    from pipeline.store import Store

    store = Store(database_url)
    try:
        store.migrate()
        final = store.final_labels()
        texts = {a["id"]: a for a in store.articles() if a["id"] in final}
    finally:
        store.close()
    examples = []
    for article_id, label in final.items():
        article = texts.get(article_id)
        if article is None or label["cocreation"] is None:
            continue
        examples.append(Example(
            id=f"review-{article_id}", title=article["title"], text=article["text"],
            cocreation=bool(label["cocreation"]), sector=label["sector"], type=label["type"], origin="review",
            source="review", borderline=bool(label["borderline"]),
        ))
    return examples


def train_and_evaluate(data: TrainingData, model_dir: Path, folds: int = 5, progress: bool = True) -> tuple[RadarModel, dict]:
    """Cross-validate on the real examples, then fit on everything and save the model with its card."""
    if sum(e.cocreation for e in data.real + data.extra) < 4:
        raise ValueError("too few positive examples to train (need at least 4)")
    started = time.monotonic()
    real_analyses = analyse([(e.title, e.text) for e in data.real])
    extra_analyses = analyse([(e.title, e.text) for e in data.extra])
    log.info("nlp: %d texts analysed in %.1fs", len(data.real) + len(data.extra), time.monotonic() - started)
    metrics: dict = {}
    out_of_fold: list[dict] = []
    threshold = 0.5
    if sum(e.cocreation for e in data.real) >= folds:
        show = progress and sys.stderr.isatty()
        with tqdm(total=folds, desc="cross-validation", unit="fold", disable=not show) as bar:
            metrics = cross_validate(data.real, real_analyses, data.extra, extra_analyses, folds=folds,
                                     progress=lambda: bar.update(1))
        oof = metrics.pop("oof_scores")
        out_of_fold = metrics.pop("oof")
        labels = np.array([e.cocreation for e in data.real], dtype=int)
        threshold = threshold_for_recall(np.array([oof[e.id] for e in data.real]), labels)
    model = train_model(data.real + data.extra, real_analyses + extra_analyses, threshold, metrics)
    # Out-of-fold predictions let notebooks draw honest PR curves without re-running the CV.
    extra = {"cv_predictions.jsonl": "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in out_of_fold)}
    save_model(model, model_dir, extra if metrics else None)
    log.info("trained model %s in %.1fs", model.version, time.monotonic() - started)
    return model, metrics
