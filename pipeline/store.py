"""Reads and writes of the radar database (SQLite by default, PostgreSQL by URL); schema in schema.py."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import zlib
from contextlib import contextmanager
from datetime import datetime, UTC
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Integer, and_, bindparam, case, create_engine, delete, event, exists, false, func, insert, literal, or_, select, text, update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, SQLAlchemyError

from pipeline import labels
from pipeline.chars import has_forbidden, xml_safe
from pipeline.errors import StoreError
from pipeline.records import (
    MAX_TEXT_CHARS, Article, ArticleMeta, Cluster, FeedConfig, FeedEntry, FeedItem, FinalLabel, Prediction,
    QueueFilters, QueuePlace, Response, ReviewEvent, StoredArticle, Submission,
)
# The tables are re-exported here: callers use `from pipeline.store import Store, reviews`.
from pipeline.schema import (  # noqa: F401
    CLUSTERS_SINCE, FLAGGED_ARTICLES_SINCE, MIGRATIONS, RENSA_SIGNATURES_SINCE, SCHEMA_VERSION, SEARCH_TABLE, SEARCH_VECTOR,
    add_later_columns, analysts, articles, backfill_partitions, clusters, duplicates, feeds, fetches, form_nonces, items,
    metadata, pages, predictions, reviews, runs, schema_info, scoring_failures, signature_bands, signatures, skips, submissions,
)

if TYPE_CHECKING:
    from pipeline.settings import Settings

R = TypeVar("R")
# Columns stored as JSON text, decoded here and nowhere else; lists become tuples where the record says so.
JSON_COLUMNS = {"categories": tuple, "tags": list, "sector_scores": dict, "type_scores": dict, "evidence": list,
                "previous": dict, "report": dict}
BACKFILL_LOCK_KEY = 0x7261646172  # "radar": the advisory lock every backfill writer takes on PostgreSQL
BATCH = 2000  # ids per IN (...) list and rows per streamed batch: well under every driver's parameter limit

log = logging.getLogger(__name__)


def decoded(row: Mapping) -> dict:
    """Return a database row as a dict with its JSON columns decoded (the one place they are decoded)."""
    out = dict(row)
    for key, kind in JSON_COLUMNS.items():
        if key in out and isinstance(out[key], str):
            value = json.loads(out[key]) if out[key] else kind()
            out[key] = tuple(value) if kind is tuple else value
    return out


def as_record(cls: type[R], row: Mapping) -> R:
    """Return a database row as a typed record, JSON columns decoded and extra columns ignored."""
    values = decoded(row)
    names = cls.__dataclass_fields__
    return cls(**{k: v for k, v in values.items() if k in names})


def _xml_safe_article(article: Article) -> Article:
    # URLs are left as they are: they are the article's identity, and outputs link only what safe_href passes.
    fields = ("title", "text", "outlet", "author", "sitename")
    changed = {name: xml_safe(getattr(article, name)) for name in fields
               if has_forbidden(getattr(article, name) or "")}
    return dataclasses.replace(article, **changed) if changed else article


def _prediction(row: Mapping) -> Prediction:
    return as_record(Prediction, {**row, "flagged": bool(row["flagged"])})


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the review app read while the nightly run writes; busy_timeout rides out short locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def open_store(settings: Settings) -> Store:
    """Open the configured database and migrate it forward (what every command that reads or writes it does)."""
    store = Store(settings.effective_database_url, max_text_chars=settings.max_text_chars)
    try:
        store.migrate()
    except Exception:
        store.close()
        raise
    return store


def create_store_engine(url: str) -> Engine:
    """Create an engine; for SQLite make the folder and switch on WAL."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _open_error(url: str, exc: BaseException) -> StoreError:
    log.debug("cannot open the database", exc_info=True)
    # The driver's own words, without SQLAlchemy's SQL and links, on one line (PostgreSQL's span several).
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        shown = "the configured database_url"
    return StoreError(f"cannot use the database {shown} ({reason}): {_open_advice(reason.lower())}")


def _open_advice(reason: str) -> str:
    # SQLite's and the OS's wording tells a damaged file from a folder we may not write in.
    if any(word in reason for word in ("not a database", "malformed", "corrupt")):
        return "the file is damaged or not a radar database; restore it from a backup, or move it away to start afresh"
    if any(word in reason for word in ("unable to open", "readonly", "read-only", "permission", "not permitted",
                                       "not a directory", "file exists")):
        return "its folder cannot be written; make it writable, or set data_dir (or database_url) elsewhere"
    return "check database_url and that the database server is reachable"


class Store:
    """Reads and writes of the radar database; each public write is one transaction."""

    def __init__(self, url: str, max_text_chars: int = MAX_TEXT_CHARS):
        self.url = url
        try:
            self.engine = create_store_engine(url)
        except (OSError, ImportError, SQLAlchemyError) as exc:  # folder not creatable, bad URL, driver missing
            raise _open_error(url, exc) from exc
        self.max_text_chars = max_text_chars  # every stored text and summary is cut to this (see cap_text)
        self._holds_writers_lock = False  # set while writers_lock() holds the lock for this store's calls

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def schema_version(self) -> int:
        """Return the stored schema version, 0 for an empty database."""
        with self.engine.connect() as conn:
            if not self.engine.dialect.has_table(conn, "schema_info"):
                return 0
            return conn.execute(select(func.max(schema_info.c.version))).scalar() or 0

    def migrate(self) -> int:
        """Bring the schema forward to SCHEMA_VERSION; return the version reached."""
        try:
            return self._migrate()
        except DatabaseError as exc:  # a damaged file, a read-only folder, an unreachable server
            raise _open_error(self.url, exc) from exc

    def _migrate(self) -> int:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.url} has schema version {current}, newer than this code "
                f"({SCHEMA_VERSION}): upgrade cocreatie-radar"
            )
        for version in range(current, SCHEMA_VERSION):
            with self.engine.begin() as conn:
                MIGRATIONS[version](conn)
                if version + 1 in (CLUSTERS_SINCE, FLAGGED_ARTICLES_SINCE):
                    add_later_columns(conn)  # the data steps read and write the tables as this code defines them
                if version + 1 == CLUSTERS_SINCE:
                    self._fill_clusters(conn)  # a database made before the cluster table: derive its rows
                if version + 1 == FLAGGED_ARTICLES_SINCE:
                    # Flagged clusters get their flagged articles counted; settled ones lose the disputed mark
                    # that releases before schema 9 kept on them.
                    settled = select(reviews.c.article_id).where(reviews.c.action == "settle")
                    self._refresh_clusters(conn, conn.execute(select(clusters.c.cluster_id).where(
                        or_(clusters.c.flagged == 1, clusters.c.cluster_id.in_(settled)))).scalars().all())
                if version + 1 == RENSA_SIGNATURES_SINCE:
                    self._resign_articles(conn)
                conn.execute(insert(schema_info).values(version=version + 1))
            log.info("migrated database to schema version %d", version + 1)
        return SCHEMA_VERSION

    # -- runs ---------------------------------------------------------------
    def start_run(self, kind: str = "run") -> int:
        """Record the start of a run and return its id."""
        with self.engine.begin() as conn:
            return conn.execute(insert(runs).values(kind=kind, started_at=now_iso())).inserted_primary_key[0]

    def close_interrupted_runs(self) -> int:
        """Mark runs left 'running' by a killed process as interrupted (call while holding the lock)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(runs).where(runs.c.status == "running").values(status="interrupted", finished_at=now_iso())
            )
        return result.rowcount

    def finish_run(self, run_id: int, status: str, report: dict) -> None:
        """Store a run's outcome and report."""
        with self.engine.begin() as conn:
            conn.execute(
                update(runs).where(runs.c.id == run_id)
                .values(finished_at=now_iso(), status=status, report=json.dumps(report, ensure_ascii=False))
            )

    def recent_runs(self, limit: int = 5) -> list[dict]:
        """Return the latest runs, newest first, with their reports decoded."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings().all()
        return [{**run, "report": run["report"] or None} for run in map(decoded, rows)]

    # -- feeds --------------------------------------------------------------
    def sync_feeds(self, configs: Iterable[FeedConfig]) -> dict[str, int]:
        """Insert or update the configured feeds; return name -> feed id."""
        ids: dict[str, int] = {}
        with self.engine.begin() as conn:
            for cfg in configs:
                values = dict(url=cfg.url, outlet=cfg.outlet, language=cfg.language, tags=json.dumps(list(cfg.tags)))
                row = conn.execute(select(feeds.c.id, feeds.c.url).where(feeds.c.name == cfg.name)).first()
                if row is None:
                    ids[cfg.name] = conn.execute(insert(feeds).values(name=cfg.name, **values)).inserted_primary_key[0]
                    continue
                if row.url != cfg.url:  # a moved feed starts afresh: validators and origin belong to the old URL
                    values.update(etag=None, last_modified=None, private_origin=None)
                conn.execute(update(feeds).where(feeds.c.id == row.id).values(**values))
                ids[cfg.name] = row.id
        return ids

    def feed_validators(self, feed_id: int) -> tuple[str | None, str | None]:
        """Return the stored ETag and Last-Modified of a feed."""
        with self.engine.connect() as conn:
            row = conn.execute(select(feeds.c.etag, feeds.c.last_modified).where(feeds.c.id == feed_id)).one()
        return row.etag, row.last_modified

    def record_feed_result(
        self, feed_id: int, status: str, error: str | None = None,
        etag: str | None = None, last_modified: str | None = None, private_origin: bool | None = None,
    ) -> None:
        """Update a feed's health after a fetch; validators change only on a fresh 200.

        private_origin: whether this fetch connected to a private address (None: it did not answer, and
        what an earlier answer said is kept).
        """
        values: dict[str, Any] = dict(last_status=status, last_error=error, last_fetched_at=now_iso())
        if status == "failed":
            values["consecutive_failures"] = feeds.c.consecutive_failures + 1
        else:
            values["consecutive_failures"] = 0
        if private_origin is not None:
            values["private_origin"] = int(private_origin)
        if status == "ok":
            values.update(etag=etag, last_modified=last_modified)
        with self.engine.begin() as conn:
            conn.execute(update(feeds).where(feeds.c.id == feed_id).values(**values))

    def feed_health(self) -> list[dict]:
        """Return every feed with its last status, failing ones first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(feeds).order_by(feeds.c.consecutive_failures.desc(), feeds.c.name)
            ).mappings().all()
        return [dict(row) for row in rows]

    # -- fetch log ----------------------------------------------------------
    def record_fetch(
        self, run_id: int | None, kind: str, url: str, outcome: str, *, status_code: int | None = None,
        detail: str | None = None, size: int | None = None, duration: float | None = None,
    ) -> None:
        """Append one line to the fetch log."""
        with self.engine.begin() as conn:
            conn.execute(insert(fetches).values(
                run_id=run_id, kind=kind, url=url, outcome=outcome, status_code=status_code, detail=detail,
                bytes=size, duration_ms=int(duration * 1000) if duration is not None else None,
                fetched_at=now_iso(),
            ))

    # -- items --------------------------------------------------------------
    def add_items(self, feed_id: int, entries: Iterable[FeedEntry], run_id: int) -> tuple[int, int]:
        """Queue feed entries not seen before; return (new, already known)."""
        from pipeline.extract import cap_text  # lazy: extraction libraries are heavy to import

        new = known = 0
        with self.engine.begin() as conn:
            for entry in entries:
                exists = conn.execute(select(items.c.id).where(items.c.canonical_url == entry.canonical_url)).first()
                if exists:
                    known += 1
                    continue
                summary, original = cap_text(entry.summary, self.max_text_chars)
                conn.execute(insert(items).values(
                    canonical_url=entry.canonical_url, url=entry.url, feed_id=feed_id, title=entry.title,
                    summary=summary, summary_truncated_from=original, published=entry.published, author=entry.author,
                    categories=json.dumps(list(entry.categories), ensure_ascii=False),
                    first_run_id=run_id, status="pending", updated_at=now_iso(),
                ))
                new += 1
        return new, known

    def due_items(self, max_attempts: int) -> list[FeedItem]:
        """Return items still to fetch: pending, or failed fewer than max_attempts times."""
        query = (
            select(items, feeds.c.outlet, feeds.c.url.label("feed_url"), feeds.c.language,
                   feeds.c.private_origin.label("feed_private"))
            .join(feeds, feeds.c.id == items.c.feed_id, isouter=True)
            .where((items.c.status == "pending") | ((items.c.status == "failed") & (items.c.attempts < max_attempts)))
            .order_by(items.c.id)
        )
        with self.engine.connect() as conn:
            return [as_record(FeedItem, row) for row in conn.execute(query).mappings()]

    def mark_item(self, item_id: int, status: str, error: str | None = None) -> None:
        """Record a failed, gone or skipped item with its reason; count the attempt."""
        with self.engine.begin() as conn:
            conn.execute(update(items).where(items.c.id == item_id).values(
                status=status, last_error=error, attempts=items.c.attempts + 1, updated_at=now_iso(),
            ))

    def item_counts(self) -> dict[str, int]:
        """Return the number of items per status."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(items.c.status, func.count()).group_by(items.c.status)).all()
        return {status: count for status, count in rows}

    # -- articles -----------------------------------------------------------
    def save_article(
        self, article: Article, *, run_id: int | None, item_id: int | None = None,
        response: Response | None = None, duplicate: tuple[int, str, float] | None = None,
        minhash: bytes | None = None,
    ) -> int:
        """Store an article (text capped) with its raw page, duplicate link and signature in one transaction."""
        from pipeline.extract import cap_article  # lazy: extraction libraries are heavy to import

        # Every path that stores an article (run, ingest, submissions, backfill) comes here, so no text outgrows
        # the scorer and none carries a character that would break the pages and feeds it appears in.
        article = _xml_safe_article(cap_article(article, self.max_text_chars))
        with self.engine.begin() as conn:
            if response is not None and item_id is not None:
                conn.execute(insert(pages).values(
                    item_id=item_id, url=response.url, final_url=response.final_url, status_code=response.status,
                    content_type=response.content_type, body_zlib=zlib.compress(response.body, 6),
                    fetched_at=now_iso(),
                ))
            article_id = _insert_article(conn, article, item_id, run_id, duplicate, minhash)
            if item_id is not None:
                conn.execute(update(items).where(items.c.id == item_id).values(
                    status="done", last_error=None, attempts=items.c.attempts + 1, updated_at=now_iso()))
        return article_id

    def find_article(self, *, canonical_url: str | None = None, content_hash: str | None = None,
                     source: str | None = None, external_id: str | None = None) -> int | None:
        """Return the id of the first article matching one of the given keys."""
        clauses = []
        if canonical_url:
            clauses.append(articles.c.canonical_url == canonical_url)
        if content_hash:
            clauses.append(articles.c.content_hash == content_hash)
        if source and external_id:
            clauses.append((articles.c.source == source) & (articles.c.external_id == external_id))
        if not clauses:
            return None
        cond = clauses[0]
        for clause in clauses[1:]:
            cond = cond | clause
        with self.engine.connect() as conn:
            return conn.execute(select(articles.c.id).where(cond).order_by(articles.c.id).limit(1)).scalar()

    def cluster_of_content(self, content_hash: str) -> int | None:
        """Return the cluster of the first stored article with this content hash, or None (dedupe's exact candidate)."""
        same = self.find_article(content_hash=content_hash)
        return self.canonical_of(same) if same is not None else None

    def canonical_of(self, article_id: int) -> int:
        """Return the canonical member of the article's duplicate cluster."""
        with self.engine.connect() as conn:
            return _canonical_of(conn, article_id)

    def content_hash_of(self, article_id: int) -> str | None:
        """Return the content hash of an article's text (None when there is no such article)."""
        with self.engine.connect() as conn:
            return conn.execute(select(articles.c.content_hash).where(articles.c.id == article_id)).scalar()

    def signatures_of_canonicals(self) -> list[tuple[int, bytes]]:
        """Return the MinHash signatures of articles that head their own cluster."""
        query = (
            select(signatures.c.article_id, signatures.c.minhash)
            .where(signatures.c.article_id.not_in(select(duplicates.c.article_id)))
        )
        with self.engine.connect() as conn:
            return [(row.article_id, row.minhash) for row in conn.execute(query)]

    def articles(self) -> list[StoredArticle]:
        """Return all articles with their cluster's canonical id, oldest first."""
        return list(self.iter_articles())

    def iter_articles(self, cluster_ids: Iterable[int] | None = None) -> Iterator[StoredArticle]:
        """Yield the articles oldest first, a batch at a time, so a reader of a million keeps little in memory.

        With cluster_ids, only the articles of those clusters (heads and copies), a batch of clusters at a time.
        """
        if cluster_ids is not None:
            yield from self._iter_cluster_articles(cluster_ids)
            return
        query = (
            select(articles, duplicates.c.canonical_id, duplicates.c.kind.label("duplicate_kind"))
            .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
            .order_by(articles.c.id).limit(BATCH)
        )
        last = 0
        while True:  # keyset batches: each is an indexed range read, no long-lived cursor holds the database
            with self.engine.connect() as conn:
                rows = conn.execute(query.where(articles.c.id > last)).mappings().all()
            if not rows:
                return
            last = rows[-1]["id"]
            yield from (as_record(StoredArticle, row) for row in rows)

    def _iter_cluster_articles(self, cluster_ids: Iterable[int]) -> Iterator[StoredArticle]:
        query = (select(articles, duplicates.c.canonical_id, duplicates.c.kind.label("duplicate_kind"))
                 .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True))
        for chunk in _chunks(sorted(cluster_ids)):
            # Heads by id, copies by their canonical id: two index reads (an OR across the join would scan).
            with self.engine.connect() as conn:
                rows = [*conn.execute(query.where(articles.c.id.in_(chunk))).mappings(),
                        *conn.execute(query.where(duplicates.c.canonical_id.in_(chunk))).mappings()]
            yield from sorted((as_record(StoredArticle, row) for row in rows), key=lambda a: a.id)

    def iter_articles_with_predictions(self, cluster_ids: Iterable[int] | None = None,
                                       ) -> Iterator[tuple[StoredArticle, Prediction | None]]:
        """Yield every article (of the given clusters) with its newest prediction (None when unscored), a batch at a time."""
        batch: list[StoredArticle] = []
        for art in self.iter_articles(cluster_ids):
            batch.append(art)
            if len(batch) == BATCH:
                yield from self._with_predictions(batch)
                batch = []
        yield from self._with_predictions(batch)

    def _with_predictions(self, batch: list[StoredArticle]) -> Iterator[tuple[StoredArticle, Prediction | None]]:
        preds = self.newest_predictions(a.id for a in batch) if batch else {}
        return ((a, preds.get(a.id)) for a in batch)

    def flagged_cluster_ids(self) -> set[int]:
        """Return the ids of the flagged clusters (any copy's newest prediction is flagged)."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(clusters.c.cluster_id).where(clusters.c.flagged == 1)).scalars())

    def unscored_articles(self, model_version: str, limit: int | None = None) -> list[dict]:
        """Return articles that have no prediction from this model version yet and did not fail with it."""
        scored = select(predictions.c.article_id).where(predictions.c.model_version == model_version)
        failed = select(scoring_failures.c.article_id).where(scoring_failures.c.model_version == model_version)
        query = (select(articles.c.id, articles.c.title, articles.c.text)
                 .where(articles.c.id.not_in(scored), articles.c.id.not_in(failed)).order_by(articles.c.id))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def save_predictions(self, rows: list[dict], run_id: int | None) -> None:
        """Store a batch of predictions in one transaction."""
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(predictions), _prediction_rows(rows, run_id))
            touched = {row["article_id"] for row in rows}
            self._refresh_clusters(conn, self._clusters_of(conn, touched))

    def record_scoring_failure(self, article_id: int, model_version: str, reason: str,
                               run_id: int | None = None) -> None:
        """Record that this model version could not score an article, so later runs skip it."""
        with self.engine.begin() as conn:
            conn.execute(insert(scoring_failures).values(
                article_id=article_id, model_version=model_version, run_id=run_id, reason=reason[:2000],
                created_at=now_iso()))

    def scoring_failures(self, model_version: str | None = None) -> list[dict]:
        """Return the recorded scoring failures (of one model version when given), oldest first."""
        query = select(scoring_failures).order_by(scoring_failures.c.id)
        if model_version is not None:
            query = query.where(scoring_failures.c.model_version == model_version)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def latest_predictions(self) -> list[Prediction]:
        """Return each article's newest prediction with its JSON fields decoded."""
        newest = select(func.max(predictions.c.id)).group_by(predictions.c.article_id)
        query = select(predictions).where(predictions.c.id.in_(newest)).order_by(predictions.c.article_id)
        with self.engine.connect() as conn:
            return [_prediction(row) for row in conn.execute(query).mappings()]

    def newest_predictions(self, article_ids: Iterable[int]) -> dict[int, Prediction]:
        """Return the newest prediction of each given article that has one (an indexed read per batch)."""
        with self.engine.connect() as conn:
            return _newest_predictions(conn, article_ids)

    def newest_prediction(self, article_id: int) -> Prediction | None:
        """Return the newest prediction of one article, or None."""
        return self.newest_predictions([article_id]).get(article_id)

    # -- reviews: append-only events; what they mean is decided in labels.py ------------------------------
    def current_reviews(self, article_ids: Iterable[int] | None = None) -> list[ReviewEvent]:
        """Return each analyst's current decision per article (their newest event), undone ones left out."""
        with self.engine.connect() as conn:
            return _current_reviews(conn, article_ids)

    def decisions_by_article(self, article_ids: Iterable[int] | None = None) -> dict[int, dict[str, ReviewEvent]]:
        """Return the analysts' current decisions as article id -> analyst -> event (of the given articles)."""
        result: dict[int, dict[str, ReviewEvent]] = {}
        for review in self.current_reviews(article_ids):
            result.setdefault(review.article_id, {})[review.analyst] = review
        return result

    def settle_events(self) -> list[ReviewEvent]:
        """Return the newest settle event of every settled article."""
        newest = select(func.max(reviews.c.id)).where(reviews.c.action == "settle").group_by(reviews.c.article_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(reviews).where(reviews.c.id.in_(newest))).mappings().all()
        return [as_record(ReviewEvent, row) for row in rows]

    def settled_article_ids(self) -> set[int]:
        """Return the ids of articles that carry a settle event."""
        query = select(reviews.c.article_id).where(reviews.c.action == "settle").distinct()
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def final_labels(self) -> dict[int, FinalLabel]:
        """Return the final label per article with its provenance (see labels.final_label).

        Articles whose analysts disagree and that nobody settled are left out: they are not final.
        """
        return labels.final_labels(self.current_reviews(), self.settle_events())

    def review_history(self, article_ids: Iterable[int]) -> dict[int, list[ReviewEvent]]:
        """Return every review event of the given articles, oldest first, per article."""
        result: dict[int, list[ReviewEvent]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(article_ids):
                query = select(reviews).where(reviews.c.article_id.in_(chunk)).order_by(reviews.c.id)
                for row in conn.execute(query).mappings():
                    result.setdefault(row["article_id"], []).append(as_record(ReviewEvent, row))
        return result

    def latest_settle(self, article_id: int) -> ReviewEvent | None:
        """Return the newest settle event of an article, or None."""
        query = (select(reviews).where(reviews.c.article_id == article_id, reviews.c.action == "settle")
                 .order_by(reviews.c.id.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return as_record(ReviewEvent, row) if row else None

    def append_decision(self, article_id: int, analyst: str, label: dict, *, model_version: str | None,
                        codebook_version: str) -> int:
        """Append a decision event carrying the analyst's previous label; return the event id."""
        with self.engine.begin() as conn:
            previous = _analyst_state(conn, article_id, analyst)
            event_id = _append_review(conn, article_id=article_id, analyst=analyst, action="decide", **label,
                                      previous=previous, model_version=model_version, codebook_version=codebook_version)
            _refresh_dispute(conn, article_id)
        return event_id

    def append_undo(self, analyst: str, codebook_version: str, article_id: int | None = None) -> ReviewEvent | None:
        """Append an undo of the analyst's newest decision not undone yet; return the decision undone, or None."""
        with self.engine.begin() as conn:
            target = _undo_target(conn, analyst, article_id)
            if target is not None:
                _append_undo(conn, analyst, target, codebook_version)
        return target

    def undo_events(self, analyst: str, event_ids: Iterable[int], codebook_version: str) -> list[int]:
        """Append an undo of each given decision of the analyst that is still their newest on its article.

        A bulk decision is undone this way, event by event; a decision the analyst replaced or undid since
        is left alone. Return the article ids whose decision was undone.
        """
        undone = []
        with self.engine.begin() as conn:
            for row in conn.execute(select(reviews.c.id, reviews.c.article_id).where(
                    reviews.c.id.in_(list(event_ids)), reviews.c.analyst == analyst, reviews.c.action == "decide")):
                target = _undo_target(conn, analyst, row.article_id)
                if target is not None and target.id == row.id:
                    _append_undo(conn, analyst, target, codebook_version)
                    undone.append(row.article_id)
        return undone

    def append_settle(self, article_id: int, analyst: str, label: dict, *, model_version: str | None,
                      codebook_version: str) -> int:
        """Append a settle event that fixes the final label of a disputed article; return its id."""
        with self.engine.begin() as conn:
            names = conn.execute(select(reviews.c.analyst).where(
                reviews.c.article_id == article_id, reviews.c.action != "settle").distinct()).scalars().all()
            previous = {name: _analyst_state(conn, article_id, name) for name in names}
            event_id = _append_review(conn, article_id=article_id, analyst=analyst, action="settle", **label,
                                      previous=previous, model_version=model_version, codebook_version=codebook_version)
            _refresh_dispute(conn, article_id)  # a settled article is no longer disputed (issue 11)
        return event_id

    # -- the review queue: paged and filtered in SQL on the cluster table ---------------------------------
    def review_queue(self, analyst: str, filters: QueueFilters, threshold: float, *, limit: int = 50,
                     offset: int = 0) -> list[Cluster]:
        """Return one page of the flagged clusters that pass the filters, in the requested order."""
        where = _queue_where(analyst, filters, self.engine.dialect.name)
        with self.engine.connect() as conn:
            if filters.order == "uncertain":
                ids = _uncertain_ids(conn, where, threshold, limit, offset)
            else:
                query = select(clusters.c.cluster_id).where(*where).order_by(*_QUEUE_ORDER[filters.order])
                ids = list(conn.execute(query.limit(limit).offset(offset)).scalars())
            return _clusters_by_ids(conn, ids)

    def queue_size(self, analyst: str, filters: QueueFilters) -> int:
        """Return how many flagged clusters pass the filters."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(clusters)
                                .where(*_queue_where(analyst, filters, self.engine.dialect.name))).scalar()

    def queue_place(self, analyst: str, filters: QueueFilters, threshold: float, cluster_id: int, *,
                    counted: bool = True) -> QueuePlace:
        """Return a cluster's neighbours and position in the filtered queue (the first entry when it is not in it).

        With counted=False the position is left empty: a decision only needs the next cluster, not two counts.
        """
        where, key = _queue_where(analyst, filters, self.engine.dialect.name), _sort_key(filters.order, threshold)
        count = select(func.count()).select_from(clusters)
        with self.engine.connect() as conn:
            row = conn.execute(select(clusters.c.cluster_id, clusters.c.score, clusters.c.date)
                               .where(clusters.c.cluster_id == cluster_id, *where)).first()
            total = conn.execute(count.where(*where)).scalar() if counted else 0
            if row is None:
                first = _first_id(conn, where, key, ascending=True)
                return QueuePlace(None, first, f"{total} left" if counted else "")
            before = _before(key, row, threshold, filters.order)
            prev_id = _first_id(conn, [*where, before], key, ascending=False)
            next_id = _first_id(conn, [*where, _after(key, row, threshold, filters.order)], key, ascending=True)
            ahead = conn.execute(count.where(*where, before)).scalar() if counted else 0
        return QueuePlace(prev_id, next_id, f"{ahead + 1} of {total}" if counted else "")

    def queue_cluster_ids(self, analyst: str, filters: QueueFilters) -> list[int]:
        """Return the ids of every cluster that passes the queue's filters (an export of the filter selects them)."""
        where = _queue_where(analyst, filters, self.engine.dialect.name)
        with self.engine.connect() as conn:
            return list(conn.execute(select(clusters.c.cluster_id).where(*where).order_by(clusters.c.cluster_id))
                        .scalars())

    def queue_outlets(self) -> list[str]:
        """Return the outlets that carry an article of a flagged cluster, sorted."""
        with self.engine.connect() as conn:
            names = [name for name in conn.execute(_DISTINCT_OUTLETS).scalars() if name is not None]
            return [name for name in names if conn.execute(_flagged_outlet(name)).first() is not None]

    def review_progress(self, analyst: str, today: str) -> dict:
        """Count the analyst's reviewed and remaining flagged clusters, on `today` (ISO date) and overall."""
        newest = (select(reviews.c.article_id, func.max(reviews.c.id).label("last"))
                  .where(reviews.c.analyst == analyst, reviews.c.action != "settle")
                  .group_by(reviews.c.article_id).subquery())
        today_case = func.sum(case((func.substr(reviews.c.created_at, 1, 10) == today, 1), else_=0))
        mine = (select(func.count(), today_case)
                .select_from(newest.join(reviews, reviews.c.id == newest.c.last)
                             .join(clusters, clusters.c.cluster_id == newest.c.article_id))
                .where(reviews.c.cocreation.is_not(None), clusters.c.flagged == 1))
        # From the analyst's few parked rows, not from every flagged cluster.
        parked = (select(func.count()).select_from(skips.join(clusters, clusters.c.cluster_id == skips.c.cluster_id))
                  .where(skips.c.analyst == analyst, clusters.c.flagged == 1, ~_has_decision(analyst)))
        with self.engine.connect() as conn:
            flagged, flagged_articles = _flagged_counts(conn)
            reviewed, reviewed_today = conn.execute(mine).one()
            skipped = conn.execute(parked).scalar()
        return {"flagged": flagged, "flagged_articles": flagged_articles, "reviewed": reviewed,
                "remaining": flagged - reviewed, "skipped": skipped, "reviewed_today": reviewed_today or 0}

    def flagged_counts(self, run_id: int | None = None) -> tuple[int, int]:
        """Return (stories, articles) flagged: in the queue now, or by the predictions of one run.

        A story is a near-duplicate cluster; it is flagged when one of its articles is (labels.py).
        """
        with self.engine.connect() as conn:
            if run_id is None:
                return _flagged_counts(conn)
            story = func.coalesce(duplicates.c.canonical_id, predictions.c.article_id)
            query = (select(func.count(func.distinct(story)), func.count(func.distinct(predictions.c.article_id)))
                     .select_from(predictions.join(duplicates, duplicates.c.article_id == predictions.c.article_id,
                                                   isouter=True))
                     .where(predictions.c.run_id == run_id, predictions.c.flagged == 1))
            stories, flagged_articles = conn.execute(query).one()
            return stories, flagged_articles

    # -- "skip for now": parked clusters, per analyst; not decisions, so no review events -----------------
    def skip_cluster(self, analyst: str, cluster_id: int) -> bool:
        """Park a cluster for the analyst (out of their "to do" queue); return False when it was parked already."""
        with self.engine.begin() as conn:
            if conn.execute(select(skips.c.id).where(skips.c.analyst == analyst,
                                                     skips.c.cluster_id == cluster_id)).first():
                return False
            conn.execute(insert(skips).values(analyst=analyst, cluster_id=cluster_id, created_at=now_iso()))
        return True

    def unskip_cluster(self, analyst: str, cluster_id: int) -> bool:
        """Return a parked cluster to the analyst's "to do" queue; return False when it was not parked."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(skips).where(skips.c.analyst == analyst, skips.c.cluster_id == cluster_id))
        return result.rowcount > 0

    def skipped_cluster_ids(self, analyst: str, cluster_ids: Iterable[int]) -> set[int]:
        """Return which of the given clusters the analyst parked."""
        with self.engine.connect() as conn:
            return {i for chunk in _chunks(cluster_ids) for i in conn.execute(
                select(skips.c.cluster_id).where(skips.c.analyst == analyst, skips.c.cluster_id.in_(chunk))).scalars()}

    def article_texts(self, article_ids: Iterable[int]) -> dict[int, str]:
        """Return the texts of the given articles (a queue page's few, for their snippets)."""
        with self.engine.connect() as conn:
            return {row.id: row.text for chunk in _chunks(article_ids)
                    for row in conn.execute(select(articles.c.id, articles.c.text).where(articles.c.id.in_(chunk)))}

    def cluster_of(self, article_id: int) -> Cluster | None:
        """Return the duplicate cluster an article belongs to, with its members and prediction, or None."""
        with self.engine.connect() as conn:
            found = _clusters_by_ids(conn, [_canonical_of(conn, article_id)])
        return found[0] if found else None

    def article(self, article_id: int) -> StoredArticle | None:
        """Return one article with its text and cluster link, or None."""
        query = (select(articles, duplicates.c.canonical_id, duplicates.c.kind.label("duplicate_kind"))
                 .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
                 .where(articles.c.id == article_id))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return as_record(StoredArticle, row) if row else None

    def article_titles(self, article_ids: Iterable[int]) -> dict[int, str]:
        """Return the titles of the given articles."""
        with self.engine.connect() as conn:
            return {row.id: row.title for chunk in _chunks(article_ids)
                    for row in conn.execute(select(articles.c.id, articles.c.title).where(articles.c.id.in_(chunk)))}

    def rebuild_clusters(self) -> int:
        """Recompute every cluster row from the stored articles, predictions and reviews; return the count.

        For a bulk load that wrote the tables directly; the normal writers keep the rows up to date.
        """
        with self.engine.begin() as conn:
            conn.execute(delete(clusters))
            count = self._fill_clusters(conn)
            _mark_submitted(conn, _submitted_clusters(conn))
            return count

    def _fill_clusters(self, conn: Connection) -> int:
        heads = (select(articles.c.id).join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
                 .where(duplicates.c.article_id.is_(None)))
        count, last = 0, 0
        while True:
            ids = list(conn.execute(heads.where(articles.c.id > last).order_by(articles.c.id).limit(BATCH)).scalars())
            if not ids:
                return count
            rows = _cluster_rows(conn, ids)
            conn.execute(insert(clusters), rows)
            count, last = count + len(rows), ids[-1]

    def _resign_articles(self, conn: Connection) -> int:
        # Signatures of another algorithm never match new ones: every near-duplicate would be missed after
        # the upgrade. The stored text is the capped text that dedupe signed (nightly and backfill cap first).
        from pipeline.dedupe import minhash_of, signature_bytes  # lazy: as cap_article, heavy to import

        count, last = 0, 0
        signed = select(signatures.c.article_id, articles.c.text).join(articles, articles.c.id == signatures.c.article_id)
        resign = update(signatures).where(signatures.c.article_id == bindparam("aid")).values(minhash=bindparam("sig"))
        while rows := conn.execute(signed.where(signatures.c.article_id > last)
                                   .order_by(signatures.c.article_id).limit(BATCH)).all():
            new = {article_id: minhash_of(text) for article_id, text in rows}
            if signed_now := [{"aid": a, "sig": signature_bytes(sig)} for a, sig in new.items() if sig is not None]:
                conn.execute(resign, signed_now)
            if too_short := [a for a, sig in new.items() if sig is None]:  # as a new article of that text would be
                conn.execute(signatures.delete().where(signatures.c.article_id.in_(too_short)))
            count, last = count + len(rows), rows[-1][0]
        return count

    def _clusters_of(self, conn: Connection, article_ids: Iterable[int]) -> set[int]:
        result: set[int] = set()
        for chunk in _chunks(article_ids):
            canonical = dict(conn.execute(select(duplicates.c.article_id, duplicates.c.canonical_id)
                                          .where(duplicates.c.article_id.in_(chunk))).all())
            result |= {canonical.get(a, a) for a in chunk}
        return result

    def _refresh_clusters(self, conn: Connection, cluster_ids: Iterable[int]) -> None:
        for chunk in _chunks(cluster_ids):
            rows = _cluster_rows(conn, chunk)
            # The reader's mark is not derived from articles and predictions: it survives the rebuild of the row.
            kept = set(conn.execute(select(clusters.c.cluster_id).where(clusters.c.cluster_id.in_(chunk),
                                                                         clusters.c.submitted == 1)).scalars())
            conn.execute(delete(clusters).where(clusters.c.cluster_id.in_(chunk)))
            if rows:
                conn.execute(insert(clusters), [{**row, "submitted": int(row["cluster_id"] in kept)} for row in rows])

    # -- analysts (own access tokens for a served review app) --------------
    def add_analyst(self, name: str, token_hash: str, *, is_lead: bool = False) -> None:
        """Register an analyst with the hash of their token; refuse a name that exists (even disabled)."""
        with self.engine.begin() as conn:
            if conn.execute(select(analysts.c.id).where(analysts.c.name == name)).first():
                raise StoreError(f"analyst {name!r} exists already: give them a new token with "
                                 f"`radar analysts rotate {name}`, or choose another name")
            conn.execute(insert(analysts).values(name=name, token_hash=token_hash, is_lead=int(is_lead),
                                                 created_at=now_iso(), disabled=0))

    def replace_analyst_token(self, name: str, token_hash: str) -> bool:
        """Give an analyst a new token hash and enable them again; return False when there is no such analyst."""
        with self.engine.begin() as conn:
            result = conn.execute(update(analysts).where(analysts.c.name == name)
                                  .values(token_hash=token_hash, disabled=0))
        return result.rowcount > 0

    def disable_analyst(self, name: str) -> bool:
        """Disable an analyst so their token stops working; return False when there is no such analyst."""
        with self.engine.begin() as conn:
            result = conn.execute(update(analysts).where(analysts.c.name == name).values(disabled=1))
        return result.rowcount > 0

    def analyst_by_token_hash(self, token_hash: str) -> dict | None:
        """Return the enabled analyst whose token has this hash, or None."""
        query = select(analysts).where(analysts.c.token_hash == token_hash, analysts.c.disabled == 0)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def list_analysts(self) -> list[dict]:
        """Return every registered analyst (disabled ones too) by name, without token hashes."""
        query = select(analysts.c.name, analysts.c.is_lead, analysts.c.created_at, analysts.c.disabled)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query.order_by(analysts.c.name)).mappings()]

    def has_analysts(self) -> bool:
        """Tell whether any analyst was ever registered (disabled ones count: the app stays locked)."""
        with self.engine.connect() as conn:
            return conn.execute(select(analysts.c.id).limit(1)).first() is not None

    def raw_page(self, item_id: int) -> bytes | None:
        """Return the latest raw page bytes stored for an item."""
        with self.engine.connect() as conn:
            blob = conn.execute(
                select(pages.c.body_zlib).where(pages.c.item_id == item_id).order_by(pages.c.id.desc()).limit(1)
            ).scalar()
        return zlib.decompress(blob) if blob is not None else None

    def counts(self) -> dict[str, int]:
        """Return row counts of the main tables."""
        with self.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                    for t in (feeds, items, articles, duplicates, predictions, runs)}

    # -- settle and agreement (issue 11) --
    def analyst_progress(self, today: str) -> list[dict]:
        """Count per analyst the flagged stories decided, decided on `today` (ISO date) and still disputed.

        Every enabled registered analyst is listed, also with nothing decided yet; flagged is the same for all.
        """
        newest = (select(reviews.c.analyst, func.max(reviews.c.id).label("last"))
                  .where(reviews.c.action != "settle").group_by(reviews.c.article_id, reviews.c.analyst).subquery())
        decided_today = func.sum(case((func.substr(reviews.c.created_at, 1, 10) == today, 1), else_=0))
        query = (select(newest.c.analyst, func.count(), decided_today, func.sum(clusters.c.disputed))
                 .select_from(newest.join(reviews, reviews.c.id == newest.c.last)
                              .join(clusters, clusters.c.cluster_id == reviews.c.article_id))
                 .where(reviews.c.cocreation.is_not(None), clusters.c.flagged == 1).group_by(newest.c.analyst))
        with self.engine.connect() as conn:
            flagged = conn.execute(select(func.count()).select_from(clusters).where(clusters.c.flagged == 1)).scalar()
            counts = {row[0]: row[1:] for row in conn.execute(query)}
            registered = conn.execute(select(analysts.c.name).where(analysts.c.disabled == 0)).scalars().all()
        rows = {name: counts.get(name, (0, 0, 0)) for name in sorted(set(counts) | set(registered))}
        return [{"analyst": name, "flagged": flagged, "decided": decided, "decided_today": int(today_n or 0),
                 "disputed": int(disputed or 0)} for name, (decided, today_n, disputed) in rows.items()]

    # -- submissions and the public collection (issue 12) --
    def add_submission(self, url: str, note: str, name: str = "", email: str = "", ip_hash: str = "") -> int:
        """Queue a reader's submission for the next run; return its id."""
        with self.engine.begin() as conn:
            return conn.execute(insert(submissions).values(
                url=url, note=note, name=name, email=email, ip_hash=ip_hash, created_at=now_iso(), status="queued",
                reason="", attempts=0)).inserted_primary_key[0]

    def use_form_nonce(self, nonce: str, expires_at: str) -> bool:
        """Record a public form's nonce as used; False when it was used before (the form is being replayed).

        Nonces are kept until `expires_at` (ISO time), when the signed form would be refused as stale anyway;
        older ones are removed here, so the table holds at most a day of posts.
        """
        with self.engine.begin() as conn:
            conn.execute(delete(form_nonces).where(form_nonces.c.expires_at < now_iso()))
        try:
            with self.engine.begin() as conn:  # its own transaction: a refused insert leaves nothing half done
                conn.execute(insert(form_nonces).values(nonce=nonce, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def count_submissions_since(self, since: str, ip_hash: str | None = None) -> int:
        """Count the submissions made at or after `since` (ISO time), from one address hash when given."""
        query = select(func.count()).select_from(submissions).where(submissions.c.created_at >= since)
        if ip_hash is not None:
            query = query.where(submissions.c.ip_hash == ip_hash)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def due_submissions(self, max_attempts: int) -> list[Submission]:
        """Return the submissions still to fetch: queued, or failed fewer than max_attempts times; oldest first."""
        s = submissions.c
        query = select(submissions).where(or_(s.status == "queued", and_(s.status == "failed",
                                                                         s.attempts < max_attempts)))
        with self.engine.connect() as conn:
            return [as_record(Submission, row) for row in conn.execute(query.order_by(s.id)).mappings()]

    def finish_submission(self, submission_id: int, status: str, reason: str = "",
                          article_id: int | None = None) -> None:
        """Record a submission's outcome; one with an article marks that article's cluster as submitted."""
        with self.engine.begin() as conn:
            conn.execute(update(submissions).where(submissions.c.id == submission_id).values(
                status=status, reason=reason[:2000], article_id=article_id, attempts=submissions.c.attempts + 1,
                processed_at=now_iso()))
            if article_id is not None:
                _mark_submitted(conn, {_canonical_of(conn, article_id)})

    def submission(self, submission_id: int) -> Submission | None:
        """Return one submission, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(submissions).where(submissions.c.id == submission_id)).mappings().first()
        return as_record(Submission, row) if row else None

    def list_submissions(self, status: str | None = None) -> list[Submission]:
        """Return every submission (of one status when given), newest first."""
        query = select(submissions).order_by(submissions.c.id.desc())
        if status is not None:
            query = query.where(submissions.c.status == status)
        with self.engine.connect() as conn:
            return [as_record(Submission, row) for row in conn.execute(query).mappings()]

    def delete_submission(self, submission_id: int) -> bool:
        """Delete a submission (a request to be forgotten); its cluster keeps the mark only if others remain."""
        with self.engine.begin() as conn:
            article_id = conn.execute(select(submissions.c.article_id)
                                      .where(submissions.c.id == submission_id)).first()
            if article_id is None:
                return False
            conn.execute(delete(submissions).where(submissions.c.id == submission_id))
            if article_id[0] is not None:
                cluster_id = _canonical_of(conn, article_id[0])
                conn.execute(update(clusters).where(clusters.c.cluster_id == cluster_id)
                             .values(submitted=int(cluster_id in _submitted_clusters(conn, [cluster_id]))))
        return True

    def purge_submission_personal(self, before: str) -> int:
        """Blank name, e-mail and address hash of submissions made before `before` (ISO time); return how many."""
        s = submissions.c
        personal = or_(s.name != "", s.email != "", s.ip_hash != "")
        with self.engine.begin() as conn:
            result = conn.execute(update(submissions).where(s.created_at < before, personal)
                                  .values(name="", email="", ip_hash=""))
        return result.rowcount

    def submissions_of_clusters(self, cluster_ids: Iterable[int] | None) -> dict[int, list[Submission]]:
        """Return the submissions that joined or made an article of each given cluster (of all: None), oldest first."""
        head = func.coalesce(duplicates.c.canonical_id, submissions.c.article_id).label("cluster_id")
        result: dict[int, list[Submission]] = {}
        with self.engine.connect() as conn:
            for chunk in [None] if cluster_ids is None else _chunks(cluster_ids):
                query = (select(submissions, head)
                         .join(duplicates, duplicates.c.article_id == submissions.c.article_id, isouter=True)
                         .where(head.is_not(None) if chunk is None else head.in_(chunk)).order_by(submissions.c.id))
                for row in conn.execute(query).mappings():
                    result.setdefault(row["cluster_id"], []).append(as_record(Submission, row))
        return result

    def submission_item(self, url: str, canonical_url: str, title: str) -> int:
        """Return the item a fetched submission's raw page is kept under, making one (done, no feed) if needed.

        Through the item a feed that later lists the same link sees it as known, and the page can be
        re-extracted from its raw bytes like any feed article.
        """
        with self.engine.begin() as conn:
            found = conn.execute(select(items.c.id).where(items.c.canonical_url == canonical_url)).scalar()
            if found is not None:
                return found
            return conn.execute(insert(items).values(
                canonical_url=canonical_url, url=url, feed_id=None, title=title, summary="", published=None,
                author="", categories="[]", status="done", updated_at=now_iso())).inserted_primary_key[0]

    def collection_version(self) -> tuple[int, int, int, int]:
        """Return the newest review, prediction, article and duplicate ids: the public pages change only with these."""
        with self.engine.connect() as conn:
            return tuple(conn.execute(select(func.max(t.c.id)) if t is not duplicates else
                                      select(func.count()).select_from(t)).scalar() or 0
                         for t in (reviews, predictions, articles, duplicates))

    def is_submitted_cluster(self, cluster_id: int) -> bool:
        """Tell whether a reader submitted an article of this cluster."""
        query = select(clusters.c.submitted).where(clusters.c.cluster_id == cluster_id)
        with self.engine.connect() as conn:
            return bool(conn.execute(query).scalar())

    # -- backfill (issue 13) --
    def plan_partitions(self, file: str, ranges: Iterable[tuple[int, int | None]]) -> int:
        """Record the partitions of a WARC file that are not recorded yet; return how many were added."""
        added = 0
        with self.engine.begin() as conn:
            known = set(conn.execute(select(backfill_partitions.c.start_offset)
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
            known = set(conn.execute(select(signature_bands.c.article_id).distinct()
                                     .where(signature_bands.c.article_id.in_(list(bands)))).scalars())
            rows = [{"band_key": k, "article_id": a} for a, keys in bands.items() if a not in known
                    for k in sorted(set(keys))]
            if rows:
                conn.execute(insert(signature_bands), rows)
            conn.commit()

    def _scalars(self, query) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())


def _submitted_clusters(conn: Connection, cluster_ids: list[int] | None = None) -> set[int]:
    # The clusters that hold an article a submission made or joined (of the given clusters, when given).
    head = func.coalesce(duplicates.c.canonical_id, submissions.c.article_id)
    query = (select(head).select_from(submissions)
             .join(duplicates, duplicates.c.article_id == submissions.c.article_id, isouter=True)
             .where(submissions.c.article_id.is_not(None)))
    if cluster_ids is not None:
        query = query.where(head.in_(cluster_ids))
    return set(conn.execute(query.distinct()).scalars())


def _mark_submitted(conn: Connection, cluster_ids: set[int]) -> None:
    for chunk in _chunks(cluster_ids):
        conn.execute(update(clusters).where(clusters.c.cluster_id.in_(chunk)).values(submitted=1))


def _article_row(article: Article, item_id: int | None, run_id: int | None) -> dict:
    return dict(
        item_id=item_id, source=article.source, external_id=article.external_id, url=article.url or None,
        canonical_url=article.canonical_url or None, outlet=article.outlet, title=article.title,
        author=article.author, published=article.date, sitename=article.sitename,
        categories=json.dumps(list(article.categories), ensure_ascii=False), language=article.language,
        text=article.text, text_truncated_from=article.truncated_from, content_hash=article.content_hash,
        method=article.method, run_id=run_id, created_at=now_iso(),
        origin=article.origin or ("feed" if article.source == "feed" else "ingest"), provenance=article.provenance,
    )


def _insert_article(conn: Connection, article: Article, item_id: int | None, run_id: int | None,
                    duplicate: tuple[int, str, float] | None, minhash: bytes | None) -> int:
    # The rows of one stored article: itself, its duplicate link or its cluster row, its signature.
    row = _article_row(article, item_id, run_id)
    article_id = conn.execute(insert(articles).values(**row)).inserted_primary_key[0]
    if duplicate is not None:
        canonical_id, kind, similarity = duplicate
        conn.execute(insert(duplicates).values(
            article_id=article_id, canonical_id=canonical_id, kind=kind, similarity=similarity))
    else:  # a new cluster head: its queue row, unflagged until a prediction says otherwise
        conn.execute(insert(clusters).values(cluster_id=article_id, flagged=0, score=0.0,
                                             date=row["published"] or row["created_at"], disputed=0))
    if minhash is not None:
        conn.execute(insert(signatures).values(article_id=article_id, minhash=minhash))
    return article_id


def _prediction_rows(rows: list[dict], run_id: int | None) -> list[dict]:
    now = now_iso()
    return [{**row, "run_id": run_id, "created_at": now, "flagged": int(row["flagged"]),
             "sector_scores": json.dumps(row["sector_scores"]), "type_scores": json.dumps(row["type_scores"]),
             "evidence": json.dumps(row["evidence"], ensure_ascii=False)} for row in rows]


def decoded_json(value: str | None) -> dict:
    """Return a JSON object column as a dict (empty when unset)."""
    return json.loads(value) if value else {}


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


def _chunks(ids: Iterable[int], size: int = BATCH) -> Iterator[list[int]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]


def _canonical_of(conn: Connection, article_id: int) -> int:
    found = conn.execute(select(duplicates.c.canonical_id).where(duplicates.c.article_id == article_id)).scalar()
    return found or article_id


def _newest_of(article_ids: list[int]):
    return (select(func.max(predictions.c.id)).where(predictions.c.article_id.in_(article_ids))
            .group_by(predictions.c.article_id))


def _newest_predictions(conn: Connection, article_ids: Iterable[int]) -> dict[int, Prediction]:
    result = {}
    for chunk in _chunks(article_ids):
        for row in conn.execute(select(predictions).where(predictions.c.id.in_(_newest_of(chunk)))).mappings():
            result[row["article_id"]] = _prediction(row)
    return result


def _newest_scores(conn: Connection, article_ids: list[int]) -> dict[int, Any]:
    # The few columns a cluster row needs; decoding every prediction's evidence would dominate a rebuild.
    p = predictions.c
    query = select(p.id, p.article_id, p.flagged, p.cocreation_score, p.sector, p.type).where(
        p.id.in_(_newest_of(article_ids)))
    return {row.article_id: row for row in conn.execute(query)}


def _current_reviews(conn: Connection, article_ids: Iterable[int] | None = None) -> list[ReviewEvent]:
    def query(chunk: list[int] | None):
        newest = select(func.max(reviews.c.id)).where(reviews.c.action != "settle")
        if chunk is not None:
            newest = newest.where(reviews.c.article_id.in_(chunk))
        newest = newest.group_by(reviews.c.article_id, reviews.c.analyst)
        return (select(reviews).where(reviews.c.id.in_(newest), reviews.c.cocreation.is_not(None))
                .order_by(reviews.c.article_id, reviews.c.id))

    chunks = [None] if article_ids is None else _chunks(article_ids)
    return [as_record(ReviewEvent, row) for chunk in chunks for row in conn.execute(query(chunk)).mappings()]


STATE_FIELDS = ("cocreation", "sector", "type", "borderline", "note", "lesson", "private")


def _analyst_state(conn: Connection, article_id: int, analyst: str) -> dict:
    # The analyst's current label of an article as stored in `previous` (empty when not reviewed).
    row = conn.execute(
        select(reviews).where(reviews.c.article_id == article_id, reviews.c.analyst == analyst,
                              reviews.c.action != "settle")
        .order_by(reviews.c.id.desc()).limit(1)
    ).mappings().first()
    if row is None or row["cocreation"] is None:
        return {}
    return {"event_id": row["id"], **{k: row[k] for k in STATE_FIELDS}}


def _append_review(conn: Connection, *, previous: dict, **values: Any) -> int:
    # Notes and lessons reach the digest and the public pages: no character XML or HTML forbids.
    cleaned = {key: xml_safe(values[key]) for key in ("note", "lesson") if isinstance(values.get(key), str)}
    row = {**values, **cleaned, "previous": json.dumps(previous, ensure_ascii=False), "created_at": now_iso()}
    return conn.execute(insert(reviews).values(**row)).inserted_primary_key[0]


def _undo_target(conn: Connection, analyst: str, article_id: int | None) -> ReviewEvent | None:
    # Undo works as a stack: each undo takes back the newest decision that no undo has taken back yet.
    undone = select(reviews.c.undoes_id).where(reviews.c.analyst == analyst, reviews.c.undoes_id.is_not(None))
    query = select(reviews).where(reviews.c.analyst == analyst, reviews.c.action == "decide",
                                  reviews.c.id.not_in(undone))
    if article_id is not None:
        query = query.where(reviews.c.article_id == article_id)
    row = conn.execute(query.order_by(reviews.c.id.desc()).limit(1)).mappings().first()
    return as_record(ReviewEvent, row) if row else None


def _append_undo(conn: Connection, analyst: str, target: ReviewEvent, codebook_version: str) -> None:
    # The undo event restores the state the undone decision replaced, and says which decision it undoes.
    restored = target.previous
    _append_review(
        conn, article_id=target.article_id, analyst=analyst, action="undo",
        cocreation=restored.get("cocreation"), sector=restored.get("sector"), type=restored.get("type"),
        borderline=int(restored.get("borderline") or 0), note=restored.get("note") or "",
        lesson=restored.get("lesson") or "", private=int(restored.get("private") or 0),
        previous=_analyst_state(conn, target.article_id, analyst), undoes_id=target.id,
        model_version=target.model_version, codebook_version=codebook_version)
    _refresh_dispute(conn, target.article_id)


def _refresh_dispute(conn: Connection, article_id: int) -> None:
    decisions = {e.analyst: e for e in _current_reviews(conn, [article_id])}
    settled = article_id in _settled_among(conn, [article_id])
    conn.execute(update(clusters).where(clusters.c.cluster_id == article_id)
                 .values(disputed=int(labels.is_disputed(decisions, settled))))


def _settled_among(conn: Connection, article_ids: list[int]) -> set[int]:
    # The given articles that carry a settle event: their final label is fixed, so they are not disputed.
    query = select(reviews.c.article_id).where(reviews.c.action == "settle", reviews.c.article_id.in_(article_ids))
    return set(conn.execute(query.distinct()).scalars()) if article_ids else set()


def _cluster_rows(conn: Connection, ids: list[int]) -> list[dict]:
    # The queue row of each cluster headed by one of `ids`, derived with the rules of labels.py.
    heads = conn.execute(
        select(articles.c.id, articles.c.published, articles.c.created_at)
        .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
        .where(articles.c.id.in_(ids), duplicates.c.article_id.is_(None))).all()
    members: dict[int, list[int]] = {head.id: [] for head in heads}
    for article_id, canonical_id in conn.execute(select(duplicates.c.article_id, duplicates.c.canonical_id)
                                                 .where(duplicates.c.canonical_id.in_(ids))):
        members.setdefault(canonical_id, []).append(article_id)
    scores = _newest_scores(conn, [*members, *(m for ms in members.values() for m in ms)])
    decisions: dict[int, dict[str, ReviewEvent]] = {}
    for review in _current_reviews(conn, list(members)):
        decisions.setdefault(review.article_id, {})[review.analyst] = review
    settled = _settled_among(conn, list(members))
    return [_cluster_row(head, sorted(members[head.id]), scores, decisions.get(head.id, {}), head.id in settled)
            for head in heads]


def _cluster_row(head: Any, copies: list[int], scores: dict[int, Any], decisions: dict, settled: bool = False) -> dict:
    scored = [scores[a] for a in [head.id, *copies] if a in scores]
    shown = scores.get(head.id) or next((scores[a] for a in copies if a in scores), None)
    return dict(cluster_id=head.id, flagged=int(labels.cluster_flagged(bool(p.flagged) for p in scored)),
                score=max([0.0, *(p.cocreation_score for p in scored)]), prediction_id=shown.id if shown else None,
                sector=shown.sector if shown else None, type=shown.type if shown else None,
                date=head.published or head.created_at or "",
                disputed=int(labels.is_disputed(decisions, settled)),
                flagged_articles=sum(bool(p.flagged) for p in scored))


META_COLUMNS = (articles.c.id, articles.c.url, articles.c.outlet, articles.c.title, articles.c.published,
                articles.c.created_at)


def _clusters_by_ids(conn: Connection, ids: list[int]) -> list[Cluster]:
    # The page's clusters in the given order, each with its head, copies and shown prediction.
    if not ids:
        return []
    rows = {r["cluster_id"]: r for r in conn.execute(select(clusters).where(clusters.c.cluster_id.in_(ids))).mappings()}
    missing = [i for i in ids if i not in rows]  # an article written past the store (an old tool, a test)
    rows.update({r["cluster_id"]: r for r in _cluster_rows(conn, missing)} if missing else {})
    heads = {r["id"]: as_record(ArticleMeta, r)
             for r in conn.execute(select(*META_COLUMNS).where(articles.c.id.in_(ids))).mappings()}
    members: dict[int, list[ArticleMeta]] = {}
    query = (select(*META_COLUMNS, duplicates.c.canonical_id).join(duplicates, duplicates.c.article_id == articles.c.id)
             .where(duplicates.c.canonical_id.in_(ids)).order_by(articles.c.id))
    for r in conn.execute(query).mappings():
        members.setdefault(r["canonical_id"], []).append(as_record(ArticleMeta, r))
    shown = [r["prediction_id"] for r in rows.values() if r["prediction_id"]]
    preds = {r["id"]: _prediction(r)
             for r in conn.execute(select(predictions).where(predictions.c.id.in_(shown))).mappings()} if shown else {}
    return [Cluster(i, heads[i], members.get(i, []), preds.get(rows[i]["prediction_id"]), bool(rows[i]["flagged"]),
                    rows[i]["score"]) for i in ids if i in rows and i in heads]


def _has_decision(analyst: str):
    # The analyst has a current decision on the cluster: a non-settle event of theirs with a label that no
    # later non-settle event of theirs replaced. Written as EXISTS so PostgreSQL can hash-join it.
    mine, newer = reviews.alias("mine"), reviews.alias("newer")
    replaced = exists().where(newer.c.article_id == mine.c.article_id, newer.c.analyst == mine.c.analyst,
                              newer.c.action != "settle", newer.c.id > mine.c.id)
    return exists().where(mine.c.article_id == clusters.c.cluster_id, mine.c.analyst == analyst,
                          mine.c.action != "settle", mine.c.cocreation.is_not(None), ~replaced)


def _has_outlet(outlet: str):
    copy = articles.alias("copy")
    return or_(exists().where(articles.c.id == clusters.c.cluster_id, articles.c.outlet == outlet),
               exists().where(duplicates.c.canonical_id == clusters.c.cluster_id, copy.c.id == duplicates.c.article_id,
                              copy.c.outlet == outlet))


def _is_skipped(analyst: str):
    return exists().where(skips.c.cluster_id == clusters.c.cluster_id, skips.c.analyst == analyst)


MAX_SEARCH_WORDS = 12  # more words than this narrow nothing further and only lengthen the query


def search_words(search: str) -> list[str]:
    """Return the words of a typed search: letters and digits only, so no input is query syntax."""
    return re.findall(r"[^\W_]+", search)[:MAX_SEARCH_WORDS]


def _search_matches(dialect: str, words: list[str]):
    # The clusters with an article (head or copy) whose title or text holds every word, each as a prefix
    # ("zorg" finds "zorgpad": Dutch compounds). PostgreSQL also stems the words the Dutch way.
    if dialect == "postgresql":
        query = " & ".join(f"{w}:*" for w in words)
        sql = (f"SELECT COALESCE(d.canonical_id, a.id) AS cluster_id FROM articles a LEFT JOIN duplicates d "
               f"ON d.article_id = a.id WHERE {SEARCH_VECTOR} @@ to_tsquery('dutch', :search_query)")
    else:
        query = " ".join(f'"{w}"*' for w in words)
        sql = (f"SELECT COALESCE(d.canonical_id, f.rowid) AS cluster_id FROM {SEARCH_TABLE} f LEFT JOIN duplicates d "
               f"ON d.article_id = f.rowid WHERE {SEARCH_TABLE} MATCH :search_query")
    return text(sql).bindparams(search_query=query).columns(cluster_id=Integer)


def _queue_where(analyst: str, f: QueueFilters, dialect: str = "sqlite") -> list:
    c = clusters.c
    where = [or_(c.flagged == 1, c.submitted == 1)]  # a reader's submission is queued whatever its score
    if f.origin == "submission":
        where.append(c.submitted == 1)
    if f.search:
        words = search_words(f.search)
        where.append(c.cluster_id.in_(_search_matches(dialect, words)) if words else false())
    if f.sector:
        where.append(c.sector == f.sector)
    if f.type:
        where.append(c.type == f.type)
    if f.outlet:
        where.append(_has_outlet(f.outlet))
    if f.date_from:
        where += [c.date != "", func.substr(c.date, 1, 10) >= f.date_from]
    if f.date_to:
        where += [c.date != "", func.substr(c.date, 1, 10) <= f.date_to]
    if f.status == "todo":
        where += [~_has_decision(analyst), ~_is_skipped(analyst)]
    elif f.status == "skipped":
        where += [_is_skipped(analyst), ~_has_decision(analyst)]
    elif f.status == "mine":
        where.append(_has_decision(analyst))
    elif f.status == "disputed":
        where.append(c.disputed == 1)
    return where


_QUEUE_ORDER = {"score": (clusters.c.score.desc(), clusters.c.cluster_id.desc()),
                "newest": (clusters.c.date.desc(), clusters.c.cluster_id.desc())}


def _uncertain_ids(conn: Connection, where: list, threshold: float, limit: int, offset: int) -> list[int]:
    # "Most uncertain" is closest to the threshold: the nearest above and the nearest below, each an index
    # range read, merged; the first offset + limit of both hold the page.
    c, wanted = clusters.c, offset + limit
    above = conn.execute(select(c.cluster_id, c.score).where(*where, c.score >= threshold)
                         .order_by(c.score, c.cluster_id).limit(wanted)).all()
    below = conn.execute(select(c.cluster_id, c.score).where(*where, c.score < threshold)
                         .order_by(c.score.desc(), c.cluster_id).limit(wanted)).all()
    merged = sorted([*above, *below], key=lambda r: (abs(r.score - threshold), r.cluster_id))
    return [r.cluster_id for r in merged[offset:wanted]]


def _sort_key(order: str, threshold: float) -> tuple[Any, bool]:
    # (expression, descending) of the queue order; the cluster id breaks ties in the same direction.
    if order == "uncertain":
        return func.abs(clusters.c.score - threshold), False
    return (clusters.c.date, True) if order == "newest" else (clusters.c.score, True)


def _key_value(order: str, row: Any, threshold: float) -> Any:
    if order == "uncertain":
        return abs(row.score - threshold)
    return row.date if order == "newest" else row.score


def _before(key: tuple[Any, bool], row: Any, threshold: float, order: str):
    expr, descending = key
    value, cid = _key_value(order, row, threshold), clusters.c.cluster_id
    if descending:  # written as a range plus a tie-break so the index serves it
        return and_(expr >= value, or_(expr > value, cid > row.cluster_id))
    return and_(expr <= value, or_(expr < value, cid < row.cluster_id))


def _after(key: tuple[Any, bool], row: Any, threshold: float, order: str):
    expr, descending = key
    value, cid = _key_value(order, row, threshold), clusters.c.cluster_id
    if descending:
        return and_(expr <= value, or_(expr < value, cid < row.cluster_id))
    return and_(expr >= value, or_(expr > value, cid > row.cluster_id))


def _first_id(conn: Connection, where: list, key: tuple[Any, bool], *, ascending: bool) -> int | None:
    # The first cluster in queue order (ascending) or the last (not ascending) among those matching `where`.
    expr, descending = key
    forward = descending != ascending
    order = (expr.asc(), clusters.c.cluster_id.asc()) if forward else (expr.desc(), clusters.c.cluster_id.desc())
    return conn.execute(select(clusters.c.cluster_id).where(*where).order_by(*order).limit(1)).scalar()


def _flagged_counts(conn: Connection) -> tuple[int, int]:
    # Stories (flagged clusters) and their articles with a flagged newest prediction: one indexed range read.
    query = (select(func.count(), func.coalesce(func.sum(clusters.c.flagged_articles), 0))
             .where(clusters.c.flagged == 1))
    stories, flagged_articles = conn.execute(query).one()
    return stories, int(flagged_articles)


# The distinct outlets by a loose index scan (one index probe per outlet), on SQLite and PostgreSQL alike.
_DISTINCT_OUTLETS = text(
    "WITH RECURSIVE o(name) AS (SELECT MIN(outlet) FROM articles UNION ALL "
    "SELECT (SELECT MIN(a.outlet) FROM articles a WHERE a.outlet > o.name) FROM o WHERE o.name IS NOT NULL) "
    "SELECT name FROM o"
)


def _flagged_outlet(outlet: str):
    # Whether any article of this outlet belongs to a flagged cluster.
    head = func.coalesce(duplicates.c.canonical_id, articles.c.id)
    return (select(literal(1)).select_from(articles.join(duplicates, duplicates.c.article_id == articles.c.id,
                                                         isouter=True).join(clusters, clusters.c.cluster_id == head))
            .where(articles.c.outlet == outlet, clusters.c.flagged == 1).limit(1))
