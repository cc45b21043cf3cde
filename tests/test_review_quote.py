"""The analyst chooses the quote (issue 21, item 9): c cycles through the key sentences, a click picks the sentence
clicked; the choice is stored with the decision and is what export, digest and publish show."""

from __future__ import annotations

import pytest

from pipeline.codebook import load_codebook
from pipeline.public.digest import Window, digest_groups
from pipeline.public.publish import collect_examples
from pipeline.research.export import export_rows
from pipeline.review.app import create_app
from pipeline.review.events import Label, record_decision
from tests.conftest import CHROMIUM, press_and_wait
from tests.review_scenario import PARK_TEXT
from tests.test_review_app import decide

KEY = "Bewoners ontwerpen samen met de gemeente Polderveen een nieuw park aan de rand van de wijk."
CLICKED = "Op drie avonden tekenden zij mee aan paden, speelplekken en een moestuin."


def outputs_quote(store, article_id: int) -> dict[str, str]:
    """Return the quote each output shows for one article: the export, the digest and the published site."""
    codebook = load_codebook()
    exported = {r["article_id"]: r["evidence_quote"] for r in export_rows(store, "reviewed")}
    digest = {item["article_id"]: item["quote"] for items in digest_groups(store, codebook, Window()).values()
              for item in items}
    published = {e.article_id: e.quote for e in collect_examples(store, codebook)}
    return {"export": exported[article_id], "digest": digest[article_id], "publish": published[article_id]}


def test_the_chosen_quote_is_stored_with_the_decision_and_shown_by_every_output(review_store):
    settings, store, ids = review_store
    client = create_app(settings, store, analyst="ann").test_client()
    decide(client, ids["park"], cocreation="1", sector="overheid", type="ontwerp", quote=CLICKED)
    assert store.decisions_by_article()[ids["park"]]["ann"].quote == CLICKED
    assert set(outputs_quote(store, ids["park"]).values()) == {CLICKED}  # before: the model's key sentence
    record_decision(store, ids["park"], "bea", Label(True, "overheid", "ontwerp"), model_version=None,
                    codebook_version="1")
    assert store.final_labels()[ids["park"]].quote == CLICKED  # bea chose none: ann's choice is kept


def test_a_posted_quote_the_article_does_not_say_is_dropped(review_store):
    settings, store, ids = review_store
    client = create_app(settings, store, analyst="ann").test_client()
    decide(client, ids["park"], cocreation="1", sector="overheid", type="ontwerp", quote="De wethouder liegt.")
    assert store.decisions_by_article()[ids["park"]]["ann"].quote == ""
    assert outputs_quote(store, ids["park"])["export"] != "De wethouder liegt."


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_c_cycles_the_key_sentences_and_a_click_picks_a_sentence_in_the_browser(live_app, watched_page):
    base, store, ids = live_app
    page = watched_page()
    page.goto(f"{base}/article/{ids['park']}")
    assert page.inner_text("#chosen-quote") == KEY  # the model's choice until the analyst picks one
    page.keyboard.press("c")
    assert page.input_value("#quote") == KEY
    page.locator("#article-text").get_by_text("speelplekken", exact=False).first.click()
    assert page.input_value("#quote") == CLICKED and page.inner_text("#chosen-quote") == CLICKED
    press_and_wait(page, "y")
    assert store.decisions_by_article()[ids["park"]]["ann"].quote == CLICKED
    assert CLICKED in PARK_TEXT and not page.errors
