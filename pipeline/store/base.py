"""The store's base: the engine, migrations, runs, and the row helpers every part of the store uses."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, event, func, insert, or_, select, update
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, SQLAlchemyError

from pipeline.errors import StoreError
from pipeline.records import MAX_TEXT_CHARS
from pipeline.store.migrations import (
    CLUSTERS_SINCE, FLAGGED_ARTICLES_SINCE, MIGRATIONS, RENSA_SIGNATURES_SINCE, SCHEMA_VERSION, add_later_columns,
)
from pipeline.store.schema import articles, clusters, duplicates, feeds, items, predictions, reviews, runs, schema_info

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")  # as_record builds records from their dataclass fields
K = TypeVar("K", bound=Hashable)  # ids, file names: whatever an IN (...) list is made of
# Columns stored as JSON text, decoded here and nowhere else; lists become tuples where the record says so.
JSON_COLUMNS = {"categories": tuple, "tags": list, "sector_scores": dict, "type_scores": dict, "evidence": list,
                "previous": dict, "report": dict}
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


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def inserted_id(result: CursorResult[Any]) -> int:
    """Return the primary key of the row a single-row INSERT just made."""
    key = result.inserted_primary_key
    if key is None:  # only a statement that is not a single-row INSERT has none: a bug in the caller
        raise StoreError("the database returned no id for the inserted row")
    return int(key[0])


def decoded_json(value: str | None) -> dict:
    """Return a JSON object column as a dict (empty when unset)."""
    return json.loads(value) if value else {}


def _chunks(ids: Iterable[K], size: int = BATCH) -> Iterator[list[K]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the review app read while the nightly run writes; busy_timeout rides out short locks.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def create_store_engine(url: str, *, cached_statements: int | None = None) -> Engine:
    """Create an engine; for SQLite make the folder, switch on WAL and cap the statement cache when asked."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if cached_statements is not None:
            event.listen(engine, "do_connect", _statement_cache(cached_statements))
    return engine


def _statement_cache(size: int) -> Callable:
    # sqlite3 keeps 128 prepared statements per connection by default. Measured (backfill workers): memory grew
    # with the database by that cache, as each batch refreshes its clusters with IN lists of every member, so
    # it prepares statements with thousands of parameters that no later batch repeats, and the cache keeps them.
    def set_cache(_dialect: Any, _record: Any, _cargs: Any, cparams: dict) -> None:
        cparams["cached_statements"] = size
    return set_cache


def sqlite_file_missing(url: str) -> bool:
    """Tell whether a database URL names a SQLite file that does not exist yet (opening it creates it empty)."""
    parsed = make_url(url)
    database = parsed.database
    return parsed.get_backend_name() == "sqlite" and database is not None and database not in ("", ":memory:") \
        and not Path(database).exists()


def shown_url(url: str) -> str:
    """Return a database URL fit to print: never its password (status output lands in logs and e-mails)."""
    return make_url(url).render_as_string(hide_password=True)


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


class StorePart:
    """What every part of the store (one mixin per concern) may use: the engine and settings StoreBase sets."""

    url: str
    engine: Engine
    max_text_chars: int
    min_reviews: int | None
    _holds_writers_lock: bool

    if TYPE_CHECKING:
        # The mixins call each other through the one Store object; these are defined in cluster.py and
        # article.py, declared here so that each part type-checks on its own (no effect at run time).
        def _fill_clusters(self, conn: Connection) -> int: ...
        def _clusters_of(self, conn: Connection, article_ids: Iterable[int]) -> set[int]: ...
        def _refresh_clusters(self, conn: Connection, cluster_ids: Iterable[int]) -> None: ...
        def _resign_articles(self, conn: Connection) -> int: ...


class StoreBase(StorePart):
    """The engine, the schema's migrations and the run log: what every part of the store stands on."""

    def __init__(self, url: str, max_text_chars: int = MAX_TEXT_CHARS, *, cached_statements: int | None = None,
                 min_reviews: int | None = None):
        """Open a database by URL; cached_statements caps the prepared statements kept per SQLite connection.

        min_reviews is how many agreeing analysts make a label final (None: labels.required_reviews decides).
        """
        self.url = url
        try:
            self.engine = create_store_engine(url, cached_statements=cached_statements)
        except (OSError, ImportError, SQLAlchemyError) as exc:  # folder not creatable, bad URL, driver missing
            raise _open_error(url, exc) from exc
        self.max_text_chars = max_text_chars  # every stored text and summary is cut to this (see cap_text)
        self.min_reviews = min_reviews
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
            return inserted_id(conn.execute(insert(runs).values(kind=kind, started_at=now_iso())))

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

    def counts(self) -> dict[str, int]:
        """Return row counts of the main tables."""
        with self.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in (feeds, items, articles, duplicates, predictions, runs)}
