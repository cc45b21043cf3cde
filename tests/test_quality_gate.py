"""The quality gate: metric floors pinned in quality_floors.json, measured on data the models never saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.classify import load_model
from pipeline.nlp import get_nlp
from pipeline.nlp_eval import evaluate_ud
from pipeline.train import gather_examples
from tests.conftest import CORPUS

FLOORS = json.loads((Path(__file__).parent / "quality_floors.json").read_text())


@pytest.fixture(scope="module")
def cv_metrics():
    from pipeline.evaluate import cross_validate
    from pipeline.nlp import analyse
    if not (CORPUS / "labels" / "dev.jsonl").exists():
        pytest.skip("shared corpus missing")
    data = gather_examples(CORPUS / "articles" / "dev.jsonl", CORPUS / "labels" / "dev.jsonl", use_written=True)
    real = analyse([(e.title, e.text) for e in data.real])
    extra = analyse([(e.title, e.text) for e in data.extra])
    return cross_validate(data.real, real, data.extra, extra)


@pytest.mark.slow
def test_detection_floors(cv_metrics):
    overall, baseline = cv_metrics["overall"], cv_metrics["keyword_baseline"]
    floors = FLOORS["detection"]
    assert overall["average_precision"] >= floors["average_precision"], overall
    assert overall["recall"] >= floors["recall"], overall
    assert overall["precision"] >= floors["precision"], overall
    assert overall["average_precision"] >= floors["average_precision_over_keyword_baseline"] * baseline["average_precision"]


@pytest.mark.slow
def test_sector_and_type_floors(cv_metrics):
    assert cv_metrics["sector"]["accuracy"] >= FLOORS["sector_accuracy"], cv_metrics["sector"]
    assert cv_metrics["type"]["accuracy"] >= FLOORS["type_accuracy"], cv_metrics["type"]


def test_ud_lemma_and_sentence_floors():
    files = sorted((CORPUS / "nlp").glob("*.conllu"))
    if not files:
        pytest.skip("UD files missing")
    result = evaluate_ud(get_nlp(), files)["all"]
    assert result["lemmas"]["accuracy"] >= FLOORS["ud_lemma_accuracy"], result
    assert result["sentences"]["f1"] >= FLOORS["ud_sentence_f1"], result


def test_shipped_model_card_meets_the_floors():
    card = load_model().card
    metrics = card["metrics"]
    assert metrics["overall"]["average_precision"] >= FLOORS["detection"]["average_precision"]
    assert metrics["overall"]["recall"] >= FLOORS["detection"]["recall"]
    assert metrics["sector"]["accuracy"] >= FLOORS["sector_accuracy"]
    assert metrics["type"]["accuracy"] >= FLOORS["type_accuracy"]
