"""Training: several labelled files, and the nightly retrain that keeps a new model only if it is no worse."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.ingest.jsonl import ingest_file
from pipeline.review.events import Label, record_decision
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.detect.classify import MODEL_DIR
from pipeline.detect.train import gather_examples, no_worse, retrain_if_due
from tests.conftest import CORPUS

SOURCES = ("VughtParticipeert", "nl-design-system", "gijsbotje", "lodagro", "BostoenToby", "Twinpixel-nl")


def test_no_worse_compares_grouped_ap_and_clear_recall():
    old = {"overall": {"average_precision": 0.5, "recall_clear": 0.9}}
    assert no_worse({"overall": {"average_precision": 0.52, "recall_clear": 0.9}}, old)
    assert not no_worse({"overall": {"average_precision": 0.6, "recall_clear": 0.8}}, old)
    assert no_worse({"overall": {"average_precision": 0.1, "recall_clear": 0.1}}, None)


@pytest.fixture
def small_corpus(tmp_path):
    """Write a few sources of dev and dev2 (from ../shared, never the repo) as two labelled parts."""
    paths = []
    for part in ("dev", "dev2"):
        source = CORPUS / "articles" / f"{part}.jsonl"
        if not source.exists():
            pytest.skip("shared corpus missing")
        rows = [json.loads(line) for line in source.open(encoding="utf-8")]
        keep = [r for r in rows if r["source"].startswith(SOURCES)][:60]
        ids = {r["id"] for r in keep}
        labels = [line for line in (CORPUS / "labels" / f"{part}.jsonl").open(encoding="utf-8")
                  if json.loads(line)["id"] in ids]
        (tmp_path / f"{part}-articles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
        (tmp_path / f"{part}-labels.jsonl").write_text("".join(labels))
        paths.append((tmp_path / f"{part}-articles.jsonl", tmp_path / f"{part}-labels.jsonl"))
    return paths


@pytest.mark.slow
def test_nightly_retrain_waits_for_new_final_labels_then_trains_on_them(small_corpus, tmp_path):
    articles, labels = [a for a, _ in small_corpus], [lab for _, lab in small_corpus]
    settings = load_settings(data_dir=tmp_path / "local", model_dir=tmp_path / "model", train_articles=articles,
                             train_labels=labels, retrain_after=1, progress=False)
    data = gather_examples(articles, labels, use_written=True)
    assert {e.origin for e in data.real} == {"dev-articles", "dev2-articles"}
    # The current model is the shipped one, its card's grouped figures set to zero: any candidate is no worse, so
    # the kept path runs every time (a model trained here first cost 100 s and left kept or discarded to chance).
    first = current_model_no_candidate_can_be_worse_than(settings.model_dir)
    store = Store(settings.effective_database_url)
    store.migrate()
    news = tmp_path / "news.jsonl"
    news.write_text(json.dumps({"id": "n1", "title": "Park", "text": "De gemeente ontwerpt samen met bewoners een "
                                "nieuw park. Bewoners denken in drie avonden mee over de speelplekken. " * 3}) + "\n")
    ingest_file(store, news, settings.near_duplicate_threshold)
    assert retrain_if_due(settings, store) == {"retrain": "waiting for 1 more final labels"}
    (article,) = store.articles()
    record_decision(store, article.id, "ann", Label(True, "overheid", "ontwerp"), model_version=first,
                    codebook_version="1")
    result = retrain_if_due(settings, store)
    assert result["new_final_labels"] == 1 and result["retrain"] == "kept"
    card = json.loads((settings.model_dir / "card.json").read_text())
    assert card["model_version"] == result["candidate"] != first
    assert f"review:review-{article.id}" in card["training_data"]["ids"]
    assert card["metrics"]["grouped"]["overall"]["average_precision"] > 0
    # The candidate was staged with the run's files, not beside the model (which may be the package's own).
    assert (settings.data_dir / "retrain-candidate" / "card.json").exists()
    assert not (tmp_path / ".model.candidate").exists()
    assert retrain_if_due(settings, store)["retrain"].startswith("waiting")
    store.close()


def current_model_no_candidate_can_be_worse_than(model_dir) -> str:
    """Copy the shipped model to model_dir with zero grouped AP and clear recall on its card; return its version."""
    shutil.copytree(MODEL_DIR, model_dir)
    card_path = model_dir / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["metrics"]["grouped"]["overall"].update(average_precision=0.0, recall_clear=0.0)
    card_path.write_text(json.dumps(card), encoding="utf-8")
    return card["model_version"]
