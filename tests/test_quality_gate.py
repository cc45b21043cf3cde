"""The quality gate: metric floors pinned in quality_floors.json, measured on data the models never saw.

Detection, sector and type are cross-validated with whole sources held out (grouped folds over dev
and dev2), because that is what a new feed looks like; the written training texts only ever train.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.detect.classify import load_model
from pipeline.detect.nlp import get_nlp
from pipeline.detect.nlp_eval import evaluate_ud
from pipeline.settings import load_settings
from pipeline.detect.train import gather_examples
from tests.conftest import CORPUS

FLOORS = json.loads((Path(__file__).parent / "quality_floors.json").read_text())
GATE_FOLDS = 5  # fewer grouped folds than `radar train` (10) to keep the suite short; floors match this


@pytest.fixture(scope="module")
def grouped():
    from pipeline.detect.evaluate import cross_validate
    from pipeline.detect.nlp import analyse
    settings = load_settings()
    if not all(p.exists() for p in settings.train_labels):
        pytest.skip("shared corpus missing")
    data = gather_examples(settings.train_articles, settings.train_labels, use_written=True)
    real = analyse([(e.title, e.text) for e in data.real])
    extra = analyse([(e.title, e.text) for e in data.extra])
    return cross_validate(data.real, real, data.extra, extra, folds=GATE_FOLDS, random_folds=0)["grouped"]


@pytest.mark.slow
def test_grouped_detection_floors(grouped):
    overall, floors = grouped["overall"], FLOORS["grouped"]
    assert overall["average_precision"] >= floors["average_precision"], overall
    assert overall["recall_clear"] >= floors["recall_clear"], overall
    assert overall["precision"] >= floors["precision"], overall
    assert overall["news_flag_rate"] <= floors["news_flag_rate_max"], overall
    keyword = grouped["keyword_baseline"]["average_precision"]
    assert overall["average_precision"] >= floors["average_precision_over_keyword_baseline"] * keyword


@pytest.mark.slow
def test_grouped_sector_and_type_against_the_majority_label(grouped):
    floors = FLOORS["grouped"]
    for attr in ("sector", "type"):
        result = grouped[attr]
        margin = result["accuracy"] - result["majority_accuracy"]
        assert margin >= floors[f"{attr}_accuracy_over_majority"], result
        assert result["macro_recall"] >= floors[f"{attr}_macro_recall"], result


@pytest.mark.slow
def test_highlighted_key_sentences_hold_the_gold_evidence(grouped):
    assert grouped["evidence_overlap"]["overlap"] >= FLOORS["grouped"]["evidence_overlap"], grouped["evidence_overlap"]


def test_ud_lemma_and_sentence_floors():
    files = sorted((CORPUS / "nlp").glob("*.conllu"))
    if not files:
        pytest.skip("UD files missing")
    result = evaluate_ud(get_nlp(), files)["all"]
    assert result["lemmas"]["accuracy"] >= FLOORS["ud_lemma_accuracy"], result
    assert result["sentences"]["f1"] >= FLOORS["ud_sentence_f1"], result


def test_shipped_model_card_meets_the_floors():
    grouped = load_model().card["metrics"]["grouped"]
    floors = FLOORS["grouped"]
    assert grouped["overall"]["average_precision"] >= floors["average_precision"]
    assert grouped["overall"]["recall_clear"] >= floors["recall_clear"]
    assert grouped["evidence_overlap"]["overlap"] >= floors["evidence_overlap"]
