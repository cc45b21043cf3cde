"""Backfill partitions and batches, the writers' lock and the LSH band keys of cluster heads."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exists, insert, select, text, update
from sqlalchemy.engine import Connection

from pipeline.errors import StoreError
from pipeline.store.article import _insert_article, _prediction_rows
from pipeline.store.base import StorePart, BATCH, _chunks, decoded_json, now_iso
from pipeline.store.cluster import _canonical_of
from pipeline.store.schema import articles, backfill_partitions, duplicates, predictions, signature_bands, signatures

BACKFILL_LOCK_KEY = 0x7261646172  # "radar": the advisory lock every backfill writer takes on PostgreSQL


class BackfillStore(StorePart):
    """Checkpointed WARC partitions, their batches, the writers' lock and the heads' band keys."""

    # -- backfill (issue 13) --
    def plan_partitions(self, file: str, ranges: Iterable[tuple[int, int | None]]) -> int:
        """Record the partitions of a WARC file that are not recorded yet; return how many were added."""
        added = 0
        with self.engine.begin() as conn:
            known: set[int] = set(conn.execute(select(backfill_partitions.c.start_offset)
                                     .where(backfill_partitions.c.file == file)).scalars())
            for start, end in ranges:
                if start not in known:
                    conn.execute(insert(backfill_partitions).values(
                        file=file, start_offset=start, end_offset=end, next_offset=start, status="pending",
                        records=0, stored=0, duplicates=0, skipped="{}", worker="", updated_at=now_iso()))
                    added += 1
        return added

    def planned_files(self, files: Iterable[str]) -> set[str]:
        """Return which of these files have partitions recorded already (a rerun does not index them again)."""
        found: set[str] = set()
        for chunk in _chunks(files):
            found |= set(self._scalars(
                select(backfill_partitions.c.file).where(backfill_partitions.c.file.in_(chunk)).distinct()))
        return found

    def partitions_of(self, files: Iterable[str]) -> list[dict]:
        """Return the partitions of these files (all statuses), in file and offset order."""
        rows: list[dict] = []
        for chunk in _chunks(files):
            query = (select(backfill_partitions).where(backfill_partitions.c.file.in_(chunk))
                     .order_by(backfill_partitions.c.file, backfill_partitions.c.start_offset))
            with self.engine.connect() as conn:
                rows += [_partition_row(r) for r in conn.execute(query).mappings()]
        return rows

    def backfill_partition(self, partition_id: int) -> dict:
        """Return one partition's checkpoint row; StoreError when there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(backfill_partitions).where(backfill_partitions.c.id == partition_id)).mappings().first()
        if row is None:
            raise StoreError(f"backfill partition {partition_id} is not in {self.url}; run `radar backfill` again")
        return _partition_row(row)

    def save_backfill_batch(self, batch: Any, decide: Callable, run_id: int | None = None) -> dict[str, int] | None:
        """Store one batch of a partition and move its checkpoint, in one transaction under the writers' lock.

        `batch` has partition_id, from_offset, to_offset, done, worker, records, skipped (reason -> count),
        pages (article, minhash, band_keys, prediction) and damaged_at, damage (the file's damage that ends the
        batch, None and '' without). `decide(article, exact_cluster, candidates)` returns
        the duplicate link or None. Returns the batch's counts, or None when the checkpoint had moved on
        (another attempt at this partition stored the batch first): nothing is written then.
        """
        with self.engine.connect() as conn:
            self._lock_writers(conn)
            row = conn.execute(select(backfill_partitions).where(backfill_partitions.c.id == batch.partition_id)
                               ).mappings().first()
            if row is None or row["status"] == "done" or row["next_offset"] != batch.from_offset:
                conn.rollback()
                return None
            counts, touched = dict(batch.skipped), []
            for page in batch.pages:
                outcome, article_id = self._store_backfill_page(conn, page, decide, run_id)
                counts[outcome] = counts.get(outcome, 0) + 1
                touched += [article_id] if article_id else []
            self._refresh_clusters(conn, self._clusters_of(conn, touched))
            self._move_checkpoint(conn, row, batch, counts)
            conn.commit()
        return counts

    @contextmanager
    def writers_lock(self) -> Iterator[bool]:
        """Hold the backfill writers' lock around a dedupe-and-save made of several calls; yield whether it is held.

        On PostgreSQL a session advisory lock on a connection of its own (the backfill's key), so the nightly
        run's read-decide-write of an article never interleaves with a backfill worker's batch. On SQLite
        nothing is taken (yields False): the nightly run stays as it was there.
        """
        if self.engine.dialect.name != "postgresql" or self._holds_writers_lock:
            yield self._holds_writers_lock
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": BACKFILL_LOCK_KEY})
            conn.commit()
            self._holds_writers_lock = True
            try:
                yield True
            finally:
                self._holds_writers_lock = False
                # A dead connection has lost its lock already; a live one must not go back to the pool holding it.
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": BACKFILL_LOCK_KEY})
                conn.commit()

    def heads_after(self, article_id: int) -> list[tuple[int, bytes, bool]]:
        """Return (id, signature, has band keys) of the cluster heads stored after an article id, oldest first."""
        banded = exists().where(signature_bands.c.article_id == signatures.c.article_id)
        joined = exists().where(duplicates.c.article_id == signatures.c.article_id)
        query = (select(signatures.c.article_id, signatures.c.minhash, banded.label("banded"))
                 .where(signatures.c.article_id > article_id, ~joined).order_by(signatures.c.article_id))
        with self.engine.connect() as conn:
            return [(r.article_id, r.minhash, bool(r.banded)) for r in conn.execute(query)]

    def _lock_writers(self, conn: Connection) -> None:
        # Dedupe reads the heads, then writes: two writers doing that at once would both see no head and both
        # start a cluster. Near-duplicates are a similarity, which no unique constraint can express, so the
        # decide-and-write step is serialised by the database itself: a transaction-scoped advisory lock on
        # PostgreSQL (released at commit or when a killed worker's connection drops), the write lock on SQLite.
        # Inside writers_lock() this process holds the lock already, on another connection (waiting would deadlock).
        if self.engine.dialect.name == "postgresql" and not self._holds_writers_lock:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BACKFILL_LOCK_KEY})
        elif self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def _store_backfill_page(self, conn: Connection, page: Any, decide: Callable,
                             run_id: int | None) -> tuple[str, int | None]:
        # One page of a batch: skipped when its URL or WARC record is stored already, else stored in its cluster.
        article = page.article
        if conn.execute(select(articles.c.id).where(articles.c.canonical_url == article.canonical_url)).first():
            return "duplicate_url", None
        if conn.execute(select(articles.c.id).where(articles.c.origin == "backfill",
                                                    articles.c.provenance == article.provenance)).first():
            return "already_stored", None
        same = conn.execute(select(articles.c.id).where(articles.c.content_hash == article.content_hash)
                            .order_by(articles.c.id).limit(1)).scalar()
        exact = _canonical_of(conn, same) if same is not None else None
        candidates = _band_candidates(conn, page.band_keys) if exact is None and page.band_keys else []
        duplicate = decide(article, exact, candidates)
        article_id = _insert_article(conn, article, None, run_id, duplicate, page.minhash)
        if duplicate is None and page.band_keys:
            conn.execute(insert(signature_bands), [{"band_key": k, "article_id": article_id}
                                                   for k in sorted(set(page.band_keys))])
        if page.prediction is not None:
            conn.execute(insert(predictions), _prediction_rows([{**page.prediction, "article_id": article_id}], run_id))
        return ("new" if duplicate is None else "duplicate"), article_id

    def _move_checkpoint(self, conn: Connection, row: Mapping, batch: Any, counts: dict[str, int]) -> None:
        stored = counts.get("new", 0) + counts.get("duplicate", 0)
        skipped = decoded_json(row["skipped"])
        for reason, n in counts.items():
            if reason not in ("new", "duplicate"):
                skipped[reason] = skipped.get(reason, 0) + n
        conn.execute(update(backfill_partitions).where(backfill_partitions.c.id == row["id"]).values(
            next_offset=batch.to_offset, status="done" if batch.done else "pending",
            records=row["records"] + batch.records, stored=row["stored"] + stored,
            duplicates=row["duplicates"] + counts.get("duplicate", 0), skipped=json.dumps(skipped, sort_keys=True),
            worker=batch.worker, updated_at=now_iso(), **_first_damage(row, batch)))

    def heads_without_bands(self, limit: int = BATCH) -> list[tuple[int, bytes]]:
        """Return (id, signature) of cluster heads whose LSH bands are not stored yet (stored by another path)."""
        banded = select(signature_bands.c.article_id)
        query = (select(signatures.c.article_id, signatures.c.minhash)
                 .where(signatures.c.article_id.not_in(select(duplicates.c.article_id)),
                        signatures.c.article_id.not_in(banded)).order_by(signatures.c.article_id).limit(limit))
        with self.engine.connect() as conn:
            return [(r.article_id, r.minhash) for r in conn.execute(query)]

    def save_bands(self, bands: dict[int, list[int]]) -> None:
        """Store the LSH band keys of cluster heads (article id -> keys), under the writers' lock."""
        with self.engine.connect() as conn:
            self._lock_writers(conn)
            known: set[int] = set(conn.execute(select(signature_bands.c.article_id).distinct()
                                     .where(signature_bands.c.article_id.in_(list(bands)))).scalars())
            rows = [{"band_key": k, "article_id": a} for a, keys in bands.items() if a not in known
                    for k in sorted(set(keys))]
            if rows:
                conn.execute(insert(signature_bands), rows)
            conn.commit()

    def _scalars(self, query) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())


def _partition_row(row: Mapping) -> dict:
    return {**row, "skipped": decoded_json(row["skipped"])}


def _first_damage(row: Mapping, batch: Any) -> dict:
    # A partition keeps the first place its file was damaged (where reading first failed); a later damage in
    # the same partition is in the worker's log. A batch without damage fields (duck-typed) has no damage.
    damaged_at = getattr(batch, "damaged_at", None)
    if damaged_at is None or row["damaged_at"] is not None:
        return {}
    return {"damaged_at": damaged_at, "damage": batch.damage}


def _band_candidates(conn: Connection, keys: list[int]) -> list[tuple[int, bytes]]:
    # The heads sharing at least one LSH band with a new article, with their signatures: the same
    # candidates MinHashLSH.query gives, read from an index instead of a worker's memory.
    ids = select(signature_bands.c.article_id).where(signature_bands.c.band_key.in_(sorted(set(keys))))
    query = (select(signatures.c.article_id, signatures.c.minhash).where(signatures.c.article_id.in_(ids))
             .order_by(signatures.c.article_id))
    return [(r.article_id, r.minhash) for r in conn.execute(query)]
