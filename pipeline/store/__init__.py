"""Reads and writes of the radar database (SQLite by default, PostgreSQL by URL); the tables are in schema.py.

`Store` stays one façade class composed of one mixin per concern (base, feed, article, review, queue,
submission, backfill, and cluster for the upkeep several of them share), all working on the one
`self.engine`: every caller keeps calling `store.method(...)` on one object, each concern's SQL lives in a
module of its own, and a write that touches several concerns (a prediction refreshing its cluster row)
is still one method in one transaction. The modules are named in the singular so that none of them
shadows a table re-exported here (`from pipeline.store import Store, reviews` keeps giving the table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.store.article import ArticleStore
from pipeline.store.backfill import BACKFILL_LOCK_KEY, BackfillStore
from pipeline.store.base import (
    BATCH, JSON_COLUMNS, StoreBase, as_record, create_store_engine, decoded, decoded_json, now_iso, shown_url,
    sqlite_file_missing,
)
from pipeline.store.cluster import ClusterStore
from pipeline.store.feed import FeedStore
from pipeline.store.migrations import (
    CLUSTERS_SINCE, FLAGGED_ARTICLES_SINCE, MIGRATIONS, RENSA_SIGNATURES_SINCE, SCHEMA_VERSION, add_later_columns,
)
from pipeline.store.queue import MAX_SEARCH_WORDS, QueueStore, search_words
from pipeline.store.review import STATE_FIELDS, ReviewStore
from pipeline.store.submission import SubmissionStore
# The tables are re-exported here: callers use `from pipeline.store import Store, reviews`.
from pipeline.store.schema import (
    SEARCH_TABLE, SEARCH_VECTOR, analysts, articles, backfill_partitions, clusters, duplicates, feeds, fetches, form_nonces,
    items, metadata, pages, predictions, reviews, runs, schema_info, scoring_failures, signature_bands, signatures, skips,
    submissions,
)

if TYPE_CHECKING:
    from pipeline.settings import Settings

__all__ = [
    "BACKFILL_LOCK_KEY", "BATCH", "CLUSTERS_SINCE", "FLAGGED_ARTICLES_SINCE", "JSON_COLUMNS", "MAX_SEARCH_WORDS",
    "MIGRATIONS", "RENSA_SIGNATURES_SINCE", "SCHEMA_VERSION", "SEARCH_TABLE", "SEARCH_VECTOR", "STATE_FIELDS", "Store",
    "add_later_columns", "analysts", "articles", "as_record", "backfill_partitions", "clusters", "create_store_engine",
    "decoded", "decoded_json", "duplicates", "feeds", "fetches", "form_nonces", "items", "metadata", "now_iso",
    "open_store", "pages", "predictions", "reviews", "runs", "schema_info", "scoring_failures", "search_words",
    "shown_url", "signature_bands", "signatures", "skips", "sqlite_file_missing", "submissions",
]


class Store(FeedStore, ArticleStore, ReviewStore, QueueStore, SubmissionStore, BackfillStore, ClusterStore, StoreBase):
    """Reads and writes of the radar database; each public write is one transaction."""


def open_store(settings: Settings, *, cached_statements: int | None = None) -> Store:
    """Open the configured database and migrate it forward (what every command that reads or writes it does)."""
    store = Store(settings.effective_database_url, max_text_chars=settings.max_text_chars,
                  cached_statements=cached_statements, min_reviews=settings.min_reviews)
    try:
        store.migrate()
    except Exception:
        store.close()
        raise
    return store
