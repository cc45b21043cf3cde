"""Shared fixtures: a real local HTTP server, settings on a temporary SQLite file, real corpus texts."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from email.utils import format_datetime
from datetime import datetime, UTC
from html import escape
from pathlib import Path

import pytest

from pipeline.settings import Settings, load_settings
from tests.httpserver import ScriptedServer

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CORPUS_SHARED_DIR", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"


# The two files that take minutes (the nightly retrain, the grouped quality gate's cross-validation) go first:
# `make test` hands whole files to two processes in collection order, so each starts on one of them at once and
# the short files fill in around them, instead of one long file starting last and running alone.
LONG_FILES = ("test_train.py", "test_quality_gate.py")


# Tests on a real PostgreSQL server or in a real Chromium are marked by the fixtures they use (a test that drives
# playwright by hand carries the mark itself). `make test` and .ci/run install both, so such a test that skips
# means the suite did not test what it claims: the run fails, unless RADAR_ALLOW_SKIPS=1 (a machine without them).
REQUIRED_MARKS = {"postgres": {"postgres_url"}, "browser": {"browser", "watched_page", "live_app"}}
SKIPPED: list[tuple[str, str, set[str]]] = []


def pytest_collection_modifyitems(items):
    """Run the tests of LONG_FILES first, every file's tests in their own order; mark postgres and browser tests."""
    items.sort(key=lambda item: item.path.name not in LONG_FILES)  # a stable sort keeps the order inside a file
    for item in items:
        for mark, fixtures in REQUIRED_MARKS.items():
            if fixtures & set(getattr(item, "fixturenames", ())):
                item.add_marker(mark)
        # A test that drives playwright by hand says so by skipping without Debian's chromium.
        if any("chromium" in str(m.kwargs.get("reason", "")).lower() for m in item.iter_markers("skipif")):
            item.add_marker("browser")


def pytest_runtest_logreport(report):
    """Keep every skipped test with its reason and marks (xdist sends the workers' reports here)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        SKIPPED.append((report.nodeid, reason.removeprefix("Skipped: "), set(REQUIRED_MARKS) & set(report.keywords)))


def required_skips() -> list[str]:
    """Return the skipped tests that carry a postgres or browser mark."""
    return [nodeid for nodeid, _reason, marks in SKIPPED if marks]


def pytest_sessionfinish(session, exitstatus):
    """Fail a run in which a postgres or browser test was skipped (RADAR_ALLOW_SKIPS=1 allows it)."""
    if hasattr(session.config, "workerinput") or os.environ.get("RADAR_ALLOW_SKIPS") == "1":
        return
    if required_skips() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    """End the run's output with the skipped tests, one line, after pytest's own closing line."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(config, "workerinput"):
        return
    listed = "; ".join(f"{nodeid} ({reason})" for nodeid, reason, _marks in SKIPPED) or "none"
    reporter.write_line(f"skipped tests: {listed}")
    if required_skips() and os.environ.get("RADAR_ALLOW_SKIPS") != "1":
        reporter.write_line(f"FAILED: {len(required_skips())} postgres/browser test(s) skipped; install "
                            "Debian's postgresql and chromium (make test does) or set RADAR_ALLOW_SKIPS=1", red=True)


def corpus_articles(source_prefix: str = "dpgmedia", min_chars: int = 1500) -> list[dict]:
    """Return real Dutch articles from ../shared/corpus (never copied into the repo)."""
    path = CORPUS / "articles" / "dev.jsonl"
    if not path.exists():
        pytest.skip(f"the shared corpus is missing at {path}")
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    return [r for r in rows if r["source"].startswith(source_prefix) and len(r["text"]) >= min_chars]


def article_html(title: str, text: str, date: str = "2026-03-02T09:30:00+01:00", chrome: str = "") -> str:
    """Wrap an article text in a realistic page: nav, cookie bar, article, related links, comments."""
    paragraphs = "\n".join(f"<p>{escape(p)}</p>" for p in _paragraphs(text))
    nav = "".join(f'<li><a href="/{w}">{w.title()}</a></li>' for w in
                  ("binnenland", "buitenland", "economie", "sport", "cultuur", "regio", "opinie", "weer"))
    return f"""<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta property="og:title" content="{escape(title)}"><meta property="article:published_time" content="{date}">
</head><body><header><nav><ul>{nav}</ul></nav></header>
<div class="cookiebar">Wij gebruiken cookies om onze website te verbeteren. <button>Akkoord</button></div>
<main><article><h1>{escape(title)}</h1><p class="byline">Door de redactie {chrome}</p>
<time datetime="{date}">{date[:10]}</time>
{paragraphs}
</article>
<aside class="related"><h2>Lees ook</h2><ul><li><a href="/a">Kabinet valt over stikstof</a></li>
<li><a href="/b">Files op de A2 na ongeluk</a></li></ul></aside>
<section class="comments"><h2>Reacties</h2><div class="comment">Wat een onzin weer, typisch.</div>
<div class="comment">Eens met de vorige schrijver, dit gaat nergens over.</div></section></main>
<footer><a href="/privacy">Privacy</a> <a href="/contact">Contact</a></footer></body></html>"""


def _paragraphs(text: str) -> list[str]:
    parts = [p.strip() for p in text.split("\n") if p.strip()]
    if len(parts) > 1:
        return parts
    sentences = text.split(". ")
    return [". ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3)]


def rss(items: list[dict], title: str = "Testkrant") -> bytes:
    """Build an RSS 2.0 document from dicts with link, title and optional description, guid, date."""
    entries = []
    for item in items:
        date = item.get("date") or format_datetime(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
        entries.append(
            f"<item><title>{escape(item['title'])}</title><link>{escape(item['link'])}</link>"
            f"<guid>{escape(item.get('guid', item['link']))}</guid><pubDate>{date}</pubDate>"
            f"<description>{escape(item.get('description', ''))}</description></item>"
        )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<link>http://example.invalid/</link><description>test</description>{''.join(entries)}"
            f"</channel></rss>").encode()


@pytest.fixture
def server():
    """A scripted HTTP server on 127.0.0.1 with an allow-all robots.txt."""
    srv = ScriptedServer()
    srv.page("/robots.txt", "User-agent: *\nAllow: /\n", "text/plain")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def internal_server():
    """A second scripted server on 127.0.0.2: an internal host that must never be reached from public links."""
    srv = ScriptedServer(host="127.0.0.2")
    srv.page("/robots.txt", "User-agent: *\nAllow: /\n", "text/plain")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def loopback_is_public(monkeypatch):
    """Count 127.0.0.1 as a public address, so the `server` fixture plays a public host (127.0.0.2 stays private)."""
    import pipeline.ingest.fetch as fetch
    real = getattr(fetch, "is_public_address", None)
    monkeypatch.setattr(fetch, "is_public_address", lambda address: address == "127.0.0.1" or real(address),
                        raising=False)


class FakeDns:
    """Scripted answers of socket.getaddrinfo for made-up names; a name's last answer repeats."""

    def __init__(self, real):
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.calls: list[str] = []

    def set(self, name: str, *answers: list[str]) -> None:
        """Script the successive answers for a name."""
        self.answers[name] = list(answers)

    def getaddrinfo(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.calls.append(name)
        queue = self.answers[name]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port or 0)) for a in addresses]


@pytest.fixture
def fake_dns(monkeypatch):
    """Make socket.getaddrinfo answer scripted addresses for made-up names (see FakeDns)."""
    dns = FakeDns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse every TCP connect to a non-loopback address (no test traffic leaves the machine); list the refused."""
    refused: list[tuple] = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        if isinstance(address, tuple) and not address[0].startswith("127.") and address[0] != "::1":
            refused.append(address[:2])
            raise ConnectionRefusedError(f"test: no traffic to {address[0]}")
        return real_connect(sock, address)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return refused


@pytest.fixture
def make_settings(tmp_path):
    """Return a factory of Settings on a temporary data dir, fast and without retries' waits."""
    def factory(feeds: list[dict] | None = None, **overrides) -> Settings:
        feeds_file = tmp_path / "feeds.toml"
        if feeds is not None:
            feeds_file.write_text("".join(_feed_toml(f) for f in feeds), encoding="utf-8")
        values = dict(data_dir=tmp_path / "local", feeds_file=feeds_file, host_delay=0.0, backoff=0.01,
                      read_timeout=5.0, connect_timeout=2.0, progress=False)
        values.update(overrides)
        return load_settings(None, **values)
    return factory


def _feed_toml(feed: dict) -> str:
    return (f'[[feeds]]\nname = "{feed["name"]}"\nurl = "{feed["url"]}"\n'
            f'outlet = "{feed.get("outlet", feed["name"])}"\nlanguage = "nl"\n\n')


@pytest.fixture
def review_store(make_settings):
    """The shared demo run of the review tests: settings for analyst 'ann' and a migrated store filled with the
    review scenario (tests/review_scenario.py); yields (settings, store, article ids by name)."""
    from pipeline.store import Store
    from tests.review_scenario import fill_store

    settings = make_settings(analyst="ann")
    store = Store(settings.effective_database_url)
    store.migrate()
    ids = fill_store(store)
    yield settings, store, ids
    store.close()


# -- the review app and public pages in a real headless Chromium (Debian's), served by waitress on 127.0.0.1 --
CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to a temporary folder, so a test run leaves the tracked images alone; `make screenshots` sets
# RADAR_SCREENSHOT_DIR=docs to refresh the README's images on purpose.
SCREENSHOT_DIR = Path(os.environ.get("RADAR_SCREENSHOT_DIR") or tempfile.gettempdir()) / (
    "" if os.environ.get("RADAR_SCREENSHOT_DIR") else "radar-screenshots")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, started from the Debian binary (never a downloaded build)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live_app(review_store):
    """Serve the review app with waitress on a free loopback port over a filled temporary database."""
    from pipeline.review.app import create_app, make_server

    settings, store, ids = review_store
    with serving(make_server(create_app(settings, store, host="127.0.0.1"), "127.0.0.1", 0)) as base:
        yield base, store, ids


@contextmanager
def serving(server):
    """Run a waitress server (review or public app) in a thread; yield its base URL; stop it on leaving."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop_server(server, thread)


def stop_server(server, thread: threading.Thread) -> None:
    """Close every socket of a waitress server from its own loop thread, so its select never sees a closed one."""
    from waitress import wasyncore

    try:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    except OSError:  # the wake-up pipe is already closed: the loop cannot be asked, so close from here
        wasyncore.close_all(server._map)
    thread.join(timeout=10)
    server.task_dispatcher.shutdown()


@pytest.fixture
def watched_page(browser):
    """Return a factory of pages that record dialogs and page errors."""
    contexts = []

    def factory():
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.dialogs, page.errors = [], []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        return page
    yield factory
    for context in contexts:
        context.close()


def press_and_wait(page, key: str) -> float:
    """Press a key that navigates or submits a form; return the seconds until the next page has loaded."""
    started = time.perf_counter()
    with page.expect_navigation():
        page.keyboard.press(key)
    page.wait_for_load_state("load")
    return time.perf_counter() - started


def type_analyst_name(page, name: str) -> None:
    """Type a name into the analyst page's field once its autofocus has landed (keys before it would be lost)."""
    page.wait_for_function("document.activeElement && document.activeElement.id === 'analyst-name'")
    page.keyboard.type(name)


def fresh_database(server_url: str, name: str) -> str:
    """Create an empty database `name` on a PostgreSQL server (dropping one left by an earlier run); return its URL."""
    from sqlalchemy import create_engine  # here, not at the top: most tests never touch PostgreSQL

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name
