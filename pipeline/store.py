"""Reads and writes of the radar database (SQLite by default, PostgreSQL by URL); schema in schema.py."""

from __future__ import annotations

import json
import logging
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import create_engine, event, func, insert, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, SQLAlchemyError

from pipeline.errors import StoreError
from pipeline.records import MAX_TEXT_CHARS, Article, FeedConfig, FeedEntry, Response
# The tables are re-exported here: callers use `from pipeline.store import Store, reviews`.
from pipeline.schema import (  # noqa: F401
    MIGRATIONS, SCHEMA_VERSION, analysts, articles, duplicates, feeds, fetches, items, metadata, pages, predictions, reviews,
    runs, schema_info, scoring_failures, signatures,
)

log = logging.getLogger(__name__)


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the review app read while the nightly run writes; busy_timeout rides out short locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


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
        return [{**row, "report": json.loads(row["report"]) if row["report"] else None} for row in rows]

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
                if row.url != cfg.url:  # a moved feed starts afresh: old validators belong to the old URL
                    values.update(etag=None, last_modified=None)
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
        etag: str | None = None, last_modified: str | None = None,
    ) -> None:
        """Update a feed's health after a fetch; validators change only on a fresh 200."""
        values: dict[str, Any] = dict(last_status=status, last_error=error, last_fetched_at=now_iso())
        if status == "failed":
            values["consecutive_failures"] = feeds.c.consecutive_failures + 1
        else:
            values["consecutive_failures"] = 0
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

    def due_items(self, max_attempts: int) -> list[dict]:
        """Return items still to fetch: pending, or failed fewer than max_attempts times."""
        query = (
            select(items, feeds.c.outlet, feeds.c.url.label("feed_url"), feeds.c.language)
            .join(feeds, feeds.c.id == items.c.feed_id, isouter=True)
            .where((items.c.status == "pending") | ((items.c.status == "failed") & (items.c.attempts < max_attempts)))
            .order_by(items.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

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

        # Every path that stores an article (run, ingest) comes here, so no text outgrows the scorer.
        article = cap_article(article, self.max_text_chars)
        with self.engine.begin() as conn:
            if response is not None and item_id is not None:
                conn.execute(insert(pages).values(
                    item_id=item_id, url=response.url, final_url=response.final_url, status_code=response.status,
                    content_type=response.content_type, body_zlib=zlib.compress(response.body, 6),
                    fetched_at=now_iso(),
                ))
            article_id = conn.execute(insert(articles).values(**_article_row(article, item_id, run_id))).inserted_primary_key[0]
            if duplicate is not None:
                canonical_id, kind, similarity = duplicate
                conn.execute(insert(duplicates).values(
                    article_id=article_id, canonical_id=canonical_id, kind=kind, similarity=similarity))
            if minhash is not None:
                conn.execute(insert(signatures).values(article_id=article_id, minhash=minhash))
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

    def canonical_of(self, article_id: int) -> int:
        """Return the canonical member of the article's duplicate cluster."""
        with self.engine.connect() as conn:
            found = conn.execute(select(duplicates.c.canonical_id).where(duplicates.c.article_id == article_id)).scalar()
        return found or article_id

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

    def articles(self) -> list[dict]:
        """Return all articles with their cluster's canonical id, oldest first."""
        query = (
            select(articles, duplicates.c.canonical_id, duplicates.c.kind.label("duplicate_kind"))
            .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
            .order_by(articles.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

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
        now = now_iso()
        with self.engine.begin() as conn:
            conn.execute(insert(predictions), [
                {**row, "run_id": run_id, "created_at": now, "flagged": int(row["flagged"]),
                 "sector_scores": json.dumps(row["sector_scores"]), "type_scores": json.dumps(row["type_scores"]),
                 "evidence": json.dumps(row["evidence"], ensure_ascii=False)} for row in rows])

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

    def latest_predictions(self) -> list[dict]:
        """Return each article's newest prediction with its JSON fields decoded."""
        newest = select(func.max(predictions.c.id)).group_by(predictions.c.article_id)
        query = select(predictions).where(predictions.c.id.in_(newest)).order_by(predictions.c.article_id)
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            for key in ("sector_scores", "type_scores", "evidence"):
                row[key] = json.loads(row[key])
        return rows

    def current_reviews(self) -> list[dict]:
        """Return each analyst's current decision per article (their newest event), undone ones left out."""
        newest = (select(func.max(reviews.c.id)).where(reviews.c.action != "settle")
                  .group_by(reviews.c.article_id, reviews.c.analyst))
        query = select(reviews).where(reviews.c.id.in_(newest), reviews.c.cocreation.is_not(None))
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query.order_by(reviews.c.article_id)).mappings()]

    def final_labels(self) -> dict[int, dict]:
        """Return the settled label per article: the newest settle event, else the analysts' shared decision.

        Articles whose analysts disagree and that nobody settled are left out: they are not final.
        """
        latest_settle = select(func.max(reviews.c.id)).where(reviews.c.action == "settle").group_by(reviews.c.article_id)
        with self.engine.connect() as conn:
            settled = {row["article_id"]: dict(row) for row in conn.execute(
                select(reviews).where(reviews.c.id.in_(latest_settle))).mappings()}
        by_article: dict[int, list[dict]] = {}
        for row in self.current_reviews():
            by_article.setdefault(row["article_id"], []).append(row)
        final = {}
        for article_id, rows in by_article.items():
            labels = {(r["cocreation"], r["sector"], r["type"]) for r in rows}
            if article_id in settled:
                final[article_id] = settled[article_id]
            elif len(labels) == 1:
                final[article_id] = rows[-1]
        for article_id, row in settled.items():
            final.setdefault(article_id, row)
        return final

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


def _article_row(article: Article, item_id: int | None, run_id: int | None) -> dict:
    return dict(
        item_id=item_id, source=article.source, external_id=article.external_id, url=article.url or None,
        canonical_url=article.canonical_url or None, outlet=article.outlet, title=article.title,
        author=article.author, published=article.date, sitename=article.sitename,
        categories=json.dumps(list(article.categories), ensure_ascii=False), language=article.language,
        text=article.text, text_truncated_from=article.truncated_from, content_hash=article.content_hash,
        method=article.method, run_id=run_id, created_at=now_iso(),
    )
