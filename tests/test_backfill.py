"""radar backfill: WARC files built with warcio's writer, run on a Dask LocalCluster against real PostgreSQL
(2 worker processes) and SQLite (1 worker); reruns, a killed worker, and two writers meeting one wire story."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.backfill import BackfillOptions, run_backfill
from pipeline.demo_site import DEFAULT_ROOT, render_file, resolve_file
from pipeline.dedupe import NearDuplicateIndex, decide_duplicate
from pipeline.errors import ExtractError
from pipeline.extract import reads_as_dutch
from pipeline.nightly import page_to_article
from pipeline.store import Store
from pipeline.warc import RecordFilter, iter_records, record_ranges
from tests.conftest import CORPUS, ROOT
from tests.test_store_postgres import postgres_url  # noqa: F401 - the throw-away PostgreSQL cluster fixture

DEMO = "https://demo.radar.test"
EXPECTED = json.loads((ROOT / "data" / "demo" / "expected.json").read_text(encoding="utf-8"))
ENGLISH = ("<!doctype html><html lang=\"en\"><head><title>City council opens new park</title></head><body>"
           "<article><h1>City council opens new park</h1>" + "".join(
               f"<p>The city council opened the new park on Monday after {i} years of planning, and residents "
               f"said they were happy with the playground, the trees and the new paths along the river.</p>"
               for i in range(12)) + "</article></body></html>")


# -- building WARC files -----------------------------------------------------------------------------------
def _response(writer: WARCWriter, url: str, body: bytes, status: str = "200 OK",
              content_type: str = "text/html; charset=utf-8", warc_date: str = "2026-03-20T10:00:00Z") -> None:
    headers = StatusAndHeaders(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))],
                               protocol="HTTP/1.1")
    record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers,
                                       warc_headers_dict={"WARC-Date": warc_date})
    writer.write_record(record)


def _request(writer: WARCWriter, url: str) -> None:
    headers = StatusAndHeaders(f"GET {url} HTTP/1.1", [("User-Agent", "test")], is_http_request=True)
    writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=headers))


def demo_pages() -> list[tuple[str, bytes]]:
    """Return (url, page bytes) of every demo article that answers 200, rendered for the WARC's host."""
    pages = []
    for art in EXPECTED["articles"]:
        if art["status"] == 200:
            pages.append((DEMO + art["path"], render_file(resolve_file(DEFAULT_ROOT, art["path"]), DEMO)))
    return pages


def real_pages() -> list[tuple[str, bytes]]:
    """Return (url, bytes) of the real pages in ../shared/corpus/pages (read there, never copied)."""
    folder = CORPUS / "pages"
    if not folder.is_dir():
        pytest.skip(f"the shared corpus pages are missing at {folder}")
    urls = {g["file"]: g.get("url") for g in json.loads((folder / "gold.json").read_text(encoding="utf-8"))}
    # Pages without a known address get one from their file name (www_nos_nl_... -> https://www.nos.nl/...).
    return [(urls.get(p.name) or "https://" + p.name.replace("_", ".", 2).split("_")[0] + "/" + p.name, p.read_bytes())
            for p in sorted(folder.iterdir()) if p.name != "gold.json"]


def write_warcs(folder: Path) -> list[Path]:
    """Write two WARC files (one gzip, one plain) with the demo and real pages and every kind of record to skip.

    Besides the articles: a request record, a 500 page, a 404, a JSON body, an image, an English article,
    the same URL crawled twice and an exact copy of a demo article under another URL.
    """
    demo, real = demo_pages(), real_pages()
    first, second = folder / "crawl-1.warc.gz", folder / "crawl-2.warc"
    with first.open("wb") as stream:
        writer = WARCWriter(stream, gzip=True)
        for url, body in demo:
            _request(writer, url)
            _response(writer, url, body)
        failing = EXPECTED["failing_pages"][0]
        _response(writer, DEMO + failing, b"<html><body>500</body></html>", status="500 Internal Server Error")
        _response(writer, DEMO + "/gone.html", b"<html><body>weg</body></html>", status="404 Not Found")
    with second.open("wb") as stream:
        writer = WARCWriter(stream, gzip=False)
        for url, body in real:
            _response(writer, url, body)
        _response(writer, DEMO + "/api/articles.json", b'{"articles": []}', content_type="application/json")
        _response(writer, DEMO + "/logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 200, content_type="image/png")
        _response(writer, "https://english.example/park.html", ENGLISH.encode())
        _response(writer, demo[0][0], demo[0][1], warc_date="2026-03-21T10:00:00Z")  # crawled again
        _response(writer, DEMO + "/mirror/copy.html", demo[1][1])  # the same text at another address
    return [first, second]


def expected_result(warcs: list[Path]) -> dict:
    """The reference: each kept record through the nightly stage functions in one process, in file order."""
    keep = RecordFilter(max_bytes=5_000_000)
    urls, clusters, index, by_hash, skipped, heads = [], {}, NearDuplicateIndex(0.5), {}, {}, 0
    for path in warcs:
        for _offset, page in iter_records(str(path), 0, None, keep):
            reason = page if isinstance(page, str) else None
            if reason is None:
                try:
                    article = page_to_article(page.body, page.url, content_type=page.content_type,
                                              min_chars=400, max_chars=200_000)
                    reason = None if reads_as_dutch(article) else "not_dutch"
                except ExtractError as exc:
                    reason = exc.reason
            if reason is None and article.canonical_url in urls:
                reason = "duplicate_url"
            if reason:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            decision = decide_duplicate(article, by_hash.get(article.content_hash), index)
            head = decision.duplicate[0] if decision.duplicate else len(urls)
            if decision.heads_new_cluster:
                heads += 1
                if decision.signature is not None:
                    index.add(len(urls), decision.signature)
            by_hash.setdefault(article.content_hash, head)
            clusters.setdefault(head, set()).add(article.canonical_url)
            urls.append(article.canonical_url)
    return {"urls": sorted(urls), "clusters": {frozenset(c) for c in clusters.values()}, "skipped": skipped}


def stored_result(url: str) -> dict:
    """What the store holds: backfilled URLs, clusters as URL sets, and the counts that must not grow."""
    store = Store(url)
    rows = store.articles()
    counts = {k: v for k, v in store.counts().items() if k != "runs"}  # a rerun is recorded, and adds nothing else
    store.close()
    by_id = {a.id: a.canonical_url for a in rows}
    clusters: dict[int, set[str]] = {}
    for art in rows:
        clusters.setdefault(art.canonical_id or art.id, set()).add(by_id[art.id])
    return {"urls": sorted(by_id.values()), "clusters": {frozenset(c) for c in clusters.values()},
            "origins": {a.origin for a in rows}, "provenance": [a.provenance for a in rows], "counts": counts}


@pytest.fixture(scope="module")
def warcs(tmp_path_factory) -> list[Path]:
    """The two test WARC files, written once per module."""
    return write_warcs(tmp_path_factory.mktemp("warc"))


@pytest.fixture(scope="module")
def expected(warcs) -> dict:
    """The reference result of the test WARC files."""
    return expected_result(warcs)


def _settings(make_settings, database_url: str = "", **overrides):
    return make_settings(None, database_url=database_url, **overrides) if database_url else make_settings(None, **overrides)


def _check_expected(result: dict, expected: dict) -> None:
    assert result["urls"] == expected["urls"]
    assert len(set(result["urls"])) == len(result["urls"])  # no article twice
    assert result["clusters"] == expected["clusters"]
    assert result["origins"] == {"backfill"}
    assert all(p.startswith("<urn:uuid:") for p in result["provenance"])
    assert len(set(result["provenance"])) == len(result["provenance"])


# -- the reference itself: what the WARC files hold ------------------------------------------------------
def test_reference_holds_the_demo_stories_their_copies_and_every_skip(expected):
    demo_urls = {DEMO + a["path"] for a in EXPECTED["articles"] if a["status"] == 200}
    assert demo_urls <= set(expected["urls"])
    wire = [frozenset(DEMO + p for p in pair) for pair in EXPECTED["duplicates"]]
    assert all(any(pair <= c for c in expected["clusters"]) for pair in wire)  # near copies: one cluster
    assert any({DEMO + "/mirror/copy.html"} < c for c in expected["clusters"])  # the exact copy joins its story
    assert expected["skipped"] == {"not_response": 30, "not_200": 2, "not_html": 2, "not_dutch": 1,
                                   "duplicate_url": 1, **{k: v for k, v in expected["skipped"].items()
                                                          if k not in ("not_response", "not_200", "not_html",
                                                                       "not_dutch", "duplicate_url")}}


def test_record_ranges_cut_a_large_file_at_record_offsets(warcs):
    path = str(warcs[1])
    ranges = record_ranges(path, 20_000)
    assert len(ranges) > 2 and ranges[0][0] == 0 and ranges[-1][1] is None
    keep = RecordFilter()
    whole = [offset for offset, _ in iter_records(path, 0, None, keep)]
    parts = [offset for start, end in ranges for offset, _ in iter_records(path, start, end, keep)]
    assert parts == whole  # every record in exactly one range


# -- SQLite, one worker ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_backfill_on_sqlite_with_one_worker_then_rerun_adds_nothing(make_settings, warcs, expected):
    settings = _settings(make_settings)
    options = BackfillOptions(workers=1, all_hosts=True, partition_bytes=40_000, batch_records=7)
    first = run_backfill(settings, [str(p) for p in warcs], options)
    result = stored_result(settings.effective_database_url)
    _check_expected(result, expected)
    assert first.status == "ok" and first.partitions > 2 and first.stored == len(expected["urls"])
    assert first.skipped == expected["skipped"]
    assert result["counts"]["predictions"] == len(expected["urls"])  # scored by the workers, one each

    again = run_backfill(settings, [str(warcs[0].parent / "crawl-*")], options)
    assert again.partitions_run == 0 and again.stored == 0 and again.records == 0
    assert stored_result(settings.effective_database_url)["counts"] == result["counts"]
