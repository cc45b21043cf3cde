"""Training: gather labelled texts, cross-validate on the real ones, fit the final models, save them."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from pipeline.detect.classify import Example, RadarModel, save_model, train_model
from pipeline.detect.evaluate import cross_validate, load_labelled, load_written
from pipeline.errors import ConfigError
from pipeline.ingest.extract import content_hash
from pipeline.detect.nlp import analyse
from pipeline.resources import MODEL_DIR, in_source_checkout

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Real labelled examples (evaluated) and extra ones (written for training, only trained on)."""

    real: list[Example]
    extra: list[Example]


def gather_examples(articles: Path | list[Path] | None, labels: Path | list[Path] | None, use_written: bool = True,
                    database_url: str | None = None, min_reviews: int | None = None) -> TrainingData:
    """Load the real labelled texts, the analysts' final reviews and, optionally, the written texts."""
    pairs = list(zip(_as_list(articles), _as_list(labels)))  # noqa: B905 (the lengths are compared on the next line)
    if len(_as_list(articles)) != len(_as_list(labels)):
        raise ConfigError("give as many label files as article files (they pair up in order)")
    real = [e for a, lab in pairs for e in load_labelled(a, lab, origin=a.stem)]
    if database_url:
        # A dev text that was also ingested and reviewed must count once, or CV would test on training text.
        known = {content_hash(e.text) for e in real}
        real += [e for e in reviewed_examples(database_url, min_reviews) if content_hash(e.text) not in known]
    extra = load_written() if use_written else []
    return TrainingData(real, extra)


def _as_list(paths: Path | list[Path] | None) -> list[Path]:
    if paths is None:
        return []
    return [Path(p) for p in paths] if isinstance(paths, (list, tuple)) else [Path(paths)]


def reviewed_examples(database_url: str, min_reviews: int | None = None) -> list[Example]:
    """Return the analysts' final labels from the store as real examples (source 'review').

    Final as everywhere else (labels.final_label): min_reviews agreeing analysts, or a settle.
    """
    from pipeline.store import Store

    store = Store(database_url, min_reviews=min_reviews)
    try:
        store.migrate()
        final = store.final_labels()
        texts = {a.id: a for a in store.articles() if a.id in final}
    finally:
        store.close()
    examples = []
    for article_id, label in final.items():
        article = texts.get(article_id)
        if article is None or label.cocreation is None:
            continue
        examples.append(Example(
            id=f"review-{article_id}", title=article.title, text=article.text,
            cocreation=bool(label.cocreation), sector=label.sector, type=label.type, origin="review",
            source="review", borderline=bool(label.borderline),
        ))
    return examples


def check_trainable(model_dir: Path) -> None:
    """Refuse to train over the model an installed package ships: the next upgrade would silently replace it."""
    # In a checkout the shipped model is the one developers retrain and commit; in site-packages it is read-only
    # by intent (and a Dask worker's copy would differ from the driver's), so training needs a folder of its own.
    if model_dir.resolve() == MODEL_DIR.resolve() and not in_source_checkout():
        raise ConfigError(f"{model_dir} is the model the installed package ships; set model_dir (radar.toml or "
                          "RADAR_MODEL_DIR) to a folder of your own to train")


def train_and_evaluate(data: TrainingData, model_dir: Path, folds: int = 10, progress: bool = True) -> tuple[RadarModel, dict]:
    """Cross-validate on the real examples (grouped and random), then fit on everything and save the model."""
    if sum(e.cocreation for e in data.real) < 4 or len({e.group or e.source for e in data.real}) < 3:
        raise ValueError("too few examples to train: need at least 4 real positives from 3 or more sources")
    started = time.monotonic()
    real_analyses = analyse([(e.title, e.text) for e in data.real])
    extra_analyses = analyse([(e.title, e.text) for e in data.extra])
    log.info("nlp: %d texts analysed in %.1fs", len(data.real) + len(data.extra), time.monotonic() - started)
    show = progress and sys.stderr.isatty()
    with tqdm(total=folds + 5, desc="cross-validation", unit="fold", disable=not show) as bar:
        def fold_done() -> None:
            bar.update(1)

        metrics = cross_validate(data.real, real_analyses, data.extra, extra_analyses, folds=folds,
                                 progress=fold_done)
    calibration = metrics.pop("calibration")
    out_of_fold = metrics.pop("oof")
    model = train_model(data.real + data.extra, real_analyses + extra_analyses, calibration, metrics)
    # Out-of-fold predictions let notebooks draw honest PR curves without re-running the CV.
    extra = {"cv_predictions.jsonl": "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in out_of_fold)}
    save_model(model, model_dir, extra)
    log.info("trained model %s in %.1fs", model.version, time.monotonic() - started)
    return model, metrics


def new_final_labels(store, card: dict) -> int:
    """Count the analysts' final labels that the model on this card was not trained on."""
    trained = {i for i in card.get("training_data", {}).get("ids", []) if i.startswith("review:")}
    return sum(f"review:review-{article_id}" not in trained for article_id in store.final_labels())


def no_worse(new: dict, old: dict | None) -> bool:
    """Tell whether new grouped figures are at least as good as old ones (AP and clear recall)."""
    if not old:
        return True
    keys = ("average_precision", "recall_clear")
    return all((new["overall"].get(k) or 0) >= (old.get("overall", {}).get(k) or 0) for k in keys)


def retrain_if_due(settings, store) -> dict:
    """Retrain once `retrain_after` new final labels exist; keep the new model only if it is no worse.

    The candidate is cross-validated like any `radar train` (grouped, on real texts and reviews) and
    trained into a staging directory; it replaces the model only when its grouped AP and clear
    recall are no worse than those on the current card, so a bad batch of reviews cannot degrade it.
    """
    if not settings.retrain_after:
        return {}
    check_trainable(settings.model_dir)
    card_path = settings.model_dir / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.exists() else {}
    waiting = new_final_labels(store, card)
    if waiting < settings.retrain_after:
        return {"retrain": f"waiting for {settings.retrain_after - waiting} more final labels"}
    data = gather_examples(settings.train_articles, settings.train_labels, True,
                           database_url=settings.effective_database_url, min_reviews=settings.min_reviews)
    # The candidate is staged with the run's own files, never inside the package (where the shipped model lives).
    staging = settings.data_dir / "retrain-candidate"
    model, metrics = train_and_evaluate(data, staging, progress=False)
    kept = no_worse(metrics["grouped"], card.get("metrics", {}).get("grouped"))
    if kept:
        oof = (staging / "cv_predictions.jsonl").read_text(encoding="utf-8")
        save_model(model, settings.model_dir, {"cv_predictions.jsonl": oof})
    log.info("retrain on %d new final labels: model %s %s", waiting, model.version, "kept" if kept else "discarded")
    return {"retrain": "kept" if kept else "discarded (grouped figures worse)", "candidate": model.version,
            "new_final_labels": waiting}
