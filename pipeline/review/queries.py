"""Reads of the review app, all through the store: the queue page with its filters and order, progress, clusters."""

from __future__ import annotations

import json
import logging
from datetime import datetime, UTC
from pathlib import Path

from pipeline.labels import is_disputed  # noqa: F401  (kept importable here for callers of the old module)
from pipeline.records import QUEUE_ORDERS, QUEUE_STATUSES, Cluster, QueueFilters, QueuePlace  # noqa: F401
from pipeline.store import Store

log = logging.getLogger(__name__)

STATUSES = QUEUE_STATUSES
ORDERS = QUEUE_ORDERS
PAGE_SIZE = 50  # clusters per queue page


def queue_page(store: Store, analyst: str, filters: QueueFilters, threshold: float,
               page: int = 1) -> tuple[list[Cluster], bool]:
    """Return one page of the flagged clusters that pass the filters, in priority order, and whether more follow."""
    entries = store.review_queue(analyst, filters, threshold, limit=PAGE_SIZE + 1,
                                 offset=(max(page, 1) - 1) * PAGE_SIZE)
    return entries[:PAGE_SIZE], len(entries) > PAGE_SIZE


def queue_place(store: Store, analyst: str, filters: QueueFilters, threshold: float,
                canonical_id: int) -> QueuePlace:
    """Return the previous and next canonical ids around a cluster in the queue order, and its position."""
    return store.queue_place(analyst, filters, threshold, canonical_id)


def progress_counts(store: Store, analyst: str) -> dict:
    """Count the analyst's reviewed and remaining flagged clusters, today and overall."""
    return store.review_progress(analyst, datetime.now(UTC).date().isoformat())


def flag_threshold(model_dir: Path) -> float:
    """Return the flag threshold from the model card, 0.5 when there is no readable card."""
    try:
        return float(json.loads((model_dir / "card.json").read_text(encoding="utf-8"))["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        log.info("no readable model card in %s: 'most uncertain' centres on 0.5", model_dir)
        return 0.5
