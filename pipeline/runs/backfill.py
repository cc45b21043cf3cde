"""Archive backfill: WARC files through the nightly run's stages on a Dask cluster, into the shared store.

The driver (`run_backfill`) cuts the files into partitions (a file, or a range of record offsets of a
large file), records them in the store as checkpoints and hands them to Dask workers: a LocalCluster
by default, or a real cluster by scheduler address. A worker (`run_partition`) streams its records,
keeps HTTP 200 HTML responses of the listed hosts, runs the nightly stage functions (extraction and
cap, Dutch check, MinHash dedupe, NLP and classification) and writes a batch at a time: the batch's
articles, predictions and the partition's next offset in one transaction, so a killed worker or a
rerun resumes at the last committed batch and never stores a record twice.

A damaged file (garbage bytes, a cut record) does not fail its partition: the batch read before the damage
is stored with the damage's offset and reason, reading resumes at the next record after it, and the run's
summary lists every damaged partition. The damage is final: a rerun reads the same bytes, so it skips it.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import courlan
from tqdm import tqdm

from pipeline.errors import ConfigError, RadarError
from pipeline.ingest.feeds import load_feed_list
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from pipeline.resources import MODEL_DIR
from pipeline.runs.partition import (  # noqa: F401 (the worker's names, re-exported for callers of this module)
    Batch, BackfillJob, PageToStore, duplicate_decider, fill_missing_bands, prepare_page, run_partition, worker_scorer,
    worker_store,
)
from pipeline.ingest.warc import RecordFilter, record_ranges

log = logging.getLogger(__name__)

PARTITION_BYTES = 64 * 1024 * 1024  # a larger file is cut into record ranges of about this size
BATCH_RECORDS = 50  # records per stored batch (one transaction, one checkpoint)
# Dask's statistical profiler samples each worker thread's stack every 10 ms and keeps an hour of call trees
# per worker (Worker.profile_history). Measured: a backfill worker's memory grew with its run time, so with
# the size of the file, by those trees alone, and the sampling costs CPU beside the work. The backfill has no
# use for it, so its workers run without it.
# The rest is the local cluster's own upkeep, which on a machine with a core per worker takes CPU from the
# workers: every event loop ticks each 20 ms, every process samples its CPU and memory each 0.5 s (for the
# dashboard), each nanny reads its worker's memory each 0.1 s, and the scheduler looks for work to steal each
# 0.1 s, when its queue already hands a partition to whichever worker is free. Measured with 2 workers on
# 2 cores: the driver process (scheduler, nannies, client) spent 1.0 s of CPU per 10 s run with Dask's
# defaults, 0.4 s with these, and records/s rose from about 60 to about 70.
CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "2s",
    "distributed.scheduler.work-stealing": False,
}


@dataclass(frozen=True)
class BackfillOptions:
    """What `radar backfill` was asked to do, beyond the settings."""

    scheduler: str = ""  # tcp://HOST:PORT of a running Dask scheduler; empty: a LocalCluster
    workers: int = 2  # LocalCluster worker processes
    since: date | None = None
    until: date | None = None
    hosts_file: Path | None = None
    all_hosts: bool = False
    partition_bytes: int = PARTITION_BYTES
    batch_records: int = BATCH_RECORDS


@dataclass
class BackfillReport:
    """What a backfill run did (this run) and where the files stand (all runs)."""

    run_id: int
    files: int = 0
    partitions: int = 0
    partitions_run: int = 0
    failed: list[str] = field(default_factory=list)
    damaged: list[dict] = field(default_factory=list)  # file, offset, reason of every damaged partition (all runs)
    records: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    scoring: str = ""
    seconds: float = 0.0
    status: str = "running"

    @property
    def records_per_second(self) -> float:
        """Return this run's records read per second."""
        return round(self.records / self.seconds, 1) if self.seconds else 0.0


# -- the driver side -----------------------------------------------------------------------------------
def expand_paths(patterns: list[str]) -> list[str]:
    """Return the absolute paths of the WARC files the arguments name (paths or globs), sorted, each once."""
    found: set[str] = set()
    for pattern in patterns:
        matches = glob.glob(os.path.expanduser(pattern), recursive=True) or []
        files = [m for m in matches if os.path.isfile(m)]
        if not files:
            raise ConfigError(f"no WARC file matches {pattern!r}; give paths or a quoted glob such as 'crawl/*.warc.gz'")
        found |= {os.path.abspath(m) for m in files}
    return sorted(found)


def read_hosts_file(path: Path) -> frozenset[str]:
    """Read one host or domain per line (# starts a comment); www. is ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the hosts file {path} ({exc}); give a UTF-8 file with one host a line") from exc
    hosts = {line.split("#")[0].strip().lower().removeprefix("www.") for line in lines}
    return frozenset(h for h in hosts if h)


def feed_outlets(settings: Settings) -> dict[str, str]:
    """Return domain -> outlet of the feeds in the feed list."""
    outlets: dict[str, str] = {}
    for cfg in load_feed_list(settings.feeds_file):
        domain = courlan.extract_domain(cfg.url)
        if domain:
            outlets.setdefault(domain, cfg.outlet)
    return outlets


def make_job(settings: Settings, options: BackfillOptions, run_id: int | None) -> BackfillJob:
    """Build the workers' job from the settings and options (hosts: a file, the feed list's, or all)."""
    outlets = feed_outlets(settings) if settings.feeds_file.exists() else {}
    if options.all_hosts:
        hosts = None
    elif options.hosts_file is not None:
        hosts = read_hosts_file(options.hosts_file)
    else:
        hosts = frozenset(outlets)
    keep = RecordFilter(hosts=hosts, since=options.since, until=options.until, max_bytes=settings.max_bytes)
    # The shipped model travels as "": each worker loads the one installed with its own package, wherever its
    # site-packages is; a model_dir set by the user is an absolute path every worker must see.
    model_dir = "" if settings.model_dir.resolve() == MODEL_DIR.resolve() else str(settings.model_dir.resolve())
    return BackfillJob(database_url=settings.effective_database_url, model_dir=model_dir,
                       min_text_chars=settings.min_text_chars, max_text_chars=settings.max_text_chars,
                       near_threshold=settings.near_duplicate_threshold, keep=keep, outlets=outlets,
                       batch_records=options.batch_records, run_id=run_id)


def plan_files(store: Store, files: list[str], partition_bytes: int) -> None:
    """Record the partitions of every file not planned before (a rerun keeps the first plan and its checkpoints)."""
    planned = store.planned_files(files)
    for path in files:
        if path not in planned:
            store.plan_partitions(path, record_ranges(path, partition_bytes))


@contextmanager
def dask_client(options: BackfillOptions):
    """Yield a Dask client: of the scheduler at options.scheduler, else of a LocalCluster of worker processes."""
    from dask.distributed import Client

    follow_pipeline_log_level()
    if options.scheduler:
        try:
            client = Client(options.scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler {options.scheduler} ({exc}); start it with "
                              "`dask scheduler`, or leave --scheduler out for a local cluster") from exc
        with client:
            yield client
        return
    with local_cluster(options.workers) as cluster, Client(cluster) as client:
        yield client


@contextmanager
def local_cluster(workers: int):
    """Yield a LocalCluster of `workers` single-threaded worker processes, without Dask's profiler."""
    import dask
    from dask.distributed import LocalCluster

    # One thread per process: extraction and scoring hold the GIL. The config reaches the workers at spawn.
    # silence_logs: the worker processes' own log handlers show what the pipeline's level shows (WARNING unless -v).
    with dask.config.set(CLUSTER_CONFIG), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                      dashboard_address=":0",
                                                      silence_logs=follow_pipeline_log_level()) as cluster:
        yield cluster


def follow_pipeline_log_level() -> int:
    """Set Dask's `distributed` loggers to the level the pipeline logs at (WARNING unless `radar -v`); return it."""
    # Importing distributed sets its logger to INFO (its `logging` config); with the CLI's root handler in place,
    # those lines (scheduler at, nanny started, client removed: about fifteen per run) reach stderr on every
    # backfill. They are the cluster's upkeep, worth reading only when asked for with -v or -vv.
    import distributed  # noqa: F401  (its import configures its loggers; this call must come after)

    level = logging.getLogger("pipeline").getEffectiveLevel()
    logging.getLogger("distributed").setLevel(level)
    return level


def run_backfill(settings: Settings, patterns: list[str], options: BackfillOptions) -> BackfillReport:
    """Backfill the WARC files: plan, run every unfinished partition on Dask, and report."""
    files = expand_paths(patterns)
    if settings.effective_database_url.startswith("sqlite") and (options.scheduler or options.workers > 1):
        log.info("backfill on SQLite: workers take turns writing (one writer at a time)")
    store = open_store(settings)
    try:
        fill_missing_bands(store, settings.near_duplicate_threshold)
        report = BackfillReport(run_id=store.start_run("backfill"), files=len(files))
        try:
            _run(store, settings, files, options, report)
        except RadarError:
            store.finish_run(report.run_id, "failed", report_dict(report))
            raise
        store.finish_run(report.run_id, report.status, report_dict(report))
        return report
    finally:
        store.close()


def _run(store: Store, settings: Settings, files: list[str], options: BackfillOptions, report: BackfillReport) -> None:
    started = time.monotonic()
    plan_files(store, files, options.partition_bytes)
    before = totals(store.partitions_of(files))
    pending = [p["id"] for p in largest_first(p for p in store.partitions_of(files) if p["status"] != "done")]
    report.partitions, report.partitions_run = len(store.partitions_of(files)), len(pending)
    job = make_job(settings, options, report.run_id)
    scored = run_on_dask(job, pending, options, report, show=settings.progress and sys.stderr.isatty())
    after = totals(store.partitions_of(files))
    report.records, report.stored, report.duplicates = (after[k] - before[k] for k in ("records", "stored", "duplicates"))
    report.skipped = {r: n - before["skipped"].get(r, 0) for r, n in after["skipped"].items()
                      if n - before["skipped"].get(r, 0)}
    if pending and not report.failed:
        report.scoring = "scored" if scored else f"skipped: no model in {job.model_dir or MODEL_DIR}; `radar run` scores them"
    report.damaged = damaged_partitions(store.partitions_of(files))
    report.seconds = round(time.monotonic() - started, 3)
    # Damage is the file's, reported and final (a rerun reads the same bytes); the run did its job around it.
    report.status = "failed" if report.failed else "ok"
    log.info("backfill: %d partitions run, %d records in, %d stored (%d duplicates), skipped %s, %d failed, "
             "%d damaged", report.partitions_run, report.records, report.stored, report.duplicates, report.skipped,
             len(report.failed), len(report.damaged))


def damaged_partitions(partitions: list[dict]) -> list[dict]:
    """Return file, offset and reason of the damaged partitions, in file and offset order."""
    return [{"file": p["file"], "offset": p["damaged_at"], "reason": p["damage"]}
            for p in partitions if p.get("damaged_at") is not None]


def largest_first(partitions: Iterable[dict]) -> list[dict]:
    """Order partitions by the bytes they have left to read, largest first."""
    # Largest first, so the last tasks are the short ones (a file's remainder) and no worker idles long at
    # the end while another finishes a big one.
    def left(part: dict) -> int:
        end = part["end_offset"] if part["end_offset"] is not None else os.path.getsize(part["file"])
        return end - part["next_offset"]
    return sorted(partitions, key=lambda part: (-left(part), part["id"]))


def run_on_dask(job: BackfillJob, partition_ids: list[int], options: BackfillOptions, report: BackfillReport,
                show: bool = False) -> bool:
    """Run the partitions on Dask, in the given order, with a records/s progress bar; return whether they scored."""
    from dask.distributed import as_completed

    if not partition_ids:
        return False
    scored = False
    with dask_client(options) as client, tqdm(desc="backfill", unit="rec", disable=not show) as bar:
        shared = client.scatter(job, broadcast=True)  # sent to each worker once, not with every partition
        # One priority each: Dask runs independent tasks in an order of its own otherwise (their keys').
        futures = [client.submit(run_partition, shared, pid, priority=len(partition_ids) - i, pure=False)
                   for i, pid in enumerate(partition_ids)]
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a partition's failure is reported; a rerun resumes it
                log.error("backfill partition failed: %r", exc)
                report.failed.append(f"{type(exc).__name__}: {exc}")
                continue
            if result.get("error"):
                log.error("backfill partition %d failed: %s", result["partition"], result["error"])
                report.failed.append(result["error"])
                continue
            scored = scored or result["scored"]
            bar.update(result["records"])
    return scored


def totals(partitions: list[dict]) -> dict:
    """Sum the checkpoint counts of partitions: records, stored, duplicates and skipped by reason."""
    skipped: dict[str, int] = {}
    for part in partitions:
        for reason, n in part["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + n
    return {"records": sum(p["records"] for p in partitions), "stored": sum(p["stored"] for p in partitions),
            "duplicates": sum(p["duplicates"] for p in partitions), "skipped": skipped,
            "done": sum(p["status"] == "done" for p in partitions)}


def report_dict(report: BackfillReport) -> dict:
    """Return the report as JSON-ready data (stored in the runs table)."""
    from dataclasses import asdict

    return {**asdict(report), "records_per_second": report.records_per_second}


def summarise(report: BackfillReport) -> str:
    """Return a short human summary of a backfill run."""
    lines = [f"Backfill run {report.run_id}: {report.status.upper()}",
             f"Files: {report.files}, partitions: {report.partitions} ({report.partitions_run} run now)",
             f"Records: {report.records} read ({report.records_per_second}/s), {report.stored} articles stored "
             f"({report.stored - report.duplicates} new clusters, {report.duplicates} duplicates)"]
    lines += [f"  skipped {reason}: {n}" for reason, n in sorted(report.skipped.items())]
    lines += [f"  FAILED partition: {reason}" for reason in report.failed]
    lines += [f"  DAMAGED {d['file']} at offset {d['offset']}: {d['reason']}" for d in report.damaged]
    if report.damaged:
        lines.append("  the records before and after the damage are stored; damage is final: a rerun skips it")
    if report.failed:
        lines.append("  run `radar backfill` again with the same files: it resumes at the last checkpoint")
    if report.scoring:
        lines.append(f"Scoring: {report.scoring}")
    return "\n".join(lines)
