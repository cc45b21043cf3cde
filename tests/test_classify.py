"""Models: training on small data, persistence with skops, refusal of untrusted or mismatched models."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import skops.io as sio

from pipeline.detect.classify import ModelError, fit_calibrator, load_model, save_model, threshold_for_recall, train_model
from pipeline.detect.labellers import confidence_for_accuracy, fit_labeller, key_passage_frame
from pipeline.detect.evaluate import detection_metrics, keyword_flags, label_metrics, load_written
from pipeline.detect.nlp import analyse


@pytest.fixture(scope="module")
def small_model():
    examples = load_written()  # the project's own texts: 80 positives over every sector and type
    analyses = analyse([(e.title, e.text) for e in examples])
    return train_model(examples, analyses, SIMPLE_CALIBRATION), examples, analyses


# A fixed Platt map (raw 0 -> 0.5) for models trained without a cross-validation run.
SIMPLE_CALIBRATION = {"calibrator": fit_calibrator(np.array([-2.0, 2.0]), np.array([0, 1])), "threshold": 0.5,
                      "label_confidence": {"sector": 0.5, "type": 0.5}}


def test_threshold_for_recall_picks_the_highest_threshold_reaching_the_target():
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.6])
    labels = np.array([1, 1, 1, 1, 0, 0])
    assert threshold_for_recall(scores, labels, 0.75) == 0.7
    assert threshold_for_recall(scores, labels, 1.0) == 0.2


def test_trained_model_separates_its_training_texts(small_model):
    model, examples, analyses = small_model
    predictions = model.predict(analyses)
    scores = np.array([p.cocreation_score for p in predictions])
    labels = np.array([e.cocreation for e in examples])
    assert scores[labels].mean() > scores[~labels].mean() + 0.3
    assert all(set(p.sector_scores) == set(model.labellers.sector.classes_) for p in predictions)
    assert all(p.key_passages for p in predictions)
    assert abs(sum(predictions[0].type_scores.values()) - 1.0) < 1e-3


def test_save_and_load_round_trip(small_model, tmp_path):
    model, _, analyses = small_model
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.version == model.version and loaded.threshold == model.threshold
    before = [p.cocreation_score for p in model.predict(analyses[:5])]
    after = [p.cocreation_score for p in loaded.predict(analyses[:5])]
    assert before == after
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["codebook_version"] == "1" and card["training_data"]["counts"]["written"]["positives"] == 80
    assert "Model card" in (tmp_path / "card.md").read_text()


def test_card_from_another_codebook_refuses_to_load(small_model, tmp_path):
    save_model(small_model[0], tmp_path)
    card = json.loads((tmp_path / "card.json").read_text())
    card["codebook_version"] = "0"
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="codebook version '0'"):
        load_model(tmp_path)


class Sneaky:
    """A type outside scikit-learn: loading it could run code, so it must be refused."""


def test_model_file_with_foreign_types_refuses_to_load(small_model, tmp_path):
    save_model(small_model[0], tmp_path)
    sio.dump({"detector": Sneaky(), "sector": None, "type": None, "threshold": 0.5}, tmp_path / "model.skops")
    card = json.loads((tmp_path / "card.json").read_text())
    card["model_sha256"] = hashlib.sha256((tmp_path / "model.skops").read_bytes()).hexdigest()  # only the types differ
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="never contain"):
        load_model(tmp_path)


def test_missing_model_says_to_train(tmp_path):
    with pytest.raises(ModelError, match="radar train"):
        load_model(tmp_path / "none")


def test_detection_metrics_on_a_known_case():
    labels = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    result = detection_metrics(scores, labels, (scores >= 0.5).astype(int))
    assert result["precision"] == 0.5 and result["recall"] == 0.5
    assert result["average_precision"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)


def test_label_metrics_and_keyword_baseline():
    result = label_metrics(["overheid", "zorg", "zorg"], ["overheid", "zorg", "overheid"], ["overheid", "zorg", "wonen"])
    assert result["accuracy"] == pytest.approx(0.6667, abs=1e-4) and result["confusion"] == [[1, 0], [1, 1]]
    flags = keyword_flags(["De Participatiewet helpt", "Het regent", "Bewoners denken mee over het plein"])
    assert flags.tolist() == [1, 0, 1]


def test_written_texts_do_not_shift_the_label_prior():
    # Real positives are mostly overheid; the written ones are mostly zorg. The corrected model must
    # still lean to overheid on a text that says nothing about either.
    real = ["overheid"] * 8 + ["zorg"] * 2
    written = ["zorg"] * 12 + ["overheid"] * 2
    texts = [("De gemeente praat met inwoners over het plein.", "overheid"),
             ("Het ziekenhuis praat met patiënten over de zorg.", "zorg")]
    analyses = analyse([("", texts[0][0] if label == "overheid" else texts[1][0]) for label in real + written])
    x = key_passage_frame(analyses, [0] * len(analyses))
    model = fit_labeller(x, real + written, real)
    (neutral,) = analyse([("", "Er is een bijeenkomst over de plannen.")])
    probabilities = dict(zip(model.classes_, model.predict_proba(key_passage_frame([neutral], [0]))[0]))  # noqa: B905 (one probability per class by sklearn's contract)
    assert probabilities["overheid"] > probabilities["zorg"]


def test_confidence_cut_keeps_only_suggestions_that_were_right_often_enough():
    probabilities = [0.95, 0.9, 0.85, 0.8, 0.75, 0.6, 0.5, 0.4]
    correct = [True, True, True, True, True, False, False, True]
    assert confidence_for_accuracy(probabilities, correct, target=0.8) == 0.6
    assert confidence_for_accuracy(probabilities, [False] * 8, target=0.8) == 1.0


def test_a_single_strong_passage_counts_less_than_two_separate_ones():
    from pipeline.detect.classify import passage_evidence
    from pipeline.detect.passages import Passage

    windows = [Passage(0, 30, "", {}), Passage(10, 40, "", {}), Passage(30, 60, "", {}), Passage(60, 90, "", {})]
    order = [0, 1, 2, 3]
    # A passing mention: one strong window whose neighbour only repeats it, the rest ordinary text.
    passing = passage_evidence(np.array([5.0, 4.9, -3.0, -3.0]), windows, order, top=2)
    described = passage_evidence(np.array([5.0, 4.9, 4.0, -3.0]), windows, order, top=2)
    assert passing == pytest.approx(1.0)  # the overlapping neighbour is skipped, not averaged in
    assert described == pytest.approx(4.5)
    assert passage_evidence(np.array([2.0]), windows[:1], [0], top=2) == pytest.approx(2.0)
    assert passage_evidence(np.array([5.0, 4.9, 4.0, -3.0]), windows, order, top=1) == pytest.approx(5.0)


def test_models_that_score_differently_never_share_a_version():
    from pipeline.detect.classify import make_card

    examples = load_written()[:20]
    first, second = make_card(examples, 0.1078, {}), make_card(examples, 0.0788, {})
    assert first["model_version"] != second["model_version"]
    assert make_card(examples, 0.1078, {})["model_version"] == first["model_version"]
