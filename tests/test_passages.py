"""Passages: evidence quotes found in the text, training rows at passage level."""

from __future__ import annotations

from pipeline.detect.nlp import analyse
from pipeline.detect.passages import evidence_span, passages_of, training_passages

TEXT = ("Het weer is vandaag grijs. De trein reed op tijd. Er was een markt in het centrum.\n"
        "De gemeente ontwerpt samen met bewoners het nieuwe park. Zij denken mee over de speelplekken.\n"
        "Morgen wordt het droog. De wethouder was op vakantie. Het stadhuis is dicht.")
QUOTE = "De gemeente ontwerpt samen met bewoners het nieuwe park."


def test_evidence_span_tolerates_other_whitespace():
    assert evidence_span(TEXT, QUOTE) == (TEXT.index(QUOTE), TEXT.index(QUOTE) + len(QUOTE))
    assert evidence_span(TEXT, "De  gemeente\nontwerpt samen met bewoners") == (TEXT.index(QUOTE), TEXT.index(QUOTE) + len("De gemeente ontwerpt samen met bewoners"))
    assert evidence_span(TEXT, "Dit staat er niet in.") is None and evidence_span(TEXT, "") is None


def test_passages_are_windows_with_offsets_into_the_text():
    (analysis,) = analyse([("Titel", TEXT)])
    passages = passages_of(analysis)
    assert len(passages) == len(analysis.sentences) - 2
    assert all(0 <= p.start < p.end <= len(TEXT) or p.start < 0 for p in passages)
    assert any(QUOTE in TEXT[p.start:p.end] and p.features.get("all_three") for p in passages)


def test_positive_text_trains_only_its_evidence_passages():
    (analysis,) = analyse([("", TEXT)])
    rows = training_passages(TEXT, True, QUOTE, analysis)
    assert rows and all(label == 1 and hit for _, label, hit in rows)
    assert all(QUOTE[:20] in TEXT[p.start:p.end] or TEXT[p.start:p.end].count(".") for p, _, _ in rows)


def test_negative_text_keeps_its_deciding_passage_as_a_hard_negative():
    (analysis,) = analyse([("", TEXT)])
    rows = training_passages(TEXT, False, QUOTE, analysis, keep_plain_every=1000)
    assert all(label == 0 for _, label, _ in rows)
    assert any(hit for _, _, hit in rows)
    # Plain passages (no lexicon signal) are mostly left out of training.
    assert len(rows) < len(passages_of(analysis))


def test_positive_without_a_quote_trains_on_its_strongest_rule_passage():
    # An analyst's review carries no quote; the passage with the strongest rule sentence stands in.
    (analysis,) = analyse([("", TEXT)])
    rows = training_passages(TEXT, True, None, analysis)
    assert rows and all(label == 1 for _, label, _ in rows)
    assert any(QUOTE in TEXT[p.start:p.end] for p, _, _ in rows)
    assert not any("Het weer is vandaag grijs" in TEXT[p.start:p.end] for p, _, _ in rows)
