"""Blind double review (issue 11, item 1): an analyst sees others' decisions only after deciding, or as a lead
who switched them on; through Flask's test client and in a real headless Chromium."""

from __future__ import annotations

import re
import time

import pytest

from pipeline.review.analysts import add_analyst
from pipeline.review.app import create_app
from tests.conftest import CHROMIUM, type_analyst_name
from tests.test_review_app import csrf_of, decide

ANN_NOTE = "ann-vindt-dit-overheidsbeleid"


def text_of(html: str) -> str:
    """Return a page's visible text, tags removed and white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def anns_traces(html: str) -> list[str]:
    """Return the traces of ann's decisions found on a page: her name as a reviewer, her labels, her note."""
    text = text_of(html)
    found = [t for t in ("ann: yes", "ann: no", ANN_NOTE, "Welzijn · Uitvoering") if t in text]
    return found + (["<strong>ann</strong>"] if "<strong>ann</strong>" in html else [])


def page(client, path: str) -> str:
    """GET a page, check it answered 200 and return its HTML."""
    answer = client.get(path)
    assert answer.status_code == 200, path
    return answer.get_data(as_text=True)


@pytest.fixture
def ann_decided(review_store):
    """ann decided park (yes, welzijn, uitvoering, a note) and care (no); return settings, store, ids."""
    settings, store, ids = review_store
    ann = create_app(settings, store, analyst="ann").test_client()
    decide(ann, ids["park"], cocreation="1", sector="welzijn", type="uitvoering", note=ANN_NOTE)
    decide(ann, ids["care"], cocreation="0", note=ANN_NOTE)
    return settings, store, ids


def test_bob_sees_none_of_anns_decisions_until_he_decides(ann_decided):
    settings, store, ids = ann_decided
    bob = create_app(settings, store, analyst="bob").test_client()
    for path in ("/", "/?status=all", f"/article/{ids['park']}", f"/article/{ids['park_copy']}",
                 f"/article/{ids['park']}/history", f"/article/{ids['care']}", f"/article/{ids['care']}/history"):
        assert anns_traces(page(bob, path)) == [], path
    assert "Hidden until you decide" in page(bob, f"/article/{ids['park']}")
    assert "1 event by other analysts hidden" in text_of(page(bob, f"/article/{ids['park']}/history"))

    decide(bob, ids["park"], cocreation="1", sector="overheid", type="beleid")
    article = page(bob, f"/article/{ids['park']}")
    assert ANN_NOTE in article and "<strong>ann</strong>: yes · Welzijn · Uitvoering" in article
    assert "ann: yes" in text_of(page(bob, "/?status=all"))  # park, which bob decided
    assert "ann: no" not in text_of(page(bob, "/?status=all"))  # care, which he did not
    assert "ann" in text_of(page(bob, f"/article/{ids['park']}/history")).split("Note")[1]
    assert anns_traces(page(bob, f"/article/{ids['care']}")) == []
    assert "Welzijn" in text_of(page(bob, "/agreement"))  # the agreement page compares decisions openly


def test_a_lead_switches_others_decisions_on_and_off(ann_decided):
    settings, store, ids = ann_decided
    tokens = {name: add_analyst(store, name, lead=name == "lea") for name in ("ann", "bob", "lea")}
    app = create_app(settings, store)
    clients = {}
    for name, token in tokens.items():
        clients[name] = app.test_client()
        assert clients[name].get(f"/?token={token}").status_code == 302
    bob, lea = clients["bob"], clients["lea"]
    park = f"/article/{ids['park']}"
    assert 'id="others-toggle"' not in page(bob, park)  # not offered to a non-lead
    refused = bob.post("/others", data={"csrf_token": csrf_of(page(bob, park)), "show": "1", "next": park})
    assert refused.status_code == 403 and anns_traces(page(bob, park)) == []

    assert anns_traces(page(lea, park)) == [] and 'id="others-toggle"' in page(lea, park)
    answer = lea.post("/others", data={"csrf_token": csrf_of(page(lea, park)), "show": "1", "next": park})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(park)
    assert ANN_NOTE in page(lea, park) and "ann: yes" in text_of(page(lea, "/?status=all"))
    assert "ann" in text_of(page(lea, f"{park}/history")).split("Note")[1]
    assert anns_traces(page(bob, park)) == []  # the switch is lea's session only
    lea.post("/others", data={"csrf_token": csrf_of(page(lea, park)), "show": "0", "next": park})
    assert anns_traces(page(lea, park)) == []


def test_a_lead_toggle_never_redirects_off_site(ann_decided):
    settings, store, ids = ann_decided
    client = create_app(settings, store, analyst="bob").test_client()
    token = csrf_of(page(client, "/"))
    answer = client.post("/others", data={"csrf_token": token, "show": "1", "next": "//evil.example/"})
    assert answer.status_code == 302 and "evil" not in answer.headers["Location"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_blind_review_in_the_browser(live_app, watched_page):
    base, store, ids = live_app
    ann = watched_page()
    ann.goto(f"{base}/article/{ids['park']}")
    for key in ("4", "Shift+Digit3", "e"):
        ann.keyboard.press(key)
    ann.keyboard.type(ANN_NOTE)
    ann.keyboard.press("Escape")
    with ann.expect_navigation():
        ann.keyboard.press("y")
    assert store.decisions_by_article()[ids["park"]]["ann"]["note"] == ANN_NOTE

    bob = watched_page()
    bob.goto(base + "/analyst")
    type_analyst_name(bob, "bob")
    with bob.expect_navigation():
        bob.keyboard.press("Enter")
    assert "bob" in bob.inner_text(".who")
    assert anns_traces(bob.content()) == []
    bob.goto(f"{base}/article/{ids['park']}")
    assert anns_traces(bob.content()) == [] and bob.locator("#others-hidden").is_visible()
    started = time.perf_counter()
    with bob.expect_navigation():
        bob.keyboard.press("n")
    assert time.perf_counter() - started < 5
    bob.goto(f"{base}/article/{ids['park']}")
    assert ANN_NOTE in bob.inner_text("#others") and "Welzijn · Uitvoering" in bob.inner_text("#others")

    # Without tokens everyone is a lead (one person at the keyboard): bob may switch the view on for care.
    ann.goto(f"{base}/article/{ids['care']}")
    with ann.expect_navigation():
        ann.keyboard.press("n")
    bob.goto(f"{base}/article/{ids['care']}")
    assert anns_traces(bob.content()) == []
    with bob.expect_navigation():
        bob.locator("#others-toggle button").click()
    assert "ann: no" in bob.inner_text("#others") and ANN_NOTE not in bob.inner_text("#others")
    assert not ann.errors and not bob.errors and not bob.dialogs
