"""Feeds, the fetch log, feed items and their raw pages."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, select, update

from pipeline.records import FeedConfig, FeedEntry, FeedItem
from pipeline.store.base import StorePart, as_record, inserted_id, now_iso
from pipeline.store.schema import feeds, fetches, items, pages
from pipeline.text import cap_text


class FeedStore(StorePart):
    """Feeds and their health, the fetch log, the items a feed listed and their raw pages."""

    # -- feeds --------------------------------------------------------------
    def sync_feeds(self, configs: Iterable[FeedConfig]) -> dict[str, int]:
        """Insert or update the configured feeds; return name -> feed id."""
        ids: dict[str, int] = {}
        with self.engine.begin() as conn:
            for cfg in configs:
                values: dict[str, str | None] = dict(url=cfg.url, outlet=cfg.outlet, language=cfg.language, tags=json.dumps(list(cfg.tags)))
                row = conn.execute(select(feeds.c.id, feeds.c.url).where(feeds.c.name == cfg.name)).first()
                if row is None:
                    ids[cfg.name] = inserted_id(conn.execute(insert(feeds).values(name=cfg.name, **values)))
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
            counts: dict[str, int] = dict(conn.execute(select(items.c.status, func.count()).group_by(items.c.status)).all())
        return counts

    def raw_page(self, item_id: int) -> bytes | None:
        """Return the latest raw page bytes stored for an item."""
        with self.engine.connect() as conn:
            blob = conn.execute(
                select(pages.c.body_zlib).where(pages.c.item_id == item_id).order_by(pages.c.id.desc()).limit(1)
            ).scalar()
        return zlib.decompress(blob) if blob is not None else None
