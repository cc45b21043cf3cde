"""Blind double review (issue 11, item 1): an analyst sees others' decisions only after deciding, or as a lead
who switched them on; through Flask's test client and in a real headless Chromium."""

from __future__ import annotations

import json
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


def signed_in_clients(settings, store, names: tuple[str, ...], lead: str):
    """Register the analysts (one of them a lead) and return the app and a client signed in with each one's token."""
    tokens = {name: add_analyst(store, name, lead=name == lead) for name in names}
    app = create_app(settings, store)
    clients = {}
    for name, token in tokens.items():
        clients[name] = app.test_client()
        assert clients[name].get(f"/?token={token}").status_code == 302
    return app, clients


def test_a_lead_switches_others_decisions_on_and_off(ann_decided):
    settings, store, ids = ann_decided
    app, clients = signed_in_clients(settings, store, ("ann", "bob", "lea"), lead="lea")
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
    assert store.decisions_by_article()[ids["park"]]["ann"].note == ANN_NOTE

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


# -- issue 21, items 1 and 2: one rule for every screen and download ------------------------------------------
ANN_LESSON = "ann-leert-dat-de-buurt-beslist"


def team_apps(review_store):
    """ann (lead) and bea agreed on park with a note and lesson; cem, no lead, decided nothing: their clients."""
    settings, store, ids = review_store
    app, clients = signed_in_clients(settings, store, ("ann", "bea", "cem"), lead="ann")
    for name in ("ann", "bea"):
        decide(clients[name], ids["park"], cocreation="1", sector="welzijn", type="uitvoering",
               note=ANN_NOTE if name == "ann" else "", lesson=ANN_LESSON if name == "ann" else "")
    decide(clients["bea"], ids["care"], cocreation="0")  # one decision, no dispute: care is bea's alone
    return app, clients, ids


def every_get_route(app, article_id: int) -> list[str]:
    """Return a URL for every GET route of the app (new screens included), articles taken to be article_id."""
    from flask import url_for
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" in rule.methods and rule.endpoint != "static":
                urls.append(url_for(rule.endpoint, **dict.fromkeys(rule.arguments, article_id)))
    return sorted(set(urls)) + ["/export?format=jsonl&status=all", "/?status=all", "/?status=mine"]


def test_every_screen_and_download_hides_others_decisions_from_a_non_lead_who_has_not_decided(review_store):
    app, clients, ids = team_apps(review_store)
    cem = clients["cem"]
    seen = {}
    for url in every_get_route(app, ids["park"]):
        body = cem.get(url).get_data(as_text=True)
        seen[url] = [t for t in (ANN_NOTE, ANN_LESSON, "ann, bea", "ann: yes", "Welzijn · Uitvoering") if t in body]
    assert {url: found for url, found in seen.items() if found} == {}
    assert f"/article/{ids['park']}/settle" in seen and "/export" in seen  # both holes are among the routes
    settle = cem.get(f"/article/{ids['park']}/settle")
    assert settle.status_code == 403 and "stay hidden until you decide it yourself" in settle.get_data(as_text=True)
    rows = [json.loads(line) for line in cem.get("/export?format=jsonl&status=all").get_data(as_text=True).splitlines()]
    park = [r for r in rows if r["cluster_id"] == ids["park"]]
    assert park and all(r["cocreation"] is None and r["analysts"] is None and r["lesson"] is None for r in park)

    # Once cem decided park, its labels, note and lesson are his to see; care (bea's alone) stays hidden.
    decide(cem, ids["park"], cocreation="1", sector="welzijn", type="uitvoering")
    assert ANN_NOTE in cem.get(f"/article/{ids['park']}/settle").get_data(as_text=True)
    rows = [json.loads(line) for line in cem.get("/export?format=jsonl&status=all").get_data(as_text=True).splitlines()]
    assert {r["analysts"] for r in rows if r["cluster_id"] == ids["park"]} == {"ann, bea, cem"}
    # A dispute between ann and bea is not in cem's list of disagreements until he decided it too.
    decide(clients["ann"], ids["xss"], cocreation="1", sector="welzijn", type="uitvoering")
    decide(clients["bea"], ids["xss"], cocreation="0")
    row = f'id="disagreement-{ids["xss"]}"'
    assert row not in cem.get("/agreement").get_data(as_text=True) and row in page(clients["ann"], "/agreement")
    assert cem.get(f"/article/{ids['xss']}/settle").status_code == 403
    decide(cem, ids["xss"], cocreation="0")
    assert row in page(cem, "/agreement")


def test_the_settle_screen_shows_each_analysts_note_and_lesson(review_store):
    app, clients, ids = team_apps(review_store)
    decide(clients["cem"], ids["park"], cocreation="0", note="cem twijfelt", lesson="cem-les")
    html = clients["ann"].get(f"/article/{ids['park']}/settle").get_data(as_text=True)
    notes = [text_of(c) for c in re.findall(r'<td class="decision-note">(.*?)</td>', html, re.S)]
    lessons = [text_of(c) for c in re.findall(r'<td class="decision-lesson">(.*?)</td>', html, re.S)]
    assert notes == [ANN_NOTE, "–", "cem twijfelt"] and lessons == [ANN_LESSON, "–", "cem-les"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_a_non_lead_who_decided_nothing_sees_no_settle_screen_and_downloads_no_others_labels_in_the_browser(
        review_store, watched_page, tmp_path):
    from pipeline.review.app import make_server
    from tests.conftest import serving

    settings, store, ids = review_store
    app, _clients, ids = team_apps(review_store)
    token = add_analyst(store, "dee")
    with serving(make_server(app, "127.0.0.1", 0)) as base:
        dee = watched_page()
        dee.goto(f"{base}/?token={token}")
        dee.goto(f"{base}/article/{ids['park']}/settle")
        assert anns_traces(dee.content()) == [] and ANN_LESSON not in dee.content()
        assert "stay hidden until you decide" in dee.inner_text("body")
        dee.goto(f"{base}/?status=all")
        with dee.expect_download() as download:
            dee.locator("a#export-csv, a[href*='/export']").first.click()
        body = (tmp_path / "queue.csv")
        download.value.save_as(body)
        text = body.read_text(encoding="utf-8")
        assert "Bewoners" in text and ANN_NOTE not in text and ANN_LESSON not in text and "ann, bea" not in text
        assert not dee.errors
