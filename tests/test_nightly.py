"""The nightly run end to end against a real local server: faults, dedupe, idempotence, lock."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.errors import RunCrashed, RunLocked
from pipeline.runs.nightly import run_lock, run_nightly, summarise
from sqlalchemy import select, update

from pipeline.store import Store, items, submissions
from tests.cli_helpers import RADAR
from tests.conftest import ROOT, article_html, corpus_articles, rss
from tests.httpserver import Reply, drip


def _store(settings) -> Store:
    return Store(settings.effective_database_url)


def _publish(server, path: str, article: dict, **kw) -> dict:
    server.page(path, article_html(article["title"], article["text"], **kw))
    return {"title": article["title"], "link": server.url(path), "description": article["text"][:150]}


@pytest.fixture
def texts():
    return corpus_articles()[:8]


def test_run_stores_articles_and_rerun_adds_nothing(server, make_settings, texts):
    items = [_publish(server, f"/n/{i}.html", a) for i, a in enumerate(texts[:4])]
    server.add("/feed.xml", Reply(200, rss(items), {"Content-Type": "application/rss+xml", "ETag": '"v1"'}),
               Reply(304, b"", {"ETag": '"v1"'}))
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}])
    first = run_nightly(settings)
    assert first.status == "ok" and first.articles_new == 4 and first.feeds[0].new == 4
    second = run_nightly(settings)
    assert second.feeds[0].status == "not_modified"
    assert second.articles_new == 0 and second.articles_failed == 0
    feed_requests = [headers for path, headers, _ in server.requests if path == "/feed.xml"]
    assert feed_requests[1].get("If-None-Match") == '"v1"'
    store = _store(settings)
    stored = store.articles()
    assert len(stored) == 4 and all(a.method.startswith("trafilatura") for a in stored)
    assert {a.title for a in stored} == {t["title"] for t in texts[:4]}
    assert store.raw_page(stored[0].item_id).startswith(b"<!doctype html>")
    assert [r["status"] for r in store.recent_runs()] == ["ok", "ok"]


def test_fault_table_in_one_run(server, make_settings, texts):
    server.page("/robots.txt", "User-agent: *\nDisallow: /intern/\n", "text/plain")
    good = [_publish(server, f"/ok/{i}.html", a) for i, a in enumerate(texts[:3])]
    server.add("/missing.html", Reply(404, b"weg", {"Content-Type": "text/html"}))
    server.page("/rapport.pdf", b"%PDF-1.5 ...", "application/pdf")
    server.page("/intern/memo.html", article_html("Memo", texts[3]["text"]))
    server.add("/loop", Reply(302, b"", {"Location": "/loop"}))
    server.add("/flaky.html", Reply(500, b"oops"), Reply(200, article_html("Flaky", texts[4]["text"]).encode(),
                                                           {"Content-Type": "text/html; charset=utf-8"}))
    bad = [{"title": t, "link": server.url(p)} for t, p in
           [("Weg", "/missing.html"), ("Pdf", "/rapport.pdf"), ("Intern", "/intern/memo.html"),
            ("Lus", "/loop"), ("Wankel", "/flaky.html")]]
    server.page("/feed.xml", rss(good + bad), "application/rss+xml")
    server.page("/broken.xml", b"<rss><channel><title>kapot", "application/rss+xml")
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")},
                              {"name": "kapot", "url": server.url("/broken.xml")}], max_redirects=3)
    report = run_nightly(settings)
    assert report.articles_new == 4  # 3 good + the flaky one after a retry
    assert report.skipped == {"http_404": 1, "unsupported_content_type": 1, "robots_disallowed": 1,
                              "too_many_redirects": 1}
    assert [f.status for f in report.feeds if f.name == "kapot"] == ["failed"]
    assert report.status == "ok"  # 1 of 2 feeds failed: at, not above, the allowed share
    text = summarise(report)
    assert "FAILED kapot" in text and "skipped robots_disallowed: 1" in text
    statuses = _store(settings).item_counts()
    assert statuses == {"done": 4, "gone": 1, "skipped": 3}


def test_timeout_is_recorded_and_retried_next_run(server, make_settings, texts):
    slow = Reply(200, article_html("Traag", texts[0]["text"]).encode(), {"Content-Type": "text/html"}, delay=1.5)
    fast = Reply(200, slow.body, {"Content-Type": "text/html"})
    server.add("/traag.html", slow, slow, fast)
    server.page("/feed.xml", rss([{"title": "Traag", "link": server.url("/traag.html")}]), "application/rss+xml")
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}], read_timeout=0.4, retries=1)
    first = run_nightly(settings)
    assert first.articles_failed == 1 and first.status == "failed"
    assert _store(settings).item_counts() == {"failed": 1}
    second = run_nightly(settings)
    assert second.articles_new == 1 and _store(settings).item_counts() == {"done": 1}


def test_failed_item_is_given_up_after_max_attempts(server, make_settings, texts):
    server.add("/stuk.html", Reply(503, b"down"))
    server.page("/feed.xml", rss([{"title": "Stuk", "link": server.url("/stuk.html")}]), "application/rss+xml")
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}], retries=0, max_attempts=2)
    statuses = [run_nightly(settings).status for _ in range(3)]
    assert server.hits("/stuk.html") == 2
    # Only a new item's failure counts against a run; an old item failing again is reported, not fatal.
    assert statuses == ["failed", "ok", "ok"]


def test_same_item_in_two_feeds_is_one_article(server, make_settings, texts):
    item = _publish(server, "/gedeeld.html", texts[0])
    tracked = dict(item, link=item["link"] + "?utm_source=regio")
    server.page("/main.xml", rss([item]), "application/rss+xml")
    server.page("/regio.xml", rss([tracked]), "application/rss+xml")
    settings = make_settings([{"name": "main", "url": server.url("/main.xml")},
                              {"name": "regio", "url": server.url("/regio.xml")}])
    report = run_nightly(settings)
    assert report.articles_new == 1 and sorted(f.known for f in report.feeds) == [0, 1]
    assert server.hits("/gedeeld.html") == 1


def test_syndicated_wire_story_forms_one_cluster(server, make_settings, texts):
    wire = texts[1]
    sentences = wire["text"].split(". ")
    variant = ". ".join(sentences[:3] + sentences[4:]) + " Dit bericht is overgenomen van persbureau NPB."
    first = _publish(server, "/a/wire.html", wire)
    second = _publish(server, "/b/wire.html", {"title": "NPB: " + wire["title"], "text": variant},
                      chrome="(Rivierstad Courant)")
    other = _publish(server, "/b/other.html", texts[2])
    server.page("/a.xml", rss([first]), "application/rss+xml")
    server.page("/b.xml", rss([second, other]), "application/rss+xml")
    settings = make_settings([{"name": "a", "url": server.url("/a.xml")}, {"name": "b", "url": server.url("/b.xml")}])
    report = run_nightly(settings)
    assert report.articles_new == 2 and report.articles_duplicate == 1
    rows = {row.url: row for row in _store(settings).articles()}
    head, member = rows[server.url("/a/wire.html")], rows[server.url("/b/wire.html")]
    assert member.canonical_id == head.id and member.duplicate_kind == "near"
    assert rows[server.url("/b/other.html")].canonical_id is None


def test_private_article_link_from_public_feed_is_refused(server, internal_server, make_settings, texts,
                                                          loopback_is_public):
    _publish(internal_server, "/lokaal.html", texts[0])
    server.page("/feed.xml", rss([{"title": "Lokaal", "link": internal_server.url("/lokaal.html")}]),
                "application/rss+xml")
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}])
    report = run_nightly(settings)
    assert report.skipped == {"private_address": 1} and internal_server.hits("/lokaal.html") == 0
    allowed = run_nightly(make_settings(allow_private_addresses=True))
    assert allowed.articles_new == 0  # skipped is final: the setting is for new links, no silent refetch


def test_redirect_from_public_feed_to_internal_address_is_refused(server, internal_server, make_settings, texts,
                                                                  loopback_is_public):
    item = _publish(internal_server, "/binnen.html", texts[0])
    internal_server.page("/feed.xml", rss([item]), "application/rss+xml")
    server.add("/feed.xml", Reply(302, b"", {"Location": internal_server.url("/feed.xml")}))
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}])
    report = run_nightly(settings)
    assert report.feeds[0].status == "failed" and "private_address" in report.feeds[0].error
    assert internal_server.requests == [] and _store(settings).item_counts() == {}


def test_feed_allowance_is_decided_on_the_address_fetched_not_a_second_lookup(server, internal_server, make_settings,
                                                                            texts, loopback_is_public, fake_dns):
    # The feed's name answers private (an intranet feed?), then public, then private again: its
    # "public" server lists an internal link. Deciding the allowance on other lookups than the one
    # the feed was fetched on would let that link through.
    fake_dns.set("feed.test", ["127.0.0.2"], ["127.0.0.1"], ["127.0.0.2"])
    item = _publish(internal_server, "/geheim.html", texts[0])
    server.page("/feed.xml", rss([item]), "application/rss+xml")
    port = server.httpd.server_address[1]
    report = run_nightly(make_settings([{"name": "krant", "url": f"http://feed.test:{port}/feed.xml"}]))
    assert internal_server.requests == [] and report.articles_new == 0


def _queue_link(settings, feed_name: str, url: str) -> None:
    # A link left pending from an earlier night (deferred or failed to be retried) of the named feed.
    from pipeline.records import FeedEntry

    store = _store(settings)
    feed_id = {row["name"]: row["id"] for row in store.feed_health()}[feed_name]
    store.add_items(feed_id, [FeedEntry(url=url, canonical_url=url, title="Geheim")], run_id=store.start_run("run"))


def test_pending_links_of_a_feed_that_fails_tonight_are_not_allowed_private_by_a_new_lookup(
        server, internal_server, make_settings, texts, loopback_is_public, fake_dns):
    # Night 1 the feed's name answers a public address and the feed is read. Night 2 it answers 127.0.0.2,
    # where nothing serves the feed: the fetch fails. Its pending link to an internal page must stay refused:
    # the allowance comes from the address the last answered fetch connected to, not from tonight's lookup.
    fake_dns.set("feed.test", ["127.0.0.1"], ["127.0.0.2"])
    server.page("/feed.xml", rss([_publish(server, "/a.html", texts[0])]), "application/rss+xml")
    settings = make_settings([{"name": "krant", "url": f"http://feed.test:{server.httpd.server_address[1]}/feed.xml"}])
    assert run_nightly(settings).articles_new == 1
    _queue_link(settings, "krant", internal_server.url("/geheim.html"))
    _publish(internal_server, "/geheim.html", texts[1])
    report = run_nightly(settings)
    assert report.feeds[0].status == "failed"
    assert internal_server.hits("/geheim.html") == 0 and report.skipped == {"private_address": 1}
    assert [a.url for a in _store(settings).articles()] == [server.url("/a.html")]


def test_a_feed_that_never_answered_counts_as_public(internal_server, make_settings, texts, fake_dns):
    # No fetch of this feed ever answered, so nothing says it is private: its links get no allowance,
    # however its name resolves tonight.
    fake_dns.set("intranet.test", ["127.0.0.2"])
    settings = make_settings([{"name": "intranet", "url": "http://intranet.test:9/feed.xml"}])
    assert run_nightly(settings).feeds[0].status == "failed"  # nothing listens on port 9
    _queue_link(settings, "intranet", internal_server.url("/geheim.html"))
    _publish(internal_server, "/geheim.html", texts[1])
    report = run_nightly(settings)
    assert internal_server.hits("/geheim.html") == 0 and report.skipped == {"private_address": 1}


def test_feed_configured_on_a_private_address_may_stay_private(internal_server, make_settings, texts):
    item = _publish(internal_server, "/binnen.html", texts[0])
    internal_server.add("/old.xml", Reply(301, b"", {"Location": "/feed.xml"}))
    internal_server.page("/feed.xml", rss([item]), "application/rss+xml")
    report = run_nightly(make_settings([{"name": "intranet", "url": internal_server.url("/old.xml")}]))
    assert report.feeds[0].status == "ok" and report.articles_new == 1


def test_article_stage_deadline_leaves_the_rest_for_the_next_run(server, make_settings, texts):
    first = _publish(server, "/a.html", texts[0])
    page = article_html(texts[1]["title"], texts[1]["text"]).encode()
    # A page that drips one byte per 0.2 s for ten minutes, then (next run) answers at once.
    server.add("/drip.html", Reply(200, headers={"Content-Type": "text/html"}, stream=drip(page, 0.2)),
               Reply(200, page, {"Content-Type": "text/html; charset=utf-8"}))
    server.page("/feed.xml", rss([first, {"title": texts[1]["title"], "link": server.url("/drip.html")}]),
                "application/rss+xml")
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}], workers=1,
                             request_deadline=120.0, article_stage_deadline=2.0)
    report = run_nightly(settings)
    assert report.durations["2_articles"] < 2.0 + 3.0  # the stage deadline, not the 120 s request deadline
    assert report.articles_new == 1 and report.articles_deferred == 1 and report.articles_failed == 0
    assert "left for the next run (article stage deadline reached): 1" in summarise(report)
    assert report.as_dict()["articles_deferred"] == 1
    assert _store(settings).item_counts() == {"done": 1, "pending": 1}
    again = run_nightly(settings)
    assert again.articles_new == 1 and again.articles_deferred == 0
    assert _store(settings).item_counts() == {"done": 2} and server.hits("/drip.html") == 2


def test_huge_feed_summary_of_a_teaser_page_is_stored_capped(server, make_settings, texts):
    paragraph = texts[0]["text"].replace("\n", " ")
    summary = " ".join([paragraph] * (600_000 // len(paragraph) + 1))
    server.page("/teaser.html", "<html lang='nl'><body><article><h1>Kort</h1><p>Lees verder met een abonnement.</p>"
                                "</article></body></html>")
    server.page("/feed.xml", rss([{"title": "Kort", "link": server.url("/teaser.html"), "description": summary}]),
                "application/rss+xml")
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}])
    report = run_nightly(settings)
    assert report.articles_new == 1
    store = _store(settings)
    [article] = store.articles()
    assert article.method == "feed_summary"
    assert len(article.text) <= 200_000 and article.text_truncated_from == len(summary)
    assert summary.startswith(article.text) and article.text.endswith(".")  # cut after a sentence
    with store.engine.connect() as conn:
        stored = conn.execute(select(items.c.summary, items.c.summary_truncated_from)).one()
    assert len(stored.summary) <= 200_000 and stored.summary_truncated_from == len(summary)


def test_entity_bomb_feed_fails_alone(server, make_settings, texts):
    item = _publish(server, "/ok.html", texts[0])
    server.page("/ok.xml", rss([item]), "application/rss+xml")
    server.page("/bomb.xml", b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
                             b"<rss><channel><title>&b;</title></channel></rss>", "application/rss+xml")
    settings = make_settings([{"name": "ok", "url": server.url("/ok.xml")}, {"name": "bomb", "url": server.url("/bomb.xml")}])
    report = run_nightly(settings)
    bomb = next(f for f in report.feeds if f.name == "bomb")
    assert bomb.status == "failed" and "entit" in bomb.error and report.articles_new == 1


def test_too_many_failed_feeds_fail_the_run(server, make_settings):
    server.page("/a.xml", b"garbage", "application/rss+xml")
    settings = make_settings([{"name": "a", "url": server.url("/a.xml")},
                              {"name": "b", "url": server.url("/nope.xml")}])
    report = run_nightly(settings)
    assert report.status == "failed" and report.feeds_failed == 2
    health = {f["name"]: f for f in _store(settings).feed_health()}
    assert health["b"]["consecutive_failures"] == 1 and "404" in health["b"]["last_error"]


def test_second_run_is_refused_while_locked(make_settings):
    settings = make_settings([])
    with run_lock(settings), pytest.raises(RunLocked, match="another radar run"):
        run_nightly(settings)


def test_unexpected_error_stops_fetching_records_a_crash_and_loses_nothing(server, make_settings, texts, monkeypatch):
    import pipeline.runs.nightly as nightly
    items = []
    for i, art in enumerate(texts[:6]):
        server.add(f"/s/{i}.html", Reply(200, article_html(art["title"], art["text"]).encode(),
                                         {"Content-Type": "text/html"}, delay=0.3))
        items.append({"title": art["title"], "link": server.url(f"/s/{i}.html")})
    server.page("/feed.xml", rss(items), "application/rss+xml")
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}], workers=1)
    real_save = nightly.save_article_deduplicated
    calls = []

    def failing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real_save(*args, **kwargs)
    monkeypatch.setattr(nightly, "save_article_deduplicated", failing_save)
    with pytest.raises(RunCrashed, match="disk on fire"):
        run_nightly(settings)
    fetched = sum(server.hits(f"/s/{i}.html") for i in range(6))
    assert fetched < 6  # the crash stopped the fetch threads instead of draining every host
    assert _store(settings).recent_runs(1)[0]["status"] == "crashed"
    monkeypatch.setattr(nightly, "save_article_deduplicated", real_save)
    again = run_nightly(settings)
    assert again.status == "ok" and len(_store(settings).articles()) == 6


def test_non_dutch_page_is_skipped(server, make_settings):
    english = ("The city council met on Tuesday to discuss the new budget for the harbour district. "
               "Several members said that the plans were too expensive and would have to be changed. ") * 4
    server.page("/en.html", f'<html lang="en"><body><article><h1>Budget</h1><p>{english}</p></article></body></html>')
    server.page("/feed.xml", rss([{"title": "Budget", "link": server.url("/en.html")}]), "application/rss+xml")
    report = run_nightly(make_settings([{"name": "krant", "url": server.url("/feed.xml")}]))
    assert report.skipped == {"not_dutch": 1} and report.articles_new == 0


# -- the privacy promise of the public form and the shipped schedule (issue item 6) ----------------------------

def _submission_aged(store: Store, days: int, name: str) -> int:
    """Store a reader's submission made `days` ago, with name, e-mail and address code; return its id."""
    made = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    submission_id = store.add_submission(f"https://example.org/{name}", f"tip van {name}", name,
                                         f"{name}@example.nl", f"hash-{name}")
    with store.engine.begin() as conn:
        conn.execute(update(submissions).where(submissions.c.id == submission_id).values(created_at=made))
    return submission_id


def test_the_nightly_run_wipes_personal_fields_past_the_retention_and_reports_it(make_settings):
    settings = make_settings([], submission_retention=30)
    store = _store(settings)
    store.migrate()
    old, fresh = _submission_aged(store, 40, "anna"), _submission_aged(store, 10, "bram")
    report = run_nightly(settings)
    assert report.submissions_purged == 1 and report.as_dict()["submissions_purged"] == 1
    assert "Submissions purged (name, e-mail, address code past retention): 1" in summarise(report)
    wiped, kept = store.submission(old), store.submission(fresh)
    assert (wiped.name, wiped.email, wiped.ip_hash, wiped.note) == ("", "", "", "tip van anna")
    assert (kept.name, kept.email, kept.ip_hash) == ("bram", "bram@example.nl", "hash-bram")
    stored = [r for r in store.recent_runs() if r["id"] == report.run_id][0]
    assert stored["report"]["submissions_purged"] == 1
    assert run_nightly(settings).submissions_purged == 0  # nothing left to wipe
    store.close()


def test_the_default_retention_is_the_90_days_the_form_promises(make_settings):
    from pipeline.public.publish import render_template

    settings = make_settings([])
    assert settings.submission_retention == 90
    form = render_template("form.html", root="/", form_url="deel", values={}, error="", issued="", csrf_token="",
                           honeypot="website", limits={"url": 1, "note": 1, "name": 1, "email": 1}).decode()
    assert f"wissen we na {settings.submission_retention} dagen" in form


def _wrapper_config(tmp_path, settings, **extra: str) -> Path:
    """Write a config file for deploy/radar-nightly on the test database and an empty feed list."""
    lines = [f'data_dir = "{settings.data_dir}"', f'feeds_file = "{settings.feeds_file}"', "progress = false"]
    lines += [f'{key} = "{value}"' for key, value in extra.items()]
    path = tmp_path / f"nightly-{len(extra)}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _nightly(config: Path):
    """Run the shipped nightly wrapper as cron and systemd start it, with this checkout's radar."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_")} | {"RADAR": RADAR}
    return subprocess.run([str(ROOT / "deploy" / "radar-nightly"), str(config)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_the_shipped_nightly_job_purges_and_publishes_when_public_output_is_set(make_settings, tmp_path):
    from pipeline.review.events import Label, record_decision
    from tests.review_scenario import fill_store

    settings = make_settings([])
    store = _store(settings)
    store.migrate()
    ids = fill_store(store)
    record_decision(store, ids["park"], "ann", Label(True, "overheid", "ontwerp"), model_version=None,
                    codebook_version="1")
    _submission_aged(store, 120, "anna")
    site = tmp_path / "site"
    result = _nightly(_wrapper_config(tmp_path, settings, public_output=str(site)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Submissions purged (name, e-mail, address code past retention): 1" in result.stdout
    assert "Published 1 examples to" in result.stdout
    assert "Bewoners ontwerpen nieuw park mee" in (site / "index.html").read_text(encoding="utf-8")
    unpublished = _nightly(_wrapper_config(tmp_path, settings))
    assert unpublished.returncode == 0, unpublished.stderr
    assert "Published" not in unpublished.stdout and "Run " in unpublished.stdout
    store.close()


def test_cron_and_systemd_start_the_nightly_wrapper():
    cron = [line for line in (ROOT / "deploy" / "crontab").read_text().splitlines() if line and line[0] != "#"]
    assert cron == ["17 3 * * * cd /opt/cocreatie-radar && deploy/radar-nightly /etc/cocreatie-radar/radar.toml "
                    ">> data/local/nightly.log 2>&1"]
    unit = (ROOT / "deploy" / "cocreatie-radar.service").read_text().splitlines()
    assert "ExecStart=/opt/cocreatie-radar/deploy/radar-nightly /etc/cocreatie-radar/radar.toml" in unit
    assert (ROOT / "deploy" / "radar-nightly").stat().st_mode & 0o111  # executable, as cron runs it
