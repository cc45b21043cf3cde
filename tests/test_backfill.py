"""radar backfill: WARC files built with warcio's writer, run on a Dask LocalCluster against real PostgreSQL
(2 worker processes) and SQLite (1 worker); reruns, a killed worker, two writers meeting one wire story, and
files damaged after good records (garbage bytes, a cut record; plain and gzip)."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.detect.classify import load_model
from pipeline.resources import FEEDS_FILE, MODEL_DIR
from pipeline.runs.backfill import BackfillOptions, fill_missing_bands, run_backfill
from pipeline.demo_site import DEFAULT_ROOT, render_file, resolve_file
from pipeline.ingest.dedupe import NearDuplicateIndex, decide_duplicate
from pipeline.errors import ExtractError
from pipeline.ingest.extract import reads_as_dutch
from pipeline.runs.nightly import page_to_article
from pipeline.store import SCHEMA_VERSION, Store
from pipeline.ingest.warc import RecordFilter, iter_records, record_ranges
from tests.conftest import CORPUS, ROOT, fresh_database
from tests import test_store_postgres

postgres_url = test_store_postgres.postgres_url  # the throw-away PostgreSQL cluster fixture, reused
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


def _check_readers(url: str, expected: dict) -> None:
    # The review queue's cluster rows and load_dataset read backfilled articles like any other.
    from pipeline.research.dataset import load_dataset

    data = load_dataset(url, origin="backfill")
    assert len(data) == len(expected["urls"]) and set(data["origin"]) == {"backfill"}
    store = Store(url)
    flagged = store.flagged_cluster_ids()
    heads = {a.id for a in store.articles() if a.canonical_id is None}
    store.close()
    assert flagged and flagged <= heads  # the demo's co-creation stories reach the queue
    assert set(load_dataset(url, status="flagged")["cluster_id"]) == flagged


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


def test_partitions_run_largest_first_so_the_last_tasks_are_short(make_settings, warcs):
    from pipeline.runs.backfill import largest_first

    store = Store(_settings(make_settings).effective_database_url)
    store.migrate()
    path = str(warcs[1])
    store.plan_partitions(path, record_ranges(path, 100_000))
    parts = store.partitions_of([path])
    size = os.path.getsize(path)
    left = {p["id"]: (p["end_offset"] or size) - p["next_offset"] for p in parts}
    ordered = [p["id"] for p in largest_first(parts)]
    store.close()
    assert len(parts) > 2 and sorted(ordered) == sorted(left)
    assert [left[i] for i in ordered] == sorted(left.values(), reverse=True)
    assert ordered[-1] == parts[-1]["id"]  # the file's remainder, the smallest, runs last


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
    _check_readers(settings.effective_database_url, expected)

    again = run_backfill(settings, [str(warcs[0].parent / "crawl-*")], options)
    assert again.partitions_run == 0 and again.stored == 0 and again.records == 0
    assert stored_result(settings.effective_database_url)["counts"] == result["counts"]


# -- PostgreSQL, two worker processes ------------------------------------------------------------------------
@pytest.mark.slow
def test_backfill_on_postgres_with_two_workers_then_rerun_adds_nothing(postgres_url, make_settings, warcs, expected):
    url = fresh_database(postgres_url, "backfill_two")
    settings = _settings(make_settings, url)
    options = BackfillOptions(workers=2, all_hosts=True, partition_bytes=40_000, batch_records=5)
    first = run_backfill(settings, [str(p) for p in warcs], options)
    result = stored_result(url)
    _check_expected(result, expected)
    assert first.status == "ok" and first.partitions > 2 and first.skipped == expected["skipped"]
    store = Store(url)
    workers = {p["worker"].rsplit(":", 1)[1] for p in store.partitions_of([str(p) for p in warcs])}
    store.close()
    assert len(workers) == 2  # both worker processes wrote partitions
    assert result["counts"]["predictions"] == len(expected["urls"])

    again = run_backfill(settings, [str(p) for p in warcs], options)
    assert again.partitions_run == 0 and again.stored == 0
    assert stored_result(url)["counts"] == result["counts"]


def _wait_for(condition, what: str, timeout: float = 120.0):
    # Polls a condition on real state (the store, a process); fails with what it waited for.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def _mid_partition_worker(url: str, files: list[str]) -> int | None:
    # The pid of a worker that has committed a batch of a partition it has not finished.
    store = Store(url)
    try:
        rows = store.partitions_of(files) if store.schema_version() == SCHEMA_VERSION else []
    finally:
        store.close()
    busy = [p for p in rows if p["status"] == "pending" and p["records"] > 0]
    return int(busy[0]["worker"].rsplit(":", 1)[1]) if busy else None


@pytest.mark.slow
def test_killing_a_worker_mid_run_then_rerun_gives_the_same_result(postgres_url, make_settings, warcs, expected):
    url = fresh_database(postgres_url, "backfill_kill")
    settings = _settings(make_settings, url)
    files = [str(p) for p in warcs]
    command = [str(Path(sys.executable).parent / "radar"), "backfill", *files, "--workers", "2", "--all-hosts",
               "--database-url", url, "--partition-bytes", "200000", "--batch", "2"]
    env = {**os.environ, "RADAR_DATA_DIR": str(settings.data_dir), "RADAR_PROGRESS": "false"}
    run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = _wait_for(lambda: _mid_partition_worker(url, files), "a worker in the middle of a partition")
        os.kill(victim, signal.SIGKILL)
        run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    crashed = stored_result(url)  # whatever the killed run ended with: no article and no record twice
    assert len(set(crashed["urls"])) == len(crashed["urls"]) and set(crashed["urls"]) <= set(expected["urls"])
    assert len(set(crashed["provenance"])) == len(crashed["provenance"])
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    result = stored_result(url)
    _check_expected(result, expected)
    store = Store(url)
    assert all(p["status"] == "done" for p in store.partitions_of(files))
    skipped = _totals(store.partitions_of(files))
    store.close()
    assert skipped == expected["skipped"]  # every record counted once, the killed batch included
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "0 articles stored" in again.stdout
    assert stored_result(url)["counts"] == result["counts"]


def _totals(partitions: list[dict]) -> dict:
    from pipeline.runs.backfill import totals

    return totals(partitions)["skipped"]


# -- two writers meeting the same wire story at once ----------------------------------------------------------
def wire_pairs(count: int) -> list[tuple[tuple[str, bytes], tuple[str, bytes]]]:
    """Return `count` real stories, each as two near copies (another intro line) at two outlets."""
    from tests.conftest import article_html, corpus_articles

    stories = corpus_articles(min_chars=1500)[:count]
    pairs = []
    for i, story in enumerate(stories):
        text = story["text"]
        copy = "DEN HAAG (ANP) - Een bericht van het persbureau.\n" + text.rsplit(". ", 1)[0] + "."
        pairs.append(((f"https://krant-a.example/nieuws/{i}.html", article_html(story["title"], text).encode()),
                      (f"https://krant-b.example/artikel/{i}.html", article_html(story["title"], copy).encode())))
    return pairs


def write_stories(url: str, side: int, count: int, barrier) -> None:
    """In a process of its own: store one copy of every wire story as one batch, starting with the other writer."""
    from pipeline.runs.backfill import Batch, BackfillJob, duplicate_decider, prepare_page
    from pipeline.ingest.warc import WarcPage

    store = Store(url)
    job = BackfillJob(database_url=url, model_dir="", min_text_chars=400, max_text_chars=200_000, near_threshold=0.5,
                      keep=RecordFilter(), outlets={}, batch_records=count, run_id=None)
    pages = [prepare_page(job, WarcPage(f"<urn:uuid:race-{side}-{i}>", pair[side][0], "2026-03-20T10:00:00Z",
                                        "text/html", pair[side][1])) for i, pair in enumerate(wire_pairs(count))]
    part = store.partitions_of([f"race-{side}"])[0]
    batch = Batch(part["id"], 0, to_offset=1, done=True, worker=f"race:{os.getpid()}", records=count, pages=pages)
    barrier.wait()
    store.save_backfill_batch(batch, duplicate_decider(0.5))
    store.close()


@pytest.mark.slow
def test_two_writers_meeting_the_same_wire_stories_at_once_end_with_one_cluster_each(postgres_url):
    url = fresh_database(postgres_url, "backfill_race")
    store = Store(url)
    store.migrate()
    for side in (0, 1):
        store.plan_partitions(f"race-{side}", [(0, None)])
    store.close()
    count = 25
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=write_stories, args=(url, side, count, barrier)) for side in (0, 1)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=300)
    assert [w.exitcode for w in writers] == [0, 0]
    result = stored_result(url)
    assert len(result["urls"]) == 2 * count
    assert len(result["clusters"]) == count  # each story once, its two copies together
    assert all({u.split("/")[2] for u in c} == {"krant-a.example", "krant-b.example"} for c in result["clusters"])


def _advisory_waiters(url: str) -> int:
    # How many sessions wait for an advisory lock right now (the writers' lock, the only one the radar takes).
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                                ).scalar()
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("other", ["run", "ingest"])
def test_a_nightly_run_and_a_backfill_meeting_one_wire_story_at_once_end_with_one_cluster(postgres_url, server,
                                                                                          tmp_path, other):
    # `radar run` fetches one copy of a wire story from a feed (or `radar ingest` reads it from a JSONL file) while
    # `radar backfill` stores the other copy from a WARC file. The test holds the writers' lock until both are at
    # their dedupe step, so they meet at once.
    from sqlalchemy import create_engine, text

    from pipeline.store import BACKFILL_LOCK_KEY
    from tests.conftest import rss

    url = fresh_database(postgres_url, f"backfill_{other}_race")
    (feed_copy, feed_page), (warc_copy, warc_page) = wire_pairs(1)[0]
    server.page("/nieuws/0.html", feed_page)
    server.page("/feed.xml", rss([{"link": server.url("/nieuws/0.html"), "title": "Het bericht"}]),
                "application/rss+xml")
    (tmp_path / "feeds.toml").write_text(f'[[feeds]]\nname = "krant-a"\nurl = "{server.url("/feed.xml")}"\n'
                                         'outlet = "Krant A"\nlanguage = "nl"\n', encoding="utf-8")
    warc = tmp_path / "copy.warc.gz"
    with warc.open("wb") as stream:
        _response(WARCWriter(stream, gzip=True), warc_copy, warc_page)
    env = {**os.environ, "RADAR_DATA_DIR": str(tmp_path / "local"), "RADAR_DATABASE_URL": url,
           "RADAR_FEEDS_FILE": str(tmp_path / "feeds.toml"), "RADAR_ALLOW_PRIVATE_ADDRESSES": "true",
           "RADAR_PROGRESS": "false", "RADAR_HOST_DELAY": "0", "RADAR_MODEL_DIR": str(tmp_path / "no-model")}
    radar = str(Path(sys.executable).parent / "radar")
    Store(url).migrate()
    engine = create_engine(url)
    holder = engine.connect()
    holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": BACKFILL_LOCK_KEY})
    holder.commit()
    runs = []
    try:
        runs.append(subprocess.Popen([radar, "backfill", str(warc), "--workers", "1", "--all-hosts"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        _wait_for(lambda: _advisory_waiters(url) == 1, "the backfill worker waiting at its dedupe step")
        command = [radar, "run"] if other == "run" else [radar, "ingest", str(_as_jsonl(tmp_path, feed_copy, feed_page))]
        runs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        # The old nightly run and ingest never waited: each stored its copy as a new head, without band keys.
        _wait_for(lambda: _advisory_waiters(url) == 2 or runs[1].poll() is not None, "the nightly run's dedupe step")
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": BACKFILL_LOCK_KEY})
        holder.commit()
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        holder.close()
        engine.dispose()
        for run in runs:
            if run.poll() is None:
                run.kill()
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    result = stored_result(url)
    assert len(result["urls"]) == 2 and result["origins"] == {"backfill", "feed" if other == "run" else "ingest"}
    assert len(result["clusters"]) == 1  # one story: the later copy joined the first as a near duplicate


def _as_jsonl(tmp_path: Path, url: str, page: bytes) -> Path:
    """Write the page's article as the one line of a `radar ingest` file."""
    from pipeline.ingest.extract import build_article

    article = build_article(page, url)
    path = tmp_path / "wire.jsonl"
    path.write_text(json.dumps({"id": "wire-0", "title": article.title, "text": article.text, "url": url}) + "\n",
                    encoding="utf-8")
    return path


def test_workers_load_the_model_their_own_package_ships_unless_a_model_dir_is_set(make_settings, tmp_path):
    from pipeline.runs.backfill import make_job
    from pipeline.runs.partition import worker_scorer

    shipped = make_job(make_settings(None, model_dir=MODEL_DIR, feeds_file=FEEDS_FILE), BackfillOptions(), None)
    assert shipped.model_dir == ""  # no path of the driver's machine travels to the workers
    scorer = worker_scorer(shipped.model_dir)
    assert scorer is not None and scorer.model.card["model_sha256"] == load_model(MODEL_DIR).card["model_sha256"]
    (tmp_path / "models").mkdir()
    chosen = make_job(make_settings(None, model_dir=tmp_path / "models", feeds_file=FEEDS_FILE), BackfillOptions(),
                      None)
    assert chosen.model_dir == str((tmp_path / "models").resolve()) and worker_scorer(chosen.model_dir) is None


# -- filters, and dedupe against what the nightly run stored ---------------------------------------------------
def test_hosts_default_to_the_feed_lists_and_a_hosts_file_or_dates_narrow_the_records(make_settings, warcs, tmp_path):
    from pipeline.runs.backfill import make_job

    settings = make_settings(None, feeds_file=FEEDS_FILE)
    default = make_job(settings, BackfillOptions(), None)
    assert {"nos.nl", "nu.nl"} <= default.keep.hosts and "demo.radar.test" not in default.keep.hosts
    assert make_job(settings, BackfillOptions(all_hosts=True), None).keep.hosts is None
    (tmp_path / "hosts.txt").write_text("# outlets\nwww.nu.nl\n\n", encoding="utf-8")
    listed = make_job(settings, BackfillOptions(hosts_file=tmp_path / "hosts.txt"), None).keep
    kept = [p.url for _, p in iter_records(str(warcs[1]), 0, None, listed) if not isinstance(p, str)]
    assert kept and all("nu.nl/" in u for u in kept)
    reasons = [p for _, p in iter_records(str(warcs[1]), 0, None, listed) if isinstance(p, str)]
    assert "host_not_listed" in reasons and "not_html" in reasons  # headers decide before the host
    later = RecordFilter(since=date(2026, 3, 21), until=date(2026, 3, 21))
    kept = [p.url for _, p in iter_records(str(warcs[1]), 0, None, later) if not isinstance(p, str)]
    assert kept == [DEMO + EXPECTED["articles"][0]["path"]]  # only the record crawled again on the 21st


def test_a_backfilled_copy_joins_the_cluster_of_a_story_the_nightly_run_stored(make_settings, tmp_path):
    from pipeline.runs.backfill import make_job, run_partition
    from pipeline.ingest.dedupe import save_deduplicated

    first, second = (DEMO + p for p in EXPECTED["duplicates"][0])
    pages = dict(demo_pages())
    settings = make_settings(None, model_dir=tmp_path / "no-model")
    store = Store(settings.effective_database_url)
    store.migrate()
    nightly = page_to_article(pages[first], first, min_chars=400, max_chars=200_000)
    assert save_deduplicated(store, NearDuplicateIndex(0.5), nightly, run_id=None)  # the nightly run's way
    head_id = store.find_article(canonical_url=nightly.canonical_url)
    path = tmp_path / "copy.warc.gz"
    with path.open("wb") as stream:
        _response(WARCWriter(stream, gzip=True), second, pages[second])
    store.plan_partitions(str(path), [(0, None)])
    job = make_job(settings, BackfillOptions(all_hosts=True), None)
    fill_missing_bands(store, 0.5)  # what run_backfill does first: the nightly heads get their band keys
    result = run_partition(job, store.partitions_of([str(path)])[0]["id"])
    copies = [a for a in store.articles() if a.origin == "backfill"]
    store.close()
    assert result["status"] == "done" and not result["scored"]
    assert len(copies) == 1 and copies[0].canonical_id == head_id and copies[0].duplicate_kind == "near"


# -- bounded worker memory ---------------------------------------------------------------------------------------
def _busy(seconds: float) -> int:
    # CPU work for a while (no sleep: the profiler samples a running thread).
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n += sum(i * i for i in range(1000))
    return n


def _profile_samples(dask_worker) -> int:
    # The stack samples a worker's profiler holds: the current cycle and its history (an hour of them).
    return dask_worker.profile_recent["count"] + sum(tree["count"] for _, tree in dask_worker.profile_history)


def test_backfill_workers_keep_no_profile_of_their_work():
    # Measured (tracemalloc diffs between partitions): Dask's profiler's call trees were what grew a worker's
    # memory with its run time, so with the size of the file. The backfill's workers run without it.
    from pipeline.runs.backfill import dask_client

    with dask_client(BackfillOptions(workers=1)) as client:
        assert client.submit(_busy, 1.5, pure=False).result() > 0
        samples = client.run(_profile_samples)
    assert list(samples.values()) == [0]


def _upkeep_periods(server) -> dict:
    return {name: server.periodic_callbacks[name].callback_time for name in ("tick", "monitor")}


def _worker_upkeep(dask_worker) -> dict:
    return _upkeep_periods(dask_worker)


def _scheduler_upkeep(dask_scheduler) -> dict:
    return {**_upkeep_periods(dask_scheduler), "stealing": "stealing" in dask_scheduler.extensions}


def test_the_local_clusters_upkeep_leaves_the_cores_to_the_workers():
    # Measured with 2 workers on 2 cores: Dask's default upkeep (20 ms ticks, 0.5 s system samples, 0.1 s nanny
    # memory reads and work stealing) cost the driver process 1.0 s of CPU per 10 s run, 0.4 s at this pace.
    from dask.distributed import Client

    from pipeline.runs.backfill import local_cluster

    with local_cluster(1) as cluster, Client(cluster) as client:
        workers = list(client.run(_worker_upkeep).values())
        scheduler = client.run_on_scheduler(_scheduler_upkeep)
        nannies = [worker.periodic_callbacks["memory_monitor"].callback_time for worker in cluster.workers.values()]
    assert workers == [{"tick": 500, "monitor": 2000}]
    assert scheduler == {"tick": 500, "monitor": 2000, "stealing": False}
    assert nannies == [2000]


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_worker_store_does_not_keep_every_large_statement_it_prepared(tmp_path):
    # Measured: refreshing the cluster rows a batch joins reads every member with a long IN list, a new one for
    # every batch, and sqlite3 kept 128 of those prepared per connection: memory grew with the database.
    from pipeline.runs.backfill import worker_store

    store = worker_store(f"sqlite:///{tmp_path / 'radar.db'}", 200_000)
    store.migrate()
    store.newest_predictions(range(10))
    before = _rss_mb()
    for n in range(1500, 1700):  # 200 statements, each with its own number of parameters
        store.newest_predictions(range(n))
    grown = _rss_mb() - before
    store.close()
    assert grown < 20  # about 37 MB with sqlite3's default cache, 7 MB with the worker's


# -- damaged files: garbage after good records --------------------------------------------------------------
def garbage_block(kind: str, gz: bool) -> bytes:
    """Return bytes that are no WARC record: random bytes, or the first half of a record (its length runs on)."""
    if kind == "random":
        return random.Random(13).randbytes(5000)
    whole = io.BytesIO()
    url, body = demo_pages()[-1]
    _response(WARCWriter(whole, gzip=gz), url, body)
    return whole.getvalue()[:len(whole.getvalue()) // 2]


def write_damaged_warc(path: Path, kind: str, first: int = 0, after: int = 3) -> tuple[list[str], int, int | None]:
    """Write five good demo records, a garbage block and `after` good ones (gzip when the name ends in .gz).

    Returns the good records' URLs, the garbage's offset and the offset of the first record after it (None: none).
    """
    pages = demo_pages()[first:first + 5 + after]
    with path.open("wb") as stream:
        writer = WARCWriter(stream, gzip=path.name.endswith(".gz"))
        for url, body in pages[:5]:
            _response(writer, url, body)
        damaged_at = stream.tell()
        stream.write(garbage_block(kind, path.name.endswith(".gz")))
        resumed_at = stream.tell() if after else None
        for url, body in pages[5:]:
            _response(writer, url, body)
    return [url for url, _ in pages], damaged_at, resumed_at


DAMAGED_FILES = [("crawl.warc", "random", 3), ("crawl.warc", "cut_record", 3), ("crawl.warc.gz", "random", 3),
                 ("crawl.warc.gz", "cut_record", 3), ("crawl.warc.gz", "random", 0)]


@pytest.mark.parametrize(("name", "kind", "after"), DAMAGED_FILES)
def test_reading_a_damaged_file_reports_where_and_resumes_at_the_next_record(tmp_path, name, kind, after):
    path = tmp_path / name
    urls, damaged_at, resumed_at = write_damaged_warc(path, kind, after=after)
    outcomes = list(iter_records(str(path), 0, None, RecordFilter()))
    damage = [(offset, d) for offset, d in outcomes if type(d).__name__ == "Damage"]
    assert [(offset, d.offset, d.resumed_at) for offset, d in damage] == [(damaged_at, damaged_at, resumed_at)]
    assert damage[0][1].reason.isascii() and damage[0][1].reason.isprintable()  # one line, whatever the bytes
    assert [page.url for _, page in outcomes if hasattr(page, "url")] == urls


def test_record_ranges_of_a_damaged_file_hold_every_readable_record_once(tmp_path):
    path = tmp_path / "crawl.warc"
    urls, damaged_at, _ = write_damaged_warc(path, "random", after=20)
    ranges = record_ranges(str(path), 30_000)
    assert len(ranges) > 3
    outcomes = [item for start, end in ranges for item in iter_records(str(path), start, end, RecordFilter())]
    assert [page.url for _, page in outcomes if hasattr(page, "url")] == urls
    assert [offset for offset, d in outcomes if type(d).__name__ == "Damage"] == [damaged_at]


@pytest.mark.parametrize(("name", "kind", "after"), DAMAGED_FILES)
@pytest.mark.parametrize("batch", [50, 4])
def test_a_partition_stores_the_records_around_damage_and_notes_where_it_is(make_settings, tmp_path, name, kind,
                                                                              after, batch):
    from pipeline.runs.backfill import make_job, run_partition

    path = tmp_path / name
    urls, damaged_at, resumed_at = write_damaged_warc(path, kind, after=after)
    settings = make_settings(None, model_dir=tmp_path / "no-model")
    store = Store(settings.effective_database_url)
    store.migrate()
    store.plan_partitions(str(path), record_ranges(str(path), 64 * 1024 * 1024))
    job = make_job(settings, BackfillOptions(all_hosts=True, batch_records=batch), None)
    partition_id = store.partitions_of([str(path)])[0]["id"]
    result = run_partition(job, partition_id)
    part = store.partitions_of([str(path)])[0]
    stored = sorted(a.canonical_url for a in store.articles())
    again = run_partition(job, partition_id)
    assert len(store.articles()) == len(stored)  # the rerun stored nothing (twice)
    store.close()
    assert result["status"] == "done" and again == {**result, "records": 0}
    assert stored == sorted(urls)  # the five before the damage and the records after it
    assert part["status"] == "done" and part["records"] == len(urls) and part["damaged_at"] == damaged_at
    resumed = f"; resumed at offset {resumed_at}" if resumed_at else "; no record start after it in this partition"
    assert part["damage"].startswith(("unreadable record (", "a record whose Content-Length"))
    assert part["damage"].endswith(resumed) and part["damage"].isprintable()


def test_cli_backfill_of_damaged_files_reports_the_damage_and_a_rerun_exits_the_same_way(make_settings, tmp_path):
    from tests.cli_helpers import radar

    settings = _settings(make_settings)
    plain, gz = tmp_path / "crawl-plain.warc", tmp_path / "crawl-cut.warc.gz"
    files = {plain: write_damaged_warc(plain, "random"), gz: write_damaged_warc(gz, "cut_record", first=10)}
    env = {"RADAR_DATA_DIR": str(settings.data_dir), "RADAR_PROGRESS": "false",
           "RADAR_MODEL_DIR": str(tmp_path / "no-model")}
    runs = [radar("backfill", str(plain), str(gz), "--workers", "1", "--all-hosts", env=env) for _ in range(2)]
    url = settings.effective_database_url
    result = stored_result(url)
    store = Store(url)
    reports = [run["report"] for run in reversed(store.recent_runs(2))]
    store.close()
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr[-2000:]
    assert result["urls"] == sorted(u for urls, _, _ in files.values() for u in urls)
    assert "16 articles stored" in runs[0].stdout and "0 articles stored" in runs[1].stdout
    expected = [(f"  DAMAGED {path} at offset {damaged_at}: ", f"; resumed at offset {resumed_at}")
                for path, (_, damaged_at, resumed_at) in sorted(files.items())]
    for run in runs:  # the rerun exits as the first run did, naming the same damage
        assert "Traceback" not in run.stderr and "Compute Failed" not in run.stderr
        damaged = [line for line in run.stdout.splitlines() if line.startswith("  DAMAGED ")]
        assert len(damaged) == 2 and all(line.startswith(head) and line.endswith(tail)
                                         for line, (head, tail) in zip(damaged, expected, strict=True))
    assert [sum("is damaged at offset" in line for line in run.stderr.splitlines()) for run in runs] == [2, 0]
    assert [(d["file"], d["offset"]) for d in reports[0]["damaged"]] == [
        (str(path), damaged_at) for path, (_, damaged_at, _) in sorted(files.items())]
    assert reports[1]["damaged"] == reports[0]["damaged"]


# -- hostile input and usage errors ------------------------------------------------------------------------
def test_a_file_that_is_not_a_warc_is_a_clear_error_and_a_cut_record_a_skip(tmp_path, warcs):
    from pipeline.errors import ConfigError

    (tmp_path / "garbage.warc").write_bytes(b"GET / HTTP/1.1\r\n\r\n" * 50)
    with pytest.raises(ConfigError, match="garbage.warc is not a readable WARC file"):
        list(iter_records(str(tmp_path / "garbage.warc"), 0, None, RecordFilter()))
    for warc in warcs:  # a download cut in the middle of a record, plain and gzip
        cut = tmp_path / f"cut-{warc.name}"
        cut.write_bytes(warc.read_bytes()[:50_000])
        outcomes = [page for _, page in iter_records(str(cut), 0, None, RecordFilter())]
        assert outcomes[-1] == "truncated" and "truncated" not in outcomes[:-1]


def test_cli_backfill_of_a_file_that_is_not_warc_fails_its_partition_in_one_line(make_settings, tmp_path):
    from tests.cli_helpers import radar

    settings = _settings(make_settings)
    (tmp_path / "garbage.warc").write_bytes(b"GET / HTTP/1.1\r\n\r\n" * 50)
    env = {"RADAR_DATA_DIR": str(settings.data_dir), "RADAR_PROGRESS": "false"}
    run = radar("backfill", str(tmp_path / "garbage.warc"), "--workers", "1", "--all-hosts", env=env)
    assert run.returncode == 1 and "FAILED partition: ConfigError:" in run.stdout
    failed = [line for line in run.stdout.splitlines() if "FAILED partition" in line]
    assert len(failed) == 1 and "garbage.warc is not a readable WARC file" in failed[0]
    assert "Traceback" not in run.stderr and "Compute Failed" not in run.stderr


def test_cli_refuses_paths_that_match_nothing_and_bad_dates(tmp_path):
    from tests.cli_helpers import invoke

    env = {"RADAR_DATA_DIR": str(tmp_path / "local")}
    missing = invoke("backfill", str(tmp_path / "nothing-*.warc.gz"), env=env)
    assert missing.exit_code == 2 and "no WARC file matches" in missing.stderr
    bad_date = invoke("backfill", str(tmp_path / "x.warc"), "--since", "2024-13-01", env=env)
    assert bad_date.exit_code == 2 and "ISO date" in bad_date.stderr
    assert "backfill" in invoke("--help").stdout


# -- Dask's own log lines ----------------------------------------------------------------------------------
def test_cli_backfill_keeps_dasks_info_lines_for_verbose(make_settings, tmp_path, warcs):
    # distributed sets its loggers to INFO when imported: about fifteen lines (scheduler at, nanny started,
    # client removed ...) reached stderr on every backfill. They are the cluster's upkeep: shown with -v.
    from tests.cli_helpers import radar

    settings = _settings(make_settings)
    env = {"RADAR_DATA_DIR": str(settings.data_dir), "RADAR_PROGRESS": "false",
           "RADAR_MODEL_DIR": str(tmp_path / "no-model")}
    quiet = radar("backfill", *map(str, warcs), "--workers", "1", "--all-hosts", env=env)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "articles stored" in quiet.stdout
    # Warnings stay (a worker killed after 4 s on a loaded machine is worth a line); the upkeep's INFO does not.
    assert [line for line in quiet.stderr.splitlines() if " INFO " in line] == []
    (tmp_path / "garbage.warc").write_bytes(b"GET / HTTP/1.1\r\n\r\n" * 50)  # a short run: one failed partition
    verbose = radar("-v", "backfill", str(tmp_path / "garbage.warc"), "--workers", "1", "--all-hosts", env=env)
    assert verbose.returncode == 1 and "FAILED partition" in verbose.stdout
    assert " INFO distributed.scheduler: " in verbose.stderr
