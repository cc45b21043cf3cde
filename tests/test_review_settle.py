"""Settling one article at a time, the agreement page and unanchored suggestions (issue 11, items 2, 3, 4, 5, 7):
the store and labels, Flask's test client, and the keyboard in a real headless Chromium."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from pipeline import labels
from pipeline.review.analysts import add_analyst
from pipeline.records import QueueFilters
from pipeline.review.app import create_app
from pipeline.store import Store, clusters
from tests.conftest import CHROMIUM, press_and_wait
from tests.review_scenario import MODEL, PARK_TEXT, add_article, fill_store, prediction
from tests.test_store_postgres import postgres_url  # noqa: F401  (the throw-away PostgreSQL cluster fixture)
from tests.test_review_app import csrf_of, decide, events
from tests.test_review_blind import text_of
from tests.test_labels import ev

YES_ZORG = {"cocreation": "1", "sector": "zorg", "type": "ontwerp"}
NO = {"cocreation": "0"}
EXTRA = 5  # extra flagged stories, so the browser test times at least five decisions and five settles


def label(cocreation: bool, sector: str | None = None, type_: str | None = None, note: str = "") -> dict:
    """Return a review label row as the app stores it."""
    return {"cocreation": int(cocreation), "sector": sector, "type": type_, "borderline": 0, "note": note}


def disagree(store: Store, article_id: int, note: str = "") -> None:
    """Let ann say yes (zorg, ontwerp) and bea say no to one article, through the store's writers."""
    store.append_decision(article_id, "ann", label(True, "zorg", "ontwerp", note), model_version=MODEL,
                          codebook_version="1")
    store.append_decision(article_id, "bea", label(False, note="geen inspraak"), model_version=MODEL,
                          codebook_version="1")


def add_extra_stories(store: Store, count: int = EXTRA) -> list[int]:
    """Store `count` more flagged stories with confident predictions; return their ids."""
    ids = [add_article(store, f"extra-{n}", f"Buurt denkt mee over plein {n}", PARK_TEXT.replace("park", f"plein {n}"),
                       "Dagblad De Polder", f"2026-03-0{n + 1}T09:00:00+01:00") for n in range(count)]
    store.save_predictions([prediction(i, 0.8, "wonen", "beleid", []) for i in ids], run_id=None)
    return ids


def disputed_flags(store: Store) -> dict[int, int]:
    """Return cluster id -> the stored disputed flag."""
    with store.engine.connect() as conn:
        return dict(conn.execute(select(clusters.c.cluster_id, clusters.c.disputed)).all())


@pytest.fixture
def ann(review_store):
    """A test client of the app for ann (no tokens: one person, who may settle)."""
    settings, store, _ids = review_store
    return create_app(settings, store, analyst="ann").test_client()


def settle(client, article_id: int, **form):
    """Post a settle with a valid CSRF token taken from the settle screen."""
    token = csrf_of(client.get(f"/article/{article_id}/settle").get_data(as_text=True))
    return client.post(f"/article/{article_id}/settle", data={"csrf_token": token, **form})


# -- the dispute rule: a settle ends a dispute -------------------------------------------------------------------
def test_a_settled_article_is_not_disputed():
    yes, no = ev(1, "ann", "decide", (1, "zorg", "ontwerp")), ev(2, "bea", "decide", (0, None, None))
    assert labels.is_disputed({"ann": yes, "bea": no}) is True
    assert labels.is_disputed({"ann": yes, "bea": no}, settled=True) is False
    assert labels.is_disputed({"ann": yes, "bea": ev(2, "bea", "decide", (1, "zorg", "ontwerp"))}, settled=False) is False


def test_a_settle_clears_the_disputed_flag_and_the_disputed_filter(review_store, ann):
    _settings, store, ids = review_store
    disagree(store, ids["care"])
    assert disputed_flags(store)[ids["care"]] == 1
    assert "Patiënten denken mee" in ann.get("/?status=disputed").get_data(as_text=True)
    store.append_settle(ids["care"], "lea", label(True, "zorg", "ontwerp"), model_version=MODEL, codebook_version="1")
    assert disputed_flags(store)[ids["care"]] == 0
    assert "Patiënten denken mee" not in ann.get("/?status=disputed").get_data(as_text=True)
    store.rebuild_clusters()  # a rebuild derives the same flag from the events
    assert disputed_flags(store)[ids["care"]] == 0
    store.append_decision(ids["care"], "bea", label(False, note="nog steeds nee"), model_version=MODEL,
                          codebook_version="1")  # a later change of mind does not reopen a settled dispute
    assert disputed_flags(store)[ids["care"]] == 0
    assert store.analyst_progress("2000-01-01")[0]["disputed"] == 0


# -- the settle screen ------------------------------------------------------------------------------------------
def test_the_settle_screen_shows_both_decisions_side_by_side_with_a_blank_form(review_store, ann):
    _settings, store, ids = review_store
    disagree(store, ids["park"], note="bewoners ontwerpen echt mee")
    answer = ann.get(f"/article/{ids['park_copy']}/settle")  # a copy's screen settles its canonical article
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert f"Settle #{ids['park']}: Bewoners ontwerpen nieuw park mee" in text_of(html)
    assert "een nieuw park aan de rand van de wijk." in html  # the evidence sentence as the quote
    header = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    assert re.findall(r'class="analyst">(\w+)<', header) == ["ann", "bea"]
    assert "<td>Zorg</td>" in html and "<td>Ontwerp</td>" in html and "bewoners ontwerpen echt mee" in html
    assert 'id="settle-form"' in html and " checked" not in html  # nothing prechecked, no default "yes"
    assert 'value="goede_doelen"' in html and "Goede doelen" in html  # codes as values, Dutch names shown


def test_a_settle_takes_borderline_and_a_note_then_goes_to_the_next_dispute_by_id(review_store, ann):
    _settings, store, ids = review_store
    for key in ("park", "care", "xss"):
        disagree(store, ids[key])
    answer = settle(ann, ids["park"], cocreation="1", sector="wonen", type="zelfbouw", borderline="1",
                    note="bewoners bouwen zelf")
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/article/{ids['care']}/settle")
    [event] = [e for e in events(store) if e["action"] == "settle"]
    assert (event["article_id"], event["sector"], event["type"], event["borderline"], event["note"]) == \
        (ids["park"], "wonen", "zelfbouw", 1, "bewoners bouwen zelf")
    assert f"Settled #{ids['park']}: yes · Wonen · Zelfbouw · borderline." in text_of(
        ann.get(answer.headers["Location"]).get_data(as_text=True))
    # The last one by id leads back to the list; an earlier open one is not jumped back to.
    assert settle(ann, ids["xss"], **NO).headers["Location"].endswith("/agreement")
    assert settle(ann, ids["care"], **NO).headers["Location"].endswith("/agreement")


def test_the_settle_screen_takes_the_public_lesson_and_the_private_mark(review_store, ann):
    _settings, store, ids = review_store
    disagree(store, ids["park"])
    assert 'name="lesson"' in ann.get(f"/article/{ids['park']}/settle").get_data(as_text=True)
    settle(ann, ids["park"], cocreation="1", sector="wonen", type="zelfbouw", lesson="Bewoners bouwen het zelf.",
           private="1")
    final = store.final_labels()[ids["park"]]
    assert final.label_source == "settled" and final.lesson == "Bewoners bouwen het zelf." and final.private


def test_a_settle_without_a_sector_says_so_on_the_same_screen_and_saves_nothing(review_store, ann):
    _settings, store, ids = review_store
    disagree(store, ids["care"])
    answer = settle(ann, ids["care"], cocreation="1", type="ontwerp", borderline="1", note="bijna")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "Not settled: A yes needs a sector: press 1-9." in html
    assert 'id="settle-form"' in html and "bijna" in html and 'id="borderline" checked' in html
    assert [e for e in events(store) if e["action"] == "settle"] == []


def test_the_list_stays_in_place_and_a_settled_row_shows_its_label_and_settler_and_a_settle_again_form(
        review_store, ann):
    _settings, store, ids = review_store
    for key in ("park", "care", "xss"):
        disagree(store, ids[key])

    def rows() -> list[tuple[int, str]]:
        html = ann.get("/agreement").get_data(as_text=True)
        assert "<form" not in html.split('id="disagreements"')[1].split("</table>")[0]  # no settle form on the list
        found = re.findall(r'<tr class="disagreement[^"]*" id="disagreement-(\d+)">(.*?)</tr>', html, re.S)
        return [(int(i), text_of(body)) for i, body in found]

    before = rows()
    assert [i for i, _ in before] == sorted([ids["park"], ids["care"], ids["xss"]])
    assert all(body.endswith("Settle →") for _, body in before)
    settle(ann, ids["care"], cocreation="1", sector="welzijn", type="uitvoering")
    after = rows()
    assert [i for i, _ in after] == [i for i, _ in before]  # no re-sorting after a settle
    care = dict(after)[ids["care"]]
    assert care.endswith("settled yes · Welzijn · Uitvoering by ann") and "Settle →" not in care
    html = ann.get(f"/article/{ids['care']}/settle").get_data(as_text=True)
    # A settled article shows who settled it and how, and can be settled again (issue 21, item 7).
    assert "Settled by ann : yes · Welzijn · Uitvoering" in text_of(html)
    assert 'id="settle-form"' in html and "Settle again" in text_of(html)


def test_only_a_neutral_lead_gets_the_settle_form(review_store):
    settings, store, ids = review_store
    disagree(store, ids["care"])
    tokens = {name: add_analyst(store, name, lead=name != "bob") for name in ("ann", "bob", "lea")}
    app = create_app(settings, store)
    for name, offered in (("bob", False), ("ann", False), ("lea", True)):
        client = app.test_client()
        client.get(f"/?token={tokens[name]}")
        answer = client.get(f"/article/{ids['care']}/settle")
        html = answer.get_data(as_text=True)
        assert ('id="settle-form"' in html) is offered, name
        assert ("reviewed #" in html) is (name == "ann"), name  # ann, a lead, decided care herself
    # bob, no lead and undecided on care, is not shown the settle screen at all: the decisions stay blind to him.
    assert answer.status_code == 200
    client = app.test_client()
    client.get(f"/?token={tokens['bob']}")
    answer = client.get(f"/article/{ids['care']}/settle")
    assert answer.status_code == 403 and "stay hidden until you decide it yourself" in answer.get_data(as_text=True)


# -- the agreement page -----------------------------------------------------------------------------------------
def test_the_agreement_page_states_its_definition_and_each_analysts_progress(review_store, ann):
    settings, store, ids = review_store
    disagree(store, ids["care"])
    decide(ann, ids["park"], cocreation="1", sector="overheid", type="ontwerp")
    add_analyst(store, "cem")  # registered, nothing decided yet
    html = create_app(settings, store, analyst="ann").test_client().get(
        "/agreement", headers={"X-Radar-Token": add_analyst(store, "lea", lead=True)}).get_data(as_text=True)
    assert ("Definition: decision κ over all articles both analysts decided; sector and type κ over the articles "
            "both called yes.") in html
    progress = {name: text_of(body) for name, body in
                re.findall(r'<tr data-analyst="(\w+)">(.*?)</tr>', html, re.S)}
    # ann decided park and care (2 of 3 flagged stories), both today; care is disputed. bea decided care.
    assert progress == {"ann": "ann 2 / 3 2 1", "bea": "bea 1 / 3 1 1", "cem": "cem 0 / 3 0 0",
                        "lea": "lea 0 / 3 0 0"}
    today = datetime.now(UTC).date().isoformat()
    assert store.analyst_progress("2000-01-01")[0] == {"analyst": "ann", "flagged": 3, "decided": 2,
                                                        "decided_today": 0, "disputed": 1}
    assert store.analyst_progress(today)[0]["decided_today"] == 2


# -- suggestions that do not anchor -------------------------------------------------------------------------------
def test_an_unsure_suggestion_prechecks_nothing_and_stays_visible(review_store, ann):
    _settings, store, ids = review_store
    unsure = dict(prediction(ids["care"], 0.62, "zorg", "ontwerp", []), model_version="test-model-2")
    unsure["sector_scores"]["zorg"], unsure["type_scores"]["ontwerp"] = 0.48, 0.41
    unsure.update(sector=None, type=None)  # as ScoreRecord.prediction_row stores an unsure label
    store.save_predictions([unsure], run_id=None)
    html = ann.get(f"/article/{ids['care']}").get_data(as_text=True)
    form = html.split('id="decision"')[1].split("</form>")[0]
    assert " checked" not in form
    suggested = text_of(html.split('class="suggested-labels"')[1].split("</ul>")[0])
    assert "Sector: Zorg 48% (not confident: not preselected, you choose)" in suggested
    assert "Type: Ontwerp 41% (not confident" in suggested
    # A confident suggestion is preselected and says so.
    html = ann.get(f"/article/{ids['park']}").get_data(as_text=True)
    assert 'value="overheid" data-key="1" checked' in html and 'value="ontwerp" data-key="2" checked' in html
    assert "Sector: Overheid 90% (confident: preselected)" in text_of(html)


# -- the keyboard in a real browser, and the note's figure ------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_deciding_and_settling_by_keyboard_in_the_browser(live_app, watched_page):
    base, store, ids = live_app
    extra = add_extra_stories(store)
    page = watched_page()
    page.goto(base + "/")
    press_and_wait(page, "Enter")
    decisions = []
    while page.url.split("?")[0].rsplit("/", 1)[-1].isdigit():  # ann decides the queue with the model's labels
        decisions.append(press_and_wait(page, "y" if len(decisions) % 2 == 0 else "n"))
    assert len(decisions) == 3 + EXTRA
    for article_id in [ids["park"], ids["care"], ids["xss"], *extra]:
        store.append_decision(article_id, "bea", label(True, "cultuur", "onderzoek"), model_version=MODEL,
                              codebook_version="1")
    disputed = sorted([ids["park"], ids["care"], ids["xss"], *extra])

    page.goto(base + "/agreement")
    assert page.locator("form.settle").count() == 0
    order = page.locator("tr.disagreement").evaluate_all("rows => rows.map(r => r.id)")
    assert order == [f"disagreement-{i}" for i in disputed]
    with page.expect_navigation():
        page.locator(f"#disagreement-{disputed[0]} a.settle-link").click()
    assert page.locator("#decisions th.analyst").all_inner_texts() == ["ann", "bea"]
    press_and_wait(page, "j")  # j and k walk the disagreements in the list's order, q goes back to the list
    assert page.url.endswith(f"/article/{disputed[1]}/settle")
    press_and_wait(page, "q")
    assert page.url.split("#")[0].endswith("/agreement")
    page.goto(f"{base}/article/{disputed[1]}/settle")
    press_and_wait(page, "k")
    assert page.url.endswith(f"/article/{disputed[0]}/settle")

    page.keyboard.press("7")  # cultuur
    page.keyboard.press("Shift+Digit5")  # onderzoek
    page.keyboard.press("b")
    page.keyboard.press("e")
    page.keyboard.type("bea heeft gelijk")
    page.keyboard.press("Escape")
    settles = [press_and_wait(page, "y")]
    assert page.url.endswith(f"/article/{disputed[1]}/settle") and "Settled #" in page.inner_text(".flashes")
    first = store.latest_settle(disputed[0])
    assert (first.cocreation, first.sector, first.type, first.borderline, first.note) == \
        (1, "cultuur", "onderzoek", 1, "bea heeft gelijk")
    page.keyboard.press("y")  # a yes without sector and type is refused on the same screen
    page.wait_for_selector(".flash-error")
    assert "A yes needs a sector" in page.inner_text(".flash-error") and store.latest_settle(disputed[1]) is None
    while "/settle" in page.url:
        settles.append(press_and_wait(page, "n"))
    assert page.url.endswith("/agreement") and len(settles) == len(disputed) >= 5
    assert [store.latest_settle(i).cocreation for i in disputed] == [1] + [0] * (len(disputed) - 1)
    order_after = page.locator("tr.disagreement").evaluate_all("rows => rows.map(r => r.id)")
    assert order_after == order and page.locator("tr.disagreement.settled").count() == len(disputed)
    assert "settled yes · Cultuur · Onderzoek · borderline by ann" in " ".join(
        page.inner_text(f"#disagreement-{disputed[0]}").split())
    assert page.locator("form.settle").count() == 0 and not page.errors and not page.dialogs
    decision_ms, settle_ms = statistics.median(decisions) * 1000, statistics.median(settles) * 1000
    print(f"\nkeyboard in Chromium: median {decision_ms:.0f} ms per decision (n={len(decisions)}), "
          f"median {settle_ms:.0f} ms per settle (n={len(settles)}), key press to the next page loaded")
    assert decision_ms < 2000 and settle_ms < 2000


# -- the same store queries on PostgreSQL ----------------------------------------------------------------------
def test_settle_and_progress_queries_on_postgres(postgres_url):  # noqa: F811
    store = Store(postgres_url)
    try:
        store.migrate()
        ids = fill_store(store)
        disagree(store, ids["care"])
        disagree(store, ids["park"])
        assert [c.canonical_id for c in store.review_queue("cem", QueueFilters(status="disputed"), 0.5)] == \
            [ids["park"], ids["care"]]
        store.append_settle(ids["care"], "lea", label(False), model_version=MODEL, codebook_version="1")
        assert disputed_flags(store)[ids["care"]] == 0 and disputed_flags(store)[ids["park"]] == 1
        assert [c.canonical_id for c in store.review_queue("cem", QueueFilters(status="disputed"), 0.5)] == \
            [ids["park"]]
        today = datetime.now(UTC).date().isoformat()
        assert store.analyst_progress(today) == [
            {"analyst": "ann", "flagged": 3, "decided": 2, "decided_today": 2, "disputed": 1},
            {"analyst": "bea", "flagged": 3, "decided": 2, "decided_today": 2, "disputed": 1}]
    finally:
        store.close()
