"""A backfill worker's side: one partition of a WARC file through the nightly run's stages, a batch at a time.

`run_partition` is what the driver (pipeline/runs/backfill.py) hands to each Dask worker, with a BackfillJob that
carries everything the worker needs: it streams the partition's records, keeps HTTP 200 HTML responses of the
listed hosts, extracts, checks the language, signs and scores them, and stores each batch with the partition's
checkpoint, so a killed worker or a rerun resumes at the last committed batch. Dedupe across workers goes
through the cluster heads' LSH bands in the store.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import courlan

from pipeline.resources import MODEL_DIR
from pipeline.ingest.dedupe import NearDuplicateIndex, band_keys, decide_duplicate, minhash_of, signature_bytes
from pipeline.errors import ExtractError, ModelMissing, RadarError
from pipeline.ingest.extract import reads_as_dutch
from pipeline.runs.nightly import page_to_article
from pipeline.records import Article
from pipeline.store import Store
from pipeline.ingest.warc import Damage, RecordFilter, WarcPage, iter_records

log = logging.getLogger("pipeline.runs.backfill")  # one logger for the backfill's driver and workers, as before

WORKER_CACHED_STATEMENTS = 16  # prepared statements kept per SQLite connection of a worker (sqlite3's default: 128)


@dataclass(frozen=True)
class BackfillJob:
    """Everything a worker needs, sent with each partition (workers do not read the driver's config)."""

    database_url: str
    model_dir: str
    min_text_chars: int
    max_text_chars: int
    near_threshold: float
    keep: RecordFilter
    outlets: dict[str, str]
    batch_records: int
    run_id: int | None


@dataclass
class PageToStore:
    """One extracted Dutch article of a batch, with its signature, band keys and prediction."""

    article: Article
    minhash: bytes | None
    band_keys: list[int]
    prediction: dict | None = None


@dataclass
class Batch:
    """The records of a partition between two checkpoints and what they gave."""

    partition_id: int
    from_offset: int
    to_offset: int = 0
    done: bool = False
    worker: str = ""
    records: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    pages: list[PageToStore] = field(default_factory=list)
    damaged_at: int | None = None  # the file offset where reading failed inside this batch's range
    damage: str = ""  # why, in one line, and where reading resumed



# -- dedupe across workers: LSH bands in the store ----------------------------------------------------
def duplicate_decider(threshold: float) -> Callable:
    """Return decide(article, exact cluster, candidate heads) -> duplicate link or None, by dedupe.decide_duplicate."""
    def decide(article: Article, exact: int | None, candidates: list[tuple[int, bytes]]):
        # Called under the writers' lock: with no cluster to join the answer is known, so the text is not
        # signed again there (decide_duplicate signs it: a third of a page's time under the lock, measured).
        if exact is None and not candidates:
            return None
        index = NearDuplicateIndex.from_signatures(candidates, threshold)
        return decide_duplicate(article, exact, index).duplicate
    return decide


def fill_missing_bands(store: Store, threshold: float) -> int:
    """Store the band keys of cluster heads stored without them (by the nightly run); return how many."""
    from pipeline.ingest.dedupe import signature_from_bytes

    done = 0
    while rows := store.heads_without_bands():
        store.save_bands({article_id: band_keys(signature_from_bytes(blob), threshold) for article_id, blob in rows})
        done += len(rows)
    return done


# -- the worker side -----------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def worker_store(url: str, max_text_chars: int) -> Store:
    """Return this worker process's store of a database (opened once)."""
    # One engine (connection pool) per worker process and database, reused by every partition it runs.
    # On SQLite the store keeps few prepared statements per connection (see Store's cached_statements).
    return Store(url, max_text_chars=max_text_chars, cached_statements=WORKER_CACHED_STATEMENTS)


@lru_cache(maxsize=2)
def worker_scorer(model_dir: str):
    """Return this worker process's Scorer (loaded once), or None when there is no model yet."""
    # Loaded once per worker process; None (and articles left unscored) when there is no model yet.
    from pipeline.detect.score import Scorer

    try:
        return Scorer.load(Path(model_dir) if model_dir else MODEL_DIR)  # "": the model this worker's package ships
    except ModelMissing as exc:
        log.warning("backfill worker: scoring skipped: %s", exc)
        return None


def worker_name() -> str:
    """Return host:pid of this process, as the checkpoints record it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_partition(job: BackfillJob, partition_id: int) -> dict:
    """Run one partition from its checkpoint to its end (a Dask task); return its counts and whether it scored."""
    store = worker_store(job.database_url, job.max_text_chars)
    scorer = worker_scorer(job.model_dir)
    part = store.backfill_partition(partition_id)
    result = {"partition": partition_id, "records": 0, "scored": scorer is not None, "status": part["status"]}
    if part["status"] == "done":
        return result
    decide = duplicate_decider(job.near_threshold)
    try:
        for batch in partition_batches(job, part):
            score_batch(scorer, batch)
            if store.save_backfill_batch(batch, decide, job.run_id) is None:
                result["status"] = "taken"  # another attempt at this partition stored this batch first
                return result
            result["records"] += batch.records
    except RadarError as exc:
        # Returned, not raised: Dask would print the worker's traceback for what is a message (a foreign file).
        return {**result, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    result["status"] = "done"
    return result


def partition_batches(job: BackfillJob, part: dict) -> Iterator[Batch]:
    """Yield the partition's batches from its checkpoint; the last one is marked done."""
    end = part["end_offset"]
    batch = Batch(part["id"], part["next_offset"], worker=worker_name())
    for offset, page in iter_records(part["file"], part["next_offset"], end, job.keep):
        if isinstance(page, Damage):
            note_damage(batch, page, part["file"])
            if page.resumed_at is not None:  # what was read before the damage is committed, checkpoint after it
                batch.to_offset = page.resumed_at
                yield batch
                batch = Batch(part["id"], page.resumed_at, worker=batch.worker)
            continue
        if batch.records >= job.batch_records:  # this record starts the next batch: its offset is the checkpoint
            batch.to_offset = offset
            yield batch
            batch = Batch(part["id"], offset, worker=batch.worker)
        batch.records += 1
        outcome = prepare_page(job, page)
        if isinstance(outcome, str):
            batch.skipped[outcome] = batch.skipped.get(outcome, 0) + 1
        else:
            batch.pages.append(outcome)
    batch.to_offset, batch.done = end if end is not None else os.path.getsize(part["file"]), True
    yield batch


def note_damage(batch: Batch, damage: Damage, file: str) -> None:
    """Record the damage on the batch that ends at it (stored with its checkpoint), and log it in one line."""
    resumed = (f"resumed at offset {damage.resumed_at}" if damage.resumed_at is not None
               else "no record start after it in this partition")
    batch.damaged_at, batch.damage = damage.offset, f"{damage.reason}; {resumed}"
    log.warning("backfill: %s is damaged at offset %d: %s", file, damage.offset, batch.damage)


def prepare_page(job: BackfillJob, page: WarcPage | str) -> PageToStore | str:
    """Extract, cap, check the language of and sign one kept page; return it, or the reason it is skipped."""
    if isinstance(page, str):
        return page
    try:
        article = page_to_article(page.body, page.url, content_type=page.content_type,
                                  outlet=outlet_of(page.url, job.outlets), min_chars=job.min_text_chars,
                                  max_chars=job.max_text_chars)
    except ExtractError as exc:
        return exc.reason
    if not reads_as_dutch(article):
        return "not_dutch"
    article = replace(article, source="backfill", origin="backfill", provenance=page.record_id,
                      outlet=article.outlet or article.sitename or courlan.extract_domain(page.url) or "")
    sig = minhash_of(article.text)
    keys = band_keys(sig, job.near_threshold) if sig is not None else []
    return PageToStore(article, signature_bytes(sig) if sig is not None else None, keys)


def outlet_of(url: str, outlets: dict[str, str]) -> str:
    """Return the configured outlet of a URL's domain ('' when the feed list does not name it)."""
    return outlets.get(courlan.extract_domain(url) or "", "")


def score_batch(scorer, batch: Batch) -> None:
    """Give each page of the batch its prediction row (Scorer.score_records, as the nightly scoring stage)."""
    if scorer is None or not batch.pages:
        return
    records = [{"id": i, "title": p.article.title, "text": p.article.text} for i, p in enumerate(batch.pages)]
    try:
        results = scorer.score_records(records)
    except Exception as exc:  # noqa: BLE001 - as score_stored_articles: then one by one, so a bad text fails alone
        log.warning("backfill: a batch of %d failed to score (%r); scoring one by one", len(records), exc)
        results = [_score_one(scorer, record) for record in records]
    for page, result in zip(batch.pages, results, strict=True):
        if result is not None:
            page.prediction = {k: v for k, v in result.prediction_row().items() if k != "article_id"}


def _score_one(scorer, record: dict):
    # An article that cannot be scored stays unscored; the nightly scoring stage records its failure.
    try:
        return scorer.score_records([record])[0]
    except Exception as exc:  # noqa: BLE001
        log.error("backfill: an article failed to score and is left for the nightly scoring stage: %r", exc)
        return None
