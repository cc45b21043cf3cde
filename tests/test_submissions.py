"""Readers' submissions end to end: the form in Chromium, `radar run`, the review queue, `radar publish`; and the
run's rules for duplicates, unfetchable and private pages, the privacy commands and the digest section."""

from __future__ import annotations

import re
from pathlib import Path

import feedparser
import pytest
import requests
from sqlalchemy import update

from pipeline.codebook import load_codebook
from pipeline.public.digest import READERS, digest_groups, render_digest, split_readers
from pipeline.research.export import export_rows
from pipeline.runs.nightly import run_nightly
from pipeline.public.app import make_public_server
from pipeline.review.app import create_app, make_server
from pipeline.review.events import Label, record_decision
from pipeline.store import Store, submissions
from tests.cli_helpers import invoke
from tests.conftest import CHROMIUM, SCREENSHOT_DIR, article_html, rss, serving
from tests.httpserver import Reply

SCREENSHOT = SCREENSHOT_DIR / "public-index.png"  # docs/public-index.png only with `make screenshots`
READER, EMAIL = "Henk Lezer", "henk.lezer@example.nl"
NOTE = "De gemeente ontwerpt het plein samen met de buurt. <script>alert('note')</script>"
LESSON = "Laat bewoners vanaf de eerste schets meetekenen."


# Written for this test (and the README's screenshot of the public page): a story the title and quote fit.
PLEIN = (
    "Bewoners van de Vogelbuurt ontwerpen samen met de gemeente het nieuwe Merelplein. In drie avonden tekenden "
    "ruim zestig buurtbewoners mee aan de plattegrond, met kinderen van basisschool De Wielewaal erbij.\n"
    "De gemeente had vooraf alleen het budget en de veiligheidseisen vastgelegd. Waar de bomen, de bankjes en het "
    "speeltoestel komen, bepaalden de bewoners zelf. \"We wilden niet pas meepraten als alles al vastligt\", zegt "
    "buurtbewoner Fatima el Amrani.\n"
    "Wethouder Jansen noemt het een proef die navolging verdient. \"De buurt kent het plein beter dan wij. Het "
    "ontwerp dat er nu ligt, is beter dan wat onze eigen ontwerpers hadden bedacht.\" De aanleg begint in het "
    "voorjaar; de bewoners houden een klankbordgroep die de uitvoering volgt en maandelijks met de aannemer "
    "om tafel zit."
)


@pytest.fixture
def article(server):
    """A Dutch news story served as an article page of a named outlet on 127.0.0.1; returns (url, title)."""
    title = "Buurt ontwerpt nieuw plein samen met gemeente"
    page = article_html(title, PLEIN).replace(
        "</head>", '<meta property="og:site_name" content="Dagblad De Polder"></head>', 1)
    server.page("/nieuws/plein", page)
    return server.url("/nieuws/plein"), title


@pytest.fixture
def store_and_settings(make_settings):
    """Settings for a submission run (loopback allowed explicitly, for the test page only) and a migrated store."""
    settings = make_settings(feeds=[], submission_allow_loopback=True, public_min_seconds=0, analyst="ann")
    store = Store(settings.effective_database_url)
    store.migrate()
    yield settings, store
    store.close()


def config_file(settings, tmp_path: Path) -> Path:
    """Write a config file pointing `radar` at the test database."""
    path = tmp_path / "radar.toml"
    path.write_text(f'data_dir = "{settings.data_dir}"\nfeeds_file = "{settings.feeds_file}"\n', encoding="utf-8")
    return path


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_reader_submits_analyst_accepts_and_it_is_published(article, store_and_settings, watched_page, tmp_path):
    url, title = article
    settings, store = store_and_settings
    page = watched_page()
    with serving(make_public_server(settings, store, "127.0.0.1", 0)) as public:
        page.goto(f"{public}/deel")
        page.fill("#url", url)
        page.fill("#note", NOTE)
        page.fill("#name", READER)
        page.fill("#email", EMAIL)
        page.click("button[type=submit]")
        assert "Bedankt" in page.inner_text("h1")
        (queued,) = store.list_submissions()
        assert queued.status == "queued" and queued.note == NOTE

        report = run_nightly(settings)  # `radar run` fetches what readers sent, politely, like a feed's link
        assert report.submissions == {"stored": 1}
        (done,) = store.list_submissions()
        stored = store.article(done.article_id)
        assert (stored.origin, stored.provenance, stored.title) == ("submission", str(done.id), title)
        assert b"<article>" in store.raw_page(stored.item_id)  # raw bytes kept, as for a feed's article

        with serving(make_server(create_app(settings, store, host="127.0.0.1"), "127.0.0.1", 0)) as review:
            page.goto(f"{review}/?origin=submission")
            row = page.locator("tr.queue-row")
            assert row.count() == 1 and "ingezonden" in row.inner_text()
            page.click("a.queue-link")
            assert page.inner_text("#reader-notes q") == NOTE  # shown as text, never run
            assert not page.errors and not page.dialogs
            page.check("input[name=sector][value=overheid]")
            page.check("input[name=type][value=ontwerp]")
            page.fill("#lesson", LESSON)
            with page.expect_navigation():
                page.click("#yes")
        final = store.final_labels()[done.article_id]
        assert (final.cocreation, final.lesson, final.private) == (1, LESSON, False)

        output = tmp_path / "site"
        result = invoke("--config", str(config_file(settings, tmp_path)), "publish", "--output", str(output))
        assert result.exit_code == 0, result.stderr
        index = (output / "index.html").read_text(encoding="utf-8")
        assert title in index and LESSON in index
        feed = feedparser.parse((output / "feed.atom").read_bytes())
        assert not feed.bozo and [e.title for e in feed.entries] == [title] and feed.entries[0].link == url
        published = b"".join(p.read_bytes() for p in output.rglob("*") if p.is_file()).decode("utf-8")
        for personal in (READER, EMAIL, "henk", "alert('note')"):
            assert personal not in published

        page.set_viewport_size({"width": 1100, "height": 900})
        page.goto(f"{public}/")
        assert title in page.inner_text("main")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_a_submission_of_a_stored_article_joins_it_and_duplicates_nothing(article, store_and_settings, server):
    url, _title = article
    settings, store = store_and_settings
    server.page("/feed.xml", rss([{"title": "Plein", "link": url}]), "application/rss+xml")
    feeds = Path(settings.feeds_file)
    feeds.write_text(f'[[feeds]]\nname = "krant"\nurl = "{server.url("/feed.xml")}"\noutlet = "Krant"\n',
                     encoding="utf-8")
    run_nightly(settings)
    (existing,) = store.articles()
    fetched = server.hits("/nieuws/plein")
    first = store.add_submission(url + "#reacties", "Mooi voorbeeld", "", "", "h1")
    second = store.add_submission(url, "Ook gezien", "", "", "h2")
    report = run_nightly(settings)
    assert report.submissions == {"joined": 2}
    assert server.hits("/nieuws/plein") == fetched  # nothing fetched again
    assert [a.id for a in store.articles()] == [existing.id]
    assert {store.submission(i).article_id for i in (first, second)} == {existing.id}
    assert store.is_submitted_cluster(existing.id)
    (row,) = export_rows(store, "all")
    assert row["origin"] == "feed" and row["submission_note"] == "Mooi voorbeeld\n\nOok gezien"


def test_the_same_link_sent_twice_before_a_run_is_stored_once(article, store_and_settings):
    url, _title = article
    settings, store = store_and_settings
    store.add_submission(url, "eerste", "", "", "h1")
    store.add_submission(url, "tweede", "", "", "h2")
    assert run_nightly(settings).submissions == {"joined": 1, "stored": 1}
    assert len(store.articles()) == 1


def test_unfetchable_and_foreign_pages_stay_as_submissions_with_their_reason(store_and_settings, server):
    settings, store = store_and_settings
    english = "The council discussed the new budget for the harbour district on Tuesday evening. " * 8
    server.page("/en", f'<html lang="en"><body><article><h1>Budget</h1><p>{english}</p></article></body></html>')
    server.add("/weg", Reply(404, b"not here"))
    gone = store.add_submission(server.url("/weg"), "Kijk hier", "", "", "h")
    foreign = store.add_submission(server.url("/en"), "Engels", "", "", "h")
    report = run_nightly(settings)
    assert report.submissions == {"refused": 2} and store.articles() == []
    assert store.submission(gone).reason.startswith("http_404") and store.submission(gone).note == "Kijk hier"
    assert store.submission(foreign).reason.startswith("not_dutch")
    with serving(make_server(create_app(settings, store, host="127.0.0.1"), "127.0.0.1", 0)) as review:
        queue = requests.get(f"{review}/?origin=submission").text
    assert "Submissions without an article" in queue and "Kijk hier" in queue and "http_404" in queue


def test_private_addresses_are_refused_for_submissions_whatever_the_settings(make_settings, server, fake_dns):
    # allow_private_addresses lets feeds reach an intranet; a reader's link never may.
    settings = make_settings(feeds=[], allow_private_addresses=True)
    store = Store(settings.effective_database_url)
    store.migrate()
    server.page("/intern", article_html("Intern", "Geheime tekst. " * 60))
    fake_dns.set("nieuws.example", ["127.0.0.1"])  # a public-looking name that resolves to this machine
    named = store.add_submission(f"http://nieuws.example:{server.port}/intern", "", "", "", "h")
    loopback_settings = make_settings(feeds=[], submission_allow_loopback=True)
    server.add("/door", Reply(302, b"", {"Location": "http://10.20.30.40/intern"}))
    redirected = store.add_submission(server.url("/door"), "", "", "", "h")
    assert run_nightly(settings).submissions == {"refused": 2}  # loopback not allowed: both refused at once
    assert store.submission(named).reason.startswith("private_address") and server.hits("/intern") == 0
    with store.engine.begin() as conn:
        conn.execute(update(submissions).where(submissions.c.id == redirected).values(status="queued"))
    assert run_nightly(loopback_settings).submissions == {"refused": 1}  # loopback allowed, 10.x never
    assert store.submission(redirected).reason.startswith("private_address: 10.20.30.40")
    store.close()


def test_review_app_saves_lesson_and_private_and_filters_submissions(review_store):
    settings, store, ids = review_store
    submission = store.add_submission("https://example.org/care", "<b>lezer</b>", READER, EMAIL, "h")
    store.finish_submission(submission, "joined", "", ids["care"])
    with serving(make_server(create_app(settings, store, host="127.0.0.1"), "127.0.0.1", 0)) as review:
        session = requests.Session()
        only = session.get(f"{review}/?origin=submission").text
        assert len(re.findall(r'class="queue-row"', only)) == 1 and "Patiënten denken mee" in only
        assert len(re.findall(r'class="queue-row"', session.get(f"{review}/").text)) == 3
        page = session.get(f"{review}/article/{ids['care']}").text
        assert "&lt;b&gt;lezer&lt;/b&gt;" in page and READER not in page and EMAIL not in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        answer = session.post(f"{review}/article/{ids['care']}/decide", data={
            "csrf_token": token, "cocreation": "1", "sector": "zorg", "type": "ontwerp", "lesson": LESSON,
            "private": "1"})
        assert answer.status_code == 200
    final = store.final_labels()[ids["care"]]
    assert (final.lesson, final.private) == (LESSON, True)
    (row,) = [r for r in export_rows(store, "reviewed") if r["article_id"] == ids["care"]]
    assert (row["lesson"], row["private"], row["submission_note"]) == (LESSON, True, "<b>lezer</b>")
    from pipeline import load_dataset

    frame = load_dataset(settings.effective_database_url, status="reviewed")
    care = frame[frame["article_id"] == ids["care"]].iloc[0]
    assert (care["lesson"], care["submission_note"]) == (LESSON, "<b>lezer</b>")


def test_privacy_commands_list_delete_and_purge(review_store, tmp_path):
    settings, store, ids = review_store
    old = store.add_submission("https://example.org/park", "oud", READER, EMAIL, "hash-old")
    new = store.add_submission("https://example.org/care", "nieuw", "Els", "els@example.nl", "hash-new")
    store.finish_submission(new, "joined", "", ids["care"])
    with store.engine.begin() as conn:
        conn.execute(update(submissions).where(submissions.c.id == old).values(created_at="2025-01-01T10:00:00+00:00"))
    config = str(config_file(settings, tmp_path))
    listed = invoke("--config", config, "submissions", "list")
    assert listed.exit_code == 0 and "personal name,email" in listed.stdout and EMAIL not in listed.stdout
    purged = invoke("--config", config, "submissions", "purge", "--older-than", "90d")
    assert purged.exit_code == 0 and "from 1 submission" in purged.stdout
    kept = store.submission(old)
    assert (kept.name, kept.email, kept.ip_hash, kept.note) == ("", "", "", "oud")
    assert store.submission(new).email == "els@example.nl"
    assert invoke("--config", config, "submissions", "delete", str(new)).exit_code == 0
    assert store.submission(new) is None and not store.is_submitted_cluster(ids["care"])
    missing = invoke("--config", config, "submissions", "delete", "999")
    assert missing.exit_code == 2 and "no submission 999" in missing.stderr


def test_digest_has_a_section_for_readers_submissions(review_store):
    settings, store, ids = review_store
    codebook = load_codebook()
    for key, sector in (("park", "overheid"), ("care", "zorg")):
        record_decision(store, ids[key], "ann", Label(True, sector, "ontwerp"), model_version=None,
                        codebook_version="1")
    submission = store.add_submission("https://example.org/care", "", READER, EMAIL, "h")
    store.finish_submission(submission, "joined", "", ids["care"])
    groups, readers = split_readers(store, digest_groups(store, codebook))
    text = render_digest(groups, "md", codebook, readers=readers)
    assert f"## {READERS}" in text and text.index("Patiënten denken mee") > text.index(READERS)
    assert text.count("Patiënten denken mee") == 1 and "2 verhalen" in text and READER not in text
    assert READERS not in render_digest(digest_groups(store, codebook), "md", codebook)  # --no-readers
    assert READERS in render_digest(groups, "html", codebook, readers=readers)
