"""Backfill benchmark: records/s with 1 and 2 Dask workers and the speed-up, peak RSS per worker on a large
WARC file built by repeating pages with distinct URLs, and the extraction ratio of bench_ingest.

The workers are started and warmed (model loaded) before the clock starts, so records/s is the work on the
records, not the start-up of a cluster. The store is a temporary SQLite file unless --database-url names one
(e.g. an empty PostgreSQL database). Run with `make bench`, or:

    python -m benchmarks.bench_backfill [--size 1GB] [--records 600] [--rounds 3] [--database-url URL] [--no-extraction]
                                        [--only throughput|memory]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from benchmarks.bench_ingest import demo_like_pages, extraction_ratios, real_pages
from tests.conftest import fresh_database
from pipeline.runs.backfill import BackfillOptions, local_cluster, run_backfill, worker_scorer
from pipeline.settings import load_settings

UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def parse_size(text: str) -> int:
    """Read a size such as 1GB, 200MB or 5000000 (bytes)."""
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[:-len(unit)]) * factor)
    return int(text)


def write_warc(path: Path, pages: list[bytes], *, count: int | None = None, size: int | None = None) -> int:
    """Write pages round-robin as HTTP 200 responses with distinct URLs, until count records or size bytes."""
    records = 0
    with path.open("wb") as stream:
        writer = WARCWriter(stream, gzip=False)
        for i, body in enumerate(itertools.cycle(pages)):
            if (count is not None and i >= count) or (size is not None and stream.tell() >= size):
                break
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(f"https://archief.example/{i}.html", "response",
                                                          payload=io.BytesIO(body), http_headers=headers))
            records += 1
    return records


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def backfill_once(warc: Path, workers: int, data_dir: Path, database_url: str, partition_bytes: int) -> dict:
    """Backfill one file on a warmed LocalCluster of `workers` processes; return records/s and peak RSS per worker."""
    from dask.distributed import Client

    settings = load_settings(None, data_dir=data_dir, database_url=database_url, progress=False)
    with local_cluster(workers) as cluster, Client(cluster) as client:  # the cluster `radar backfill` starts
        client.run(worker_scorer, str(settings.model_dir))  # each worker loads the model once, before the clock
        warm = client.run(_peak_rss_mb)
        options = BackfillOptions(scheduler=cluster.scheduler_address, all_hosts=True, partition_bytes=partition_bytes)
        report = run_backfill(settings, [str(warc)], options)
        peak = client.run(_peak_rss_mb)
    return {"workers": workers, "records": report.records, "seconds": report.seconds,
            "records_per_s": report.records_per_second, "status": report.status,
            "peak_rss_mb_per_worker": sorted(peak.values()), "rss_mb_after_model_load": sorted(warm.values())}


def throughput(folder: Path, records: int, database_url: str, rounds: int = 3, partitions: int = 48) -> dict:
    """Records/s with 1 and 2 workers on the same WARC file of distinct demo-like pages plus the real pages.

    1 and 2 workers take turns for `rounds` rounds, each run on an empty store, and the median round's speed-up
    is the figure: a run is 10-20 s, short enough that another process on the 2 cores moves one run's ratio.
    """
    warc = folder / "throughput.warc"
    write_warc(warc, real_pages() + demo_like_pages(records), count=records)
    # Many record ranges, so both workers stay busy to the end. Cut by bytes, 16 ranges were 7 of two or three
    # real pages and 7 of 70 small ones: the last big one left a worker idle for a tenth of the run (measured).
    parts = max(1, warc.stat().st_size // partitions)
    runs, ratios = [], []
    for turn in range(rounds):
        pair = [backfill_once(warc, n, folder / f"run-{turn}-{n}", _fresh(database_url, n), parts) for n in (1, 2)]
        runs += pair
        ratios.append(round(pair[1]["records_per_s"] / pair[0]["records_per_s"], 2))
    return {"records": records, "rounds": rounds, "runs": runs, "speed_up_per_round": ratios,
            "speed_up_2_vs_1": statistics.median(ratios)}


def memory(folder: Path, size: int, database_url: str) -> dict:
    """Peak RSS per worker while 2 workers backfill one WARC file of `size` bytes (real pages, distinct URLs)."""
    warc = folder / "large.warc"
    count = write_warc(warc, real_pages(), size=size)
    run = backfill_once(warc, 2, folder / "run-large", _fresh(database_url, 3), 64 << 20)
    return {"file_bytes": warc.stat().st_size, "file_records": count, **run}


def _fresh(database_url: str, n: int) -> str:
    # Each run starts on an empty store: a PostgreSQL URL gets a database of its own per run.
    return fresh_database(database_url, f"bench_backfill_{n}") if database_url else ""


def main(argv: list[str] | None = None) -> dict:
    """Run the backfill benchmark and return its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GB", help="size of the large WARC file for the memory figure")
    parser.add_argument("--records", type=int, default=600, help="records of the throughput WARC file")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 1 then 2 workers (the median is reported)")
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database's server URL (default SQLite)")
    parser.add_argument("--no-extraction", action="store_true", help="leave out the extraction ratio")
    parser.add_argument("--only", choices=("throughput", "memory"), help="measure only this part")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="radar-bench-backfill-") as tmp:
        if args.only != "memory":
            result["throughput"] = throughput(Path(tmp), args.records, args.database_url, args.rounds)
        if args.only != "throughput":
            result["memory"] = memory(Path(tmp), parse_size(args.size), args.database_url)
    if not args.no_extraction:
        result["extraction"] = extraction_ratios()
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
