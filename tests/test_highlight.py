"""The quote shown outside the tool and the highlighted key sentences, on the demo stories and built evidence."""

from __future__ import annotations

import pytest

from pipeline.detect.score import Scorer
from pipeline.highlight import best_quote, grouped_evidence, highlight_text
from pipeline.ingest.extract import extract_document
from tests.conftest import ROOT

DEMO = ROOT / "data" / "demo"
# Each story's opening, which the quote showed before: it says what happens, not who made it with whom.
OPENINGS = {
    "/depolder/2026/03/bewoners-nemen-buurthuis-de-schakel-over.html":
        "Buurthuis De Schakel in de wijk Veenhof blijft open.",
    "/depolder/2026/03/bewoners-tekenen-mee-aan-nieuw-wilgenpark.html":
        "Het braakliggende terrein achter de Molenstraat in Polderveen wordt een park.",
    "/mzvandaag/artikel/48297/wijkbewoners-maken-tentoonstelling-met-museum-het-pakhuis.html":
        "In Museum Het Pakhuis in Lindeveld opent zaterdag 'Onze Haven', een tentoonstelling over de "
        "geschiedenis van de Havenwijk.",
}
CPO_STORY = "/kanaalzone/2026/03/12/veertien-huishoudens-bouwen-samen-hun-huis-op-oud-sportpark/"


def demo_record(path: str) -> dict:
    """Return a demo article as the pipeline extracts it from its page."""
    page = DEMO / "site" / path.strip("/")
    page = page / "index.html" if path.endswith("/") else page
    doc = extract_document(page.read_text(encoding="utf-8"))
    return {"id": path, "title": doc["title"], "text": doc["text"]}


@pytest.fixture(scope="module")
def scored_demo() -> dict[str, tuple[dict, dict]]:
    """Score the demo stories used here with the shipped model, as the nightly run does."""
    records = [demo_record(path) for path in [*OPENINGS, CPO_STORY]]
    return {r["id"]: (r, s) for r, s in zip(records, Scorer.load().score(records), strict=True)}


@pytest.mark.parametrize("path", list(OPENINGS))
def test_demo_quote_shows_the_cocreation_not_the_opening(scored_demo, path):
    record, score = scored_demo[path]
    quote = best_quote(record["text"], score["evidence"])
    assert quote != OPENINGS[path] and quote in record["text"]
    # The quoted sentence itself holds a co-creation construction the rules found ("samen met", "uitdaagrecht").
    start = record["text"].index(quote)
    constructions = [e for e in score["evidence"] if e["label"].startswith("construction:")
                     and start <= e["start"] and e["end"] <= start + len(quote)]
    assert constructions, quote


def test_highlight_shows_at_most_three_key_sentences_and_drops_the_filler(scored_demo):
    record, score = scored_demo[CPO_STORY]
    sentences = [e for e in score["evidence"] if e["label"] == "sentence:cocreation"]
    assert len(sentences) > 3  # the evidence itself holds more: the cap is the highlighter's
    shown = grouped_evidence(record["text"], score["evidence"])["sentence"]
    assert len(shown) == 3 and all(s["text"] in record["text"] for s in shown)
    html = str(highlight_text(record["text"], score["evidence"]))
    before = html[:html.index("De eerste paal gaat")]
    assert before.count("<mark") == before.count("</mark>")  # the filler sentence stands outside every mark


TEXT = ("Buurthuis De Schakel blijft open. Een groep bewoners beheert het gebouw samen met de gemeente. "
        "De eerste paal gaat in juni de grond in.")


def _span(fragment: str, label: str, weight: float = 1.0) -> dict:
    start = TEXT.index(fragment)
    return {"text": fragment, "start": start, "end": start + len(fragment), "label": label, "weight": weight}


def test_sentence_naming_the_cocreation_beats_heavier_passage_sentences():
    # The passage sentences weigh the article's score (0.8), the rules' sentence its own score (0.3).
    evidence = [_span("Buurthuis De Schakel blijft open.", "sentence:cocreation", 0.8),
                _span("Een groep bewoners beheert het gebouw samen met de gemeente.", "sentence:cocreation", 0.3),
                _span("bewoners", "participant:bewoners"), _span("samen met", "construction:samenwerken"),
                _span("De eerste paal gaat in juni de grond in.", "sentence:cocreation", 0.8)]
    assert best_quote(TEXT, evidence) == "Een groep bewoners beheert het gebouw samen met de gemeente."


def test_lexicon_spans_outside_the_shown_sentences_are_not_marked():
    evidence = [_span(s, "sentence:cocreation", 0.8) for s in
                ("Buurthuis De Schakel blijft open.", "De eerste paal gaat in juni de grond in.")]
    evidence += [_span("Een groep bewoners beheert het gebouw samen met de gemeente.", "sentence:cocreation", 0.3),
                 _span("bewoners", "participant:bewoners")]
    html = str(highlight_text(TEXT, evidence[:1] + evidence[1:2] + [_span("bewoners", "participant:bewoners")]))
    assert "ev-participant" not in html  # its sentence is not in the evidence: a mark without a reason
    assert "ev-participant" in str(highlight_text(TEXT, evidence))


def test_no_key_sentence_quotes_the_opening_line():
    assert best_quote("Eerste regel.\nTweede regel.", []) == "Eerste regel."
