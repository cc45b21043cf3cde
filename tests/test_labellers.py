"""Sector and type labellers: key-passage lexicon votes beside the learned probabilities."""

from __future__ import annotations

import pytest

from pipeline.detect.evaluate import load_written
from pipeline.detect.labellers import (blend_votes, document_votes, fit_labeller, key_passage_frame, key_passage_votes,
                                suggest_labels)
from pipeline.detect.nlp import analyse
from pipeline.detect.passages import passages_of

CPO_TEXT = (
    "De gemeente Kerkwijde verkoopt de kavels aan de Lindelaan aan een bouwgroep. "
    "Twaalf huishoudens bouwen daar in collectief particulier opdrachtgeverschap (CPO) hun eigen woningen. "
    "De toekomstige bewoners ontwerpen samen met een architect de rijwoningen en de gedeelde tuin. "
    "De bouwgroep kiest zelf de aannemer en beheert het budget."
)


def test_blend_adds_vote_shares_and_stays_a_distribution():
    blended = blend_votes({"beleid": 0.7, "zelfbouw": 0.3}, {"zelfbouw": 3.0}, {})
    assert blended["zelfbouw"] > blended["beleid"]
    assert sum(blended.values()) == pytest.approx(1.0, abs=1e-3)
    # Votes for a label the model does not know are ignored rather than invented.
    assert blend_votes({"beleid": 0.7, "ontwerp": 0.3}, {"zelfbouw": 3.0}, {}) == {"beleid": 0.7, "ontwerp": 0.3}


def test_key_passage_votes_read_the_kind_of_contribution_and_the_host():
    analysis = analyse([("Bouwgroep bouwt eigen huizen", CPO_TEXT)])[0]
    at = max(range(len(passages_of(analysis))), key=lambda i: passages_of(analysis)[i].features["max_sentence"])
    types = key_passage_votes(analysis, at, "type")
    assert types.most_common(1)[0][0] == "zelfbouw"
    assert "overheid" in key_passage_votes(analysis, at, "sector")
    assert document_votes(analysis, "sector").get("overheid", 0) > 0


def test_a_prior_skewed_to_the_majority_no_longer_hides_a_clear_self_build_case():
    # The model knows the label but none of the wording: the one zelfbouw example is another story,
    # as for a source whose self-build vocabulary it never saw. Real labels set a beleid-heavy prior.
    written = [e for e in load_written() if e.cocreation and e.type != "zelfbouw"]
    analyses = analyse([(e.title, e.text) for e in written])
    x = key_passage_frame(analyses, [0] * len(analyses))
    labels = ["zelfbouw"] + [e.type for e in written[1:]]
    model = fit_labeller(x, labels, ["beleid"] * 60 + ["zelfbouw"])
    case = analyse([("Bouwgroep bouwt eigen huizen", CPO_TEXT)])
    learned = dict(zip(model.classes_, model.predict_proba(key_passage_frame(case, [0]))[0], strict=True))
    assert max(learned, key=learned.get) == "beleid"  # what the model alone suggested
    suggested = suggest_labels(model, case, [0], "type")[0]
    assert max(suggested, key=suggested.get) == "zelfbouw"
