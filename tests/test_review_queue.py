"""The review queue an analyst can work through: snippets, search, skip for now, bulk "no" with its undo, export of
the filter, dd-mm-jjjj dates, threshold and story counts. Flask's test client for behaviour, the real `radar run`
for the counts, and a real headless Chromium for the keyboard flow."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from sqlalchemy import func, select

from pipeline.codebook import load_codebook
from pipeline.demo_site import start_demo_site
from pipeline.research.export import COLUMNS, iter_export_rows, write_export
from pipeline.review.app import create_app
from pipeline.settings import load_settings
from pipeline.store import Store, reviews, skips
from tests.cli_helpers import invoke
from tests.conftest import CHROMIUM, ROOT, press_and_wait
from tests.review_scenario import MODEL

ROW = re.compile(r'<tr class="queue-row[^"]*" data-id="(\d+)"')


@pytest.fixture
def client(review_store):
    """A Flask test client of the review app for analyst 'ann'."""
    settings, store, _ids = review_store
    return create_app(settings, store).test_client()


def rows(page: str) -> list[int]:
    """Return the canonical ids of the queue rows on a rendered page, in order."""
    return [int(i) for i in ROW.findall(page)]


def words(page: str) -> str:
    """Return a page's visible text on one line."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def csrf_of(page: str) -> str:
    """Return the CSRF token embedded in a rendered page."""
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post(client, path: str, data: dict):
    """Post a queue form with the CSRF token of the queue page."""
    token = csrf_of(client.get("/").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def events(store: Store) -> list:
    """Return every review event, oldest first."""
    with store.engine.connect() as conn:
        return list(conn.execute(select(reviews).order_by(reviews.c.id)).mappings())


# -- snippets -------------------------------------------------------------------------------------------------------
def test_each_row_shows_an_escaped_snippet_around_its_key_sentence(client, review_store):
    _settings, _store, ids = review_store
    page = client.get("/").get_data(as_text=True)
    snippets = dict(zip(rows(page), re.findall(r'<p class="snippet">(.*?)</p>', page, re.S), strict=True))
    assert snippets[ids["park"]].startswith(
        '<mark class="key">Bewoners ontwerpen samen met de gemeente Polderveen een nieuw park')
    assert "Op drie avonden tekenden zij mee" in snippets[ids["park"]]  # context after the key sentence
    assert snippets[ids["care"]].startswith("Patiënten met reuma denken mee")  # no key sentence: the lead
    assert '<mark class="key">Bewoners ontwerpen samen met de gemeente een speeltuin.</mark>' in snippets[ids["xss"]]
    assert "&lt;img src=x onerror=" in snippets[ids["xss"]] and "<img" not in snippets[ids["xss"]]


def test_snippets_read_the_texts_of_the_page_rows_only(client, review_store, monkeypatch):
    _settings, store, ids = review_store
    asked = []
    real = store.article_texts
    monkeypatch.setattr(store, "article_texts", lambda article_ids: asked.append(list(article_ids)) or real(asked[-1]))
    monkeypatch.setattr(store, "iter_articles", lambda *a: pytest.fail("the queue must not load every article"))
    monkeypatch.setattr("pipeline.review.queries.PAGE_SIZE", 2)
    page = client.get("/").get_data(as_text=True)
    assert rows(page) == [ids["park"], ids["care"]] and asked == [[ids["park"], ids["care"]]]


# -- search, dates, labels, threshold and counts ---------------------------------------------------------------------
def test_search_filters_the_queue_and_stays_in_its_links(client, review_store):
    ids = review_store[2]
    page = client.get("/?search=moestuin").get_data(as_text=True)
    assert rows(page) == [ids["park"]] and 'value="moestuin"' in page
    assert f'href="/article/{ids["park"]}?search=moestuin"' in page
    assert rows(client.get("/?search=krijgt+park").get_data(as_text=True)) == [ids["park"]]  # the copy's title
    empty = client.get("/?search=onbestaandwoord").get_data(as_text=True)
    assert rows(empty) == [] and "no flagged article matches “onbestaandwoord”" in words(empty)
    article = client.get(f"/article/{ids['park']}?search=bewoners").get_data(as_text=True)
    assert "1 of 2" in words(article)  # the article page's place counts in the searched queue


def test_dates_are_shown_and_typed_as_dd_mm_jjjj(client, review_store):
    ids = review_store[2]
    page = client.get("/").get_data(as_text=True)
    assert '<td class="nowrap">10-03-2026</td>' in page and "2026-03-10" not in words(page)
    assert page.count('placeholder="dd-mm-jjjj"') == 2
    typed = client.get("/?date_from=05-03-2026&date_to=11-03-2026")
    assert typed.status_code == 200 and rows(typed.get_data(as_text=True)) == [ids["park"]]
    assert 'name="date_from" value="05-03-2026"' in typed.get_data(as_text=True)
    assert "date_from=2026-03-05" in typed.get_data(as_text=True)  # links carry the ISO date


@pytest.mark.parametrize("bad", ["31-02-2026", "gisteren", "2026-13-01", "99999999999999999999"])
def test_a_bad_date_is_a_clear_message_and_the_rest_still_works(client, bad):
    answer = client.get("/", query_string={"date_from": bad, "sector": "zorg"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "type it as dd-mm-jjjj, for example 05-03-2026" in words(page) and "From:" in words(page)
    assert len(rows(page)) == 1  # the sector filter still applies; the bad date is left out


def test_labels_show_dutch_display_names_and_filters_keep_codes(client):
    book = load_codebook()
    page = client.get("/").get_data(as_text=True)
    assert f'<option value="goede_doelen">{book.label_of("goede_doelen")}</option>' in page
    assert f"<td>{book.label_of('overheid')} · {book.label_of('ontwerp')}</td>" in page
    assert book.label_of("goede_doelen") == "Goede doelen"


def test_the_queue_shows_the_threshold_and_counts_stories_and_articles(client, review_store):
    settings, store, ids = review_store
    threshold = create_app(settings, store).extensions["radar"].threshold
    text = words(client.get("/").get_data(as_text=True))
    assert f"flag threshold {threshold:.2f}" in text
    assert "3 stories flagged (4 articles)" in text and "3 stories to review" in text


def test_run_report_and_queue_count_the_same_stories_and_articles(tmp_path):
    server, base = start_demo_site("127.0.0.1", 0)
    feeds = (ROOT / "data" / "demo" / "feeds.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", base)
    (tmp_path / "feeds.toml").write_text(feeds, encoding="utf-8")
    config = tmp_path / "radar.toml"
    config.write_text(f'[radar]\ndata_dir = "{tmp_path / "local"}"\nfeeds_file = "{tmp_path / "feeds.toml"}"\n'
                      'host_delay = 0.0\nallow_private_addresses = true\nprogress = false\n', encoding="utf-8")
    try:
        result = invoke("--config", str(config), "run")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.stderr
    reported = re.search(r"Scoring: \d+ scored, (\d+) stories flagged \((\d+) articles\) for review", result.stdout)
    assert reported, result.stdout
    settings = load_settings(config)
    store = Store(settings.effective_database_url)
    truth = _flagged_truth(store)
    assert tuple(map(int, reported.groups())) == truth and truth[0] < truth[1]  # the demo has a flagged copy
    page = create_app(settings, store, analyst="ann").test_client().get("/").get_data(as_text=True)
    assert f"{truth[0]} stories flagged ({truth[1]} articles)" in words(page)
    queued = store.queued_counts()[0]
    assert f"Queue: {queued} stories in all, 0 of them sent in by readers" in result.stdout
    assert f"{queued} stories to review" in words(page)
    store.close()


def _flagged_truth(store: Store) -> tuple[int, int]:
    # Counted from the articles themselves: flagged articles, and the clusters they belong to.
    flagged = [a for a, p in store.iter_articles_with_predictions() if p and p.flagged]
    return len({a.cluster_id for a in flagged}), len(flagged)


# -- skip for now ----------------------------------------------------------------------------------------------------
def test_skip_parks_an_article_without_deciding_and_unpark_returns_it(client, review_store):
    _settings, store, ids = review_store
    answer = post(client, "/skip?order=newest", {"article_id": ids["park_copy"]})  # a copy stands for its cluster
    assert answer.status_code == 302 and answer.headers["Location"] == "/?order=newest"
    page = client.get("/").get_data(as_text=True)
    assert ids["park"] not in rows(page) and f"Skipped #{ids['park']} for now" in page
    assert "(1 skipped for now)" in words(page) and events(store) == []
    skipped = client.get("/?status=skipped").get_data(as_text=True)
    assert rows(skipped) == [ids["park"]] and 'class="link unskip"' in skipped
    post(client, "/unskip", {"article_id": ids["park"]})
    assert rows(client.get("/").get_data(as_text=True))[0] == ids["park"]
    assert rows(client.get("/?status=skipped").get_data(as_text=True)) == []


@pytest.mark.parametrize("path", ["/skip", "/unskip", "/bulk-no"])
@pytest.mark.parametrize("value, status", [("", 400), ("abc", 400), ("-1", 400), (str(2**70), 400), ("999", 404)])
def test_queue_actions_refuse_bad_ids_with_a_message(client, review_store, path, value, status):
    answer = post(client, path, {"article_id": value} if value else {})
    assert answer.status_code == status
    assert ("Nothing was changed" if status == 400 else "There is no article #999") in answer.get_data(as_text=True)
    assert events(review_store[1]) == []


def test_queue_actions_need_the_csrf_token(client, review_store):
    ids = review_store[2]
    for path in ("/skip", "/unskip", "/bulk-no"):
        assert client.post(path, data={"article_id": ids["park"]}).status_code == 400
    assert client.post("/bulk-undo", data={"event_id": "1"}).status_code == 400


# -- bulk "no" and its undo ------------------------------------------------------------------------------------------
def test_bulk_no_is_one_decision_event_per_article_and_one_undo_restores_them_all(client, review_store):
    _settings, store, ids = review_store
    token = csrf_of(client.get(f"/article/{ids['care']}").get_data(as_text=True))
    client.post(f"/article/{ids['care']}/decide", data={"csrf_token": token, "cocreation": "1", "sector": "zorg",
                                                         "type": "ontwerp"})
    answer = post(client, "/bulk-no", {"article_id": [ids["park"], ids["care"], ids["xss"]]})
    assert answer.status_code == 302
    made = events(store)[1:]
    assert [(e["article_id"], e["action"], e["cocreation"], e["analyst"]) for e in made] == \
        [(ids[k], "decide", 0, "ann") for k in ("park", "care", "xss")]
    assert {(e["model_version"], e["codebook_version"]) for e in made} == {(MODEL, "1")}  # as a single decision
    assert json.loads(made[1]["previous"])["cocreation"] == 1  # care's yes is kept as the state before
    page = client.get("/?status=all").get_data(as_text=True)
    assert "Saved no for 3 articles" in page
    undo = re.search(r'<form id="bulk-undo-form".*?</form>', page, re.S).group(0)
    assert sorted(map(int, re.findall(r'name="event_id" value="(\d+)"', undo))) == [e["id"] for e in made]
    answer = client.post("/bulk-undo?status=all", data={"csrf_token": csrf_of(page),
                                                        "event_id": [e["id"] for e in made]})
    assert answer.status_code == 302 and answer.headers["Location"] == "/?status=all"
    current = {r.article_id: (r.cocreation, r.sector) for r in store.current_reviews()}
    assert current == {ids["care"]: (1, "zorg")}  # every article as it was before the bulk
    assert [e["action"] for e in events(store)[4:]] == ["undo"] * 3
    assert "bulk-undo-form" not in client.get("/").get_data(as_text=True)  # offered once, right after the bulk


# -- export of the current filter ------------------------------------------------------------------------------------
def test_export_link_downloads_the_current_filter_as_radar_export_writes_it(client, review_store):
    _settings, store, ids = review_store
    page = client.get("/?search=polderveen&status=all").get_data(as_text=True)
    link = re.search(r'id="export-csv" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    answer = client.get(link)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert sorted(int(r["article_id"]) for r in table) == sorted([ids["park"], ids["park_copy"]])
    assert list(table[0]) == list(COLUMNS)
    same = write_export(iter_export_rows(store, "all", cluster_ids=[ids["park"]]), "csv")
    assert answer.get_data() == same  # byte for byte what `radar export`'s code writes
    jsonl = client.get(link.replace("format=csv", "format=jsonl"))
    assert [json.loads(line)["cluster_id"] for line in jsonl.get_data(as_text=True).splitlines()] == [ids["park"]] * 2
    assert client.get("/export?format=parquet").status_code == 400


def test_export_of_the_to_do_filter_leaves_out_what_the_analyst_did(client, review_store):
    _settings, store, ids = review_store
    post(client, "/skip", {"article_id": ids["care"]})
    answer = client.get("/export?format=jsonl")
    exported = {json.loads(line)["cluster_id"] for line in answer.get_data(as_text=True).splitlines()}
    assert exported == {ids["park"], ids["xss"]}


# -- the keyboard flow in a real Chromium ----------------------------------------------------------------------------


def skips_of(store: Store, analyst: str) -> list[int]:
    """Return the clusters the analyst parked."""
    with store.engine.connect() as conn:
        return list(conn.execute(select(skips.c.cluster_id).where(skips.c.analyst == analyst)).scalars())


def event_count(store: Store) -> int:
    """Return how many review events there are."""
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(reviews)).scalar()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)")
def test_keyboard_skip_bulk_no_and_undo_in_chromium(live_app, watched_page):
    base, store, ids = live_app
    page = watched_page()
    page.goto(base + "/")
    ids_on_screen = lambda: [int(i) for i in page.locator("tr.queue-row").evaluate_all(  # noqa: E731
        "rows => rows.map(r => r.dataset.id)")]
    assert ids_on_screen() == [ids["park"], ids["care"], ids["xss"]]
    assert page.locator("tr.queue-row.current").get_attribute("data-id") == str(ids["park"])

    # s parks the row under the cursor (care); the cursor stays in place, now on xss.
    page.keyboard.press("j")
    timings = {"skip": press_and_wait(page, "s")}
    assert ids_on_screen() == [ids["park"], ids["xss"]] and skips_of(store, "ann") == [ids["care"]]
    assert page.locator("tr.queue-row.current").get_attribute("data-id") == str(ids["xss"])
    assert event_count(store) == 0

    # x selects xss, k and x select park too; n says no to both.
    page.keyboard.press("x")
    page.keyboard.press("k")
    page.keyboard.press("x")
    assert page.locator("#selected-count").inner_text() == "2" and page.locator("tr.queue-row.selected").count() == 2
    timings["bulk_no"] = press_and_wait(page, "n")
    decided = {r.article_id: r.cocreation for r in store.current_reviews() if r.analyst == "ann"}
    assert decided == {ids["park"]: 0, ids["xss"]: 0} and event_count(store) == 2
    assert "Saved no for 2 articles" in page.inner_text(".flashes") and ids_on_screen() == []

    # u right after the bulk undoes both decisions.
    timings["bulk_undo"] = press_and_wait(page, "u")
    assert [r for r in store.current_reviews() if r.analyst == "ann"] == [] and event_count(store) == 4
    assert ids_on_screen() == [ids["park"], ids["xss"]] and "Undone: your no on 2 articles" in page.inner_text(".flashes")

    # Under the "skipped" filter, s unparks care again.
    page.goto(base + "/?status=skipped")
    assert ids_on_screen() == [ids["care"]]
    timings["unpark"] = press_and_wait(page, "s")
    assert skips_of(store, "ann") == [] and ids_on_screen() == []
    page.goto(base + "/")
    assert ids_on_screen() == [ids["park"], ids["care"], ids["xss"]]
    assert page.errors == [] and page.dialogs == []
    print("queue key timings (s):", {k: round(v, 3) for k, v in timings.items()})


def test_skip_from_the_article_page_goes_on_to_the_next_article_and_never_off_site(client, review_store):
    _settings, store, ids = review_store
    page = client.get(f"/article/{ids['park']}").get_data(as_text=True)
    assert 'id="skip-article"' in page
    nxt = re.search(r'name="next" value="([^"]+)"', page).group(1)
    answer = client.post("/skip", data={"csrf_token": csrf_of(page), "article_id": ids["park"], "next": nxt})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(nxt.replace("&amp;", "&"))
    assert skips_of(store, "ann") == [ids["park"]] and events(store) == []
    evil = client.post("/skip", data={"csrf_token": csrf_of(page), "article_id": ids["care"],
                                      "next": "//evil.example/"})
    assert "evil.example" not in evil.headers["Location"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)")
def test_s_on_the_article_page_parks_it_and_opens_the_next(live_app, watched_page):
    base, store, ids = live_app
    page = watched_page()
    page.goto(f"{base}/article/{ids['park']}")
    press_and_wait(page, "s")
    assert skips_of(store, "ann") == [ids["park"]] and event_count(store) == 0
    assert f"/article/{ids['care']}" in page.url and page.errors == []


def test_the_queue_head_and_agreement_progress_count_stories_readers_sent_in(review_store):
    # Issue 21, item 11: road (score 0.02, not flagged) was sent in by a reader, so it waits in the queue.
    settings, store, ids = review_store
    submission = store.add_submission("https://example.nl/dijkweg", "Kijk hier", "", "", "h")
    store.finish_submission(submission, "fetched", article_id=ids["road"])
    client = create_app(settings, store, analyst="ann").test_client()
    html = client.get("/").get_data(as_text=True)
    flagged = store.flagged_counts()[0]
    assert f"{flagged + 1} stories to review" in " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert re.search(r'id="submitted-count"><strong>1</strong> story sent in by readers', html)
    assert f'<meter min="0" max="{flagged + 1}" value="0">' in html
    assert store.review_progress("ann", "2000-01-01")["remaining"] == flagged + 1
    assert store.queued_counts() == (flagged + 1, 1)  # what the run report says (nightly.summarise)
    store.append_decision(ids["road"], "ann", {"cocreation": 0, "sector": None, "type": None, "borderline": 0,
                                               "note": ""}, model_version=None, codebook_version="1")
    (ann,) = [p for p in store.analyst_progress("2000-01-01") if p["analyst"] == "ann"]
    assert (ann["decided"], ann["flagged"]) == (1, flagged + 1)  # before: 0 of the flagged stories only
