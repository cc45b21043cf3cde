"""The forward migrations of the database schema, from each version to the next."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from pipeline.store.schema import (
    BACKFILL_PROVENANCE_INDEX, FLAGGED_ARTICLES_INDEX, ORIGIN_INDEX, QUEUE_INDEXES, SUBMISSION_INDEXES, _POSTGRES_SEARCH,
    _SQLITE_SEARCH, analysts, articles, backfill_partitions, clusters, duplicates, feeds, fetches, form_nonces, items,
    metadata, pages, predictions, reviews, runs, schema_info, scoring_failures, signature_bands, signatures, skips,
    submissions,
)

VERSION_1_TABLES = [schema_info, feeds, runs, fetches, items, pages, articles, duplicates, signatures]


def _migrate_to_1(conn: Connection) -> None:
    metadata.create_all(conn, tables=VERSION_1_TABLES)


def _migrate_to_2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[predictions])


def _migrate_to_3(conn: Connection) -> None:
    metadata.create_all(conn, tables=[reviews])


def _migrate_to_4(conn: Connection) -> None:
    # Columns that record a cut text or summary. A database created by this code already has them
    # (_migrate_to_1 creates the tables as schema.py defines them), so only missing ones are added.
    for table, column in ((articles, "text_truncated_from"), (items, "summary_truncated_from")):
        if column not in {c["name"] for c in inspect(conn).get_columns(table.name)}:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column} INTEGER")


def _migrate_to_5(conn: Connection) -> None:
    metadata.create_all(conn, tables=[analysts])


def _migrate_to_6(conn: Connection) -> None:
    metadata.create_all(conn, tables=[scoring_failures])


def _migrate_to_7(conn: Connection) -> None:
    # The cluster table starts empty here; Store.migrate fills it from the articles, predictions and
    # reviews already stored (that is data work, which belongs to the store).
    metadata.create_all(conn, tables=[clusters])
    for index in QUEUE_INDEXES:
        index.create(conn, checkfirst=True)  # tables created by this code carry them already


def _migrate_to_8(conn: Connection) -> None:
    # Every article stored before version 8 came from a feed or from `radar ingest`; its source says which.
    existing = {c["name"] for c in inspect(conn).get_columns("articles")}
    if "origin" not in existing:
        conn.exec_driver_sql("ALTER TABLE articles ADD COLUMN origin VARCHAR(20) NOT NULL DEFAULT 'feed'")
        conn.exec_driver_sql("UPDATE articles SET origin = 'ingest' WHERE source <> 'feed'")
    if "provenance" not in existing:
        conn.exec_driver_sql("ALTER TABLE articles ADD COLUMN provenance TEXT NOT NULL DEFAULT ''")
    ORIGIN_INDEX.create(conn, checkfirst=True)  # tables created by this code carry it already


def _migrate_to_9(conn: Connection) -> None:
    # Store.migrate then recounts flagged_articles of the flagged clusters (data work belongs to the store).
    metadata.create_all(conn, tables=[skips])
    if "flagged_articles" not in {c["name"] for c in inspect(conn).get_columns("clusters")}:
        conn.exec_driver_sql("ALTER TABLE clusters ADD COLUMN flagged_articles INTEGER NOT NULL DEFAULT 0")
    FLAGGED_ARTICLES_INDEX.create(conn, checkfirst=True)  # tables created by this code carry it already
    statements = {"sqlite": _SQLITE_SEARCH, "postgresql": _POSTGRES_SEARCH}.get(conn.dialect.name, [])
    for statement in statements:
        conn.exec_driver_sql(statement)


def _migrate_to_10(conn: Connection) -> None:
    # Review events gain the public collection's lesson and private mark, clusters the reader's mark, and the
    # submissions table arrives. Tables created by this code have the columns already: add only missing ones.
    add_review_columns(conn)
    _add_missing(conn, "clusters", {"submitted": "INTEGER NOT NULL DEFAULT 0"})
    metadata.create_all(conn, tables=[submissions])
    for index in SUBMISSION_INDEXES:
        index.create(conn, checkfirst=True)


# Columns that migrations after 7 add to the tables the store's cluster code reads and writes.
LATER_COLUMNS = {
    "reviews": {"lesson": "TEXT NOT NULL DEFAULT ''", "private": "INTEGER NOT NULL DEFAULT 0",  # schema 10
                "quote": "TEXT NOT NULL DEFAULT ''"},  # schema 14
    "clusters": {"flagged_articles": "INTEGER NOT NULL DEFAULT 0", "submitted": "INTEGER NOT NULL DEFAULT 0"},  # 9, 10
}


def add_review_columns(conn: Connection) -> None:
    """Add the lesson and private columns of review events where they are missing (schema 10)."""
    _add_missing(conn, "reviews", LATER_COLUMNS["reviews"])


def add_later_columns(conn: Connection) -> None:
    """Add every column a later migration adds to reviews and clusters, where missing.

    The store's data steps during a migration (filling or recounting cluster rows) read and write these tables
    as this code defines them, whatever version the migration is at; the later migration then finds the column.
    """
    for table, columns in LATER_COLUMNS.items():
        _add_missing(conn, table, columns)


def _add_missing(conn: Connection, table: str, columns: dict[str, str]) -> None:
    existing = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, ddl in columns.items():
        if name not in existing:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")


def _migrate_to_11(conn: Connection) -> None:
    # Backfill checkpoints and band keys; the store fills the bands of heads stored before (Store.fill_bands).
    metadata.create_all(conn, tables=[backfill_partitions, signature_bands])
    BACKFILL_PROVENANCE_INDEX.create(conn, checkfirst=True)


def _migrate_to_12(conn: Connection) -> None:
    # No table changes: MinHash signatures now come from rensa, not datasketch's SHA-1 hashing. The store's
    # data step re-signs every stored article (Store._resign_articles); the backfill refills the band keys.
    conn.execute(signature_bands.delete())


# Columns schema 13 adds (issue 23). Tables created by this code have them already: only missing ones are added.
SCHEMA_13_COLUMNS = {
    "feeds": {"private_origin": "INTEGER"},
    "backfill_partitions": {"damaged_at": "BIGINT", "damage": "TEXT"},
}


def _migrate_to_13(conn: Connection) -> None:
    for table, columns in SCHEMA_13_COLUMNS.items():
        _add_missing(conn, table, columns)
    metadata.create_all(conn, tables=[form_nonces])


def _migrate_to_14(conn: Connection) -> None:
    # The quote an analyst chose for an example (issue 21). Then, on SQLite, which cannot add AUTOINCREMENT to a
    # table: rebuild submissions with it, rows and ids kept. The indexes go first (a renamed table keeps their
    # names) and come back on the new table.
    _add_missing(conn, "reviews", {"quote": LATER_COLUMNS["reviews"]["quote"]})
    if conn.dialect.name != "sqlite":
        return
    own = [index for index in SUBMISSION_INDEXES if index.table is submissions]
    for index in own:
        conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{index.name}"')
    conn.exec_driver_sql("ALTER TABLE submissions RENAME TO submissions_before_14")
    submissions.create(conn)
    names = ", ".join(f'"{c.name}"' for c in submissions.columns)
    conn.exec_driver_sql(f"INSERT INTO submissions ({names}) SELECT {names} FROM submissions_before_14")
    conn.exec_driver_sql("DROP TABLE submissions_before_14")
    for index in own:
        index.create(conn, checkfirst=True)


# Forward migrations in order; entry i brings the schema from version i to i + 1.
MIGRATIONS: list[Callable[[Connection], None]] = [_migrate_to_1, _migrate_to_2, _migrate_to_3, _migrate_to_4, _migrate_to_5,
                                                  _migrate_to_6, _migrate_to_7, _migrate_to_8, _migrate_to_9,
                                                  _migrate_to_10, _migrate_to_11, _migrate_to_12, _migrate_to_13,
                                                  _migrate_to_14]
SCHEMA_VERSION = len(MIGRATIONS)
CLUSTERS_SINCE = MIGRATIONS.index(_migrate_to_7) + 1  # the version whose migration adds the cluster table
FLAGGED_ARTICLES_SINCE = MIGRATIONS.index(_migrate_to_9) + 1  # the version that counts flagged articles per cluster
RENSA_SIGNATURES_SINCE = MIGRATIONS.index(_migrate_to_12) + 1  # the version whose signatures rensa made
