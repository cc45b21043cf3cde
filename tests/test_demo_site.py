"""The bundled demo site served for real and the nightly run against it, checked with expected.json."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request

import feedparser
import pytest

from pipeline.demo_site import start_demo_site
from pipeline.runs.nightly import run_nightly
from pipeline.store import Store
from tests.conftest import ROOT

DEMO = ROOT / "data" / "demo"
EXPECTED = json.loads((DEMO / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo_base():
    server, base = start_demo_site("127.0.0.1", 0)
    yield base
    server.shutdown()
    server.server_close()


@pytest.fixture
def demo_settings(demo_base, make_settings, tmp_path):
    feeds = (DEMO / "feeds.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", demo_base)
    feeds_file = tmp_path / "demo-feeds.toml"
    feeds_file.write_text(feeds, encoding="utf-8")
    return make_settings(None, feeds_file=feeds_file, allow_private_addresses=True)


def test_feeds_parse_and_broken_feed_is_broken(demo_base):
    for name, feed in EXPECTED["feeds"].items():
        with urllib.request.urlopen(demo_base + feed["path"]) as resp:
            parsed = feedparser.parse(resp.read())
        if name in EXPECTED["broken_feeds"]:
            assert not parsed.entries
        else:
            assert len(parsed.entries) == len(feed["entries"]) and all(e.link.startswith(demo_base) for e in parsed.entries)


def test_nightly_run_on_demo_matches_expected(demo_settings):
    report = run_nightly(demo_settings)
    failing = set(EXPECTED["failing_pages"])
    pages = [a for a in EXPECTED["articles"] if a["path"] not in failing]
    assert report.status == "ok"
    assert report.articles_new + report.articles_duplicate == len(pages)
    assert report.articles_duplicate == len(EXPECTED["duplicates"])
    assert report.failed == {"http_500": len(failing)}
    assert [f.name for f in report.feeds if f.status == "failed"] == EXPECTED["broken_feeds"]

    store = Store(demo_settings.effective_database_url)
    rows = {a.url.split("://", 1)[1].split("/", 1)[1]: a for a in store.articles()}
    by_path = {"/" + path: row for path, row in rows.items()}
    for first, second in EXPECTED["duplicates"]:
        heads = {by_path[first].canonical_id or by_path[first].id, by_path[second].canonical_id or by_path[second].id}
        assert len(heads) == 1, f"{first} and {second} should be one cluster"
    for page in pages:
        row = by_path[page["path"]]
        assert row.title and row.published[:10] == page["published"][:10]
        assert "cookie" not in row.text.lower() and "reacties" not in row.text.lower()[-200:]

    # The shipped model flags every co-creation story; at most one other article outranks one of them.
    scores = {p.article_id: (p.cocreation_score, p.flagged) for p in store.latest_predictions()}
    cocreation = [by_path[a["path"]].id for a in pages if a["cocreation"]]
    others = [by_path[a["path"]].id for a in pages if not a["cocreation"]]
    assert cocreation and all(scores[i][1] for i in cocreation)
    weakest = min(scores[i][0] for i in cocreation)
    assert sum(scores[i][0] > weakest for i in others) <= 1
    assert report.scoring["scored"] == len(pages)

    again = run_nightly(demo_settings)
    assert again.articles_new == 0 and again.articles_duplicate == 0
    assert {f.status for f in again.feeds} == {"not_modified", "failed"}


# -- `make demo` as a new user runs it, and the README's next commands after it ---------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo_checkout(tmp_path):
    """A checkout-shaped folder (the real Makefile, .venv and data/demo linked in) with its own data/local."""
    for name in ("Makefile", "pyproject.toml", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo").symlink_to(DEMO)
    return tmp_path


def _readme_demo_commands() -> list[str]:
    """Return the README's command lines for after `make demo` (status, review, export, digest)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("After `make demo`", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_make_demo_explains_itself_and_the_readme_commands_read_its_database(demo_checkout):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADAR_", "MAKE"))}
    # -o: the checkout's own venv is installed already; a pyproject.toml newer than its stamp must not make
    # this folder of links reinstall the package from here (which would point the venv at a temporary folder).
    port = _free_port()
    done = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "demo", f"DEMO_PORT={port}"],
                          cwd=demo_checkout,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Ctrl-C" not in out + done.stderr
    assert "scripted faults of the demo site" in out and "kanaalzone-sport" in out and "HTTP 500" in out
    last = [line.strip() for line in out.splitlines() if line.strip()][-2:]
    assert last[0].startswith(".venv/bin/radar --config data/demo/radar-demo.toml review")
    assert last[1].startswith(".venv/bin/radar --config data/demo/radar-demo.toml digest")

    commands = _readme_demo_commands()
    verbs = [c.split()[3] for c in commands]
    assert verbs == ["status", "review", "export", "digest"]
    for command in (c for c in commands if " review " not in c):  # review serves until stopped
        ran = subprocess.run(["bash", "-c", command], cwd=demo_checkout, env=env, capture_output=True, text=True,
                             timeout=300)
        assert ran.returncode == 0, ran.stderr
        assert "note: the database" not in ran.stderr  # the demo's database is neither missing nor empty
        if " status" in command:
            assert "Database: sqlite:///data/local/demo/radar.db" in ran.stdout
            assert "articles 30" in ran.stdout
    assert (demo_checkout / "flagged.jsonl").read_text(encoding="utf-8").count("\n") >= 10
    assert (demo_checkout / "digest.html").read_text(encoding="utf-8").startswith("<!doctype html>")

    plain = subprocess.run([".venv/bin/radar", "status"], cwd=demo_checkout, env=env, capture_output=True, text=True)
    assert plain.returncode == 0 and "sqlite:///data/local/radar.db does not exist yet" in plain.stderr
    assert "--config data/demo/radar-demo.toml" in plain.stderr
    assert not (demo_checkout / "data" / "local" / "radar.db").exists()  # a look creates nothing

    # Later, with the demo site served again on the port `make demo` used, the demo config reads that port.
    assert f"127.0.0.1:{port}/" in (demo_checkout / "data" / "local" / "demo" / "feeds.toml").read_text()
    server, _base = start_demo_site("127.0.0.1", port)
    try:
        again = subprocess.run([".venv/bin/radar", "--config", "data/demo/radar-demo.toml", "run", "--json"],
                               cwd=demo_checkout, env=env, capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
        server.server_close()
    report = json.loads(again.stdout)
    assert again.returncode == 0, again.stderr
    assert [f["name"] for f in report["feeds"] if f["status"] == "failed"] == EXPECTED["broken_feeds"]
    assert {f["status"] for f in report["feeds"] if f["name"] not in EXPECTED["broken_feeds"]} == {"not_modified"}


def test_the_demo_config_before_make_demo_says_to_run_it(demo_checkout):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADAR_", "MAKE"))}
    ran = subprocess.run([".venv/bin/radar", "--config", "data/demo/radar-demo.toml", "run"], cwd=demo_checkout,
                         env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert ran.stderr.strip().splitlines() == [
        "radar: error: the feed list data/local/demo/feeds.toml does not exist yet: it is written by `make demo`, "
        "with the port it serves the demo site on; run `make demo` first (or set feeds_file in the config)"]
    assert not (demo_checkout / "data" / "local" / "demo" / "radar.db").exists()


def test_the_demo_config_lets_a_readers_submission_of_a_demo_page_be_accepted_and_fetched(demo_base, tmp_path):
    # `radar public` (accept_submission's check) and `radar run` (SubmissionClient) both read this one setting.
    from pipeline.ingest.fetch import HTML_TYPES
    from pipeline.public.submissions import SubmissionClient, check_url
    from pipeline.settings import load_settings

    settings = load_settings(DEMO / "radar-demo.toml", data_dir=tmp_path, host_delay=0)
    assert settings.submission_allow_loopback
    page = next(a for a in EXPECTED["articles"] if a["kind"] == "cocreation")
    link = demo_base + page["path"]
    assert check_url(link, allow_loopback=settings.submission_allow_loopback) == link
    client = SubmissionClient(settings)
    try:
        answer = client.get(link, accept=HTML_TYPES, check_robots=True)
    finally:
        client.close()
    assert answer.status == 200 and page["title"].split(":")[0].encode() in answer.body
