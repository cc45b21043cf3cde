"""The bundled demo site served for real and the nightly run against it, checked with expected.json."""

from __future__ import annotations

import json
import urllib.request

import feedparser
import pytest

from pipeline.demo_site import start_demo_site
from pipeline.nightly import run_nightly
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
    rows = {a["url"].split("://", 1)[1].split("/", 1)[1]: a for a in store.articles()}
    by_path = {"/" + path: row for path, row in rows.items()}
    for first, second in EXPECTED["duplicates"]:
        heads = {by_path[first]["canonical_id"] or by_path[first]["id"], by_path[second]["canonical_id"] or by_path[second]["id"]}
        assert len(heads) == 1, f"{first} and {second} should be one cluster"
    for page in pages:
        row = by_path[page["path"]]
        assert row["title"] and row["published"][:10] == page["published"][:10]
        assert "cookie" not in row["text"].lower() and "reacties" not in row["text"].lower()[-200:]

    # The shipped model flags every co-creation story; at most one other article outranks one of them.
    scores = {p["article_id"]: (p["cocreation_score"], p["flagged"]) for p in store.latest_predictions()}
    cocreation = [by_path[a["path"]]["id"] for a in pages if a["cocreation"]]
    others = [by_path[a["path"]]["id"] for a in pages if not a["cocreation"]]
    assert cocreation and all(scores[i][1] for i in cocreation)
    weakest = min(scores[i][0] for i in cocreation)
    assert sum(scores[i][0] > weakest for i in others) <= 1
    assert report.scoring["scored"] == len(pages)

    again = run_nightly(demo_settings)
    assert again.articles_new == 0 and again.articles_duplicate == 0
    assert {f.status for f in again.feeds} == {"not_modified", "failed"}
