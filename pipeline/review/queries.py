"""Reads of the review app, all through the store: the queue page with its filters and order, progress, clusters."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path

from pipeline.labels import is_disputed  # noqa: F401  (kept importable here for callers of the old module)
from pipeline.records import QUEUE_ORDERS, QUEUE_STATUSES, Cluster, QueueFilters, QueuePlace  # noqa: F401
from pipeline.highlight import valid_spans
from pipeline.store import Store

log = logging.getLogger(__name__)

STATUSES = QUEUE_STATUSES
ORDERS = QUEUE_ORDERS
PAGE_SIZE = 50  # clusters per queue page
SNIPPET_CHARS = 230  # about two lines of the queue's article column (the CSS clamps it to two)
KEY_SENTENCE = "sentence:cocreation"  # the evidence label of the scorer's key sentences


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


@dataclass(frozen=True)
class Snippet:
    """A short piece of an article for its queue row: the key sentence with a little context (plain text)."""

    before: str
    key: str
    after: str


def row_snippets(store: Store, entries: list[Cluster]) -> dict[int, Snippet]:
    """Return a snippet per queue row, reading the texts of these rows only (a page holds at most PAGE_SIZE)."""
    source = {e.canonical_id: (e.prediction.article_id if e.prediction else e.canonical_id) for e in entries}
    texts = store.article_texts(source.values())
    return {e.canonical_id: key_snippet(texts.get(source[e.canonical_id], ""),
                                        e.prediction.evidence if e.prediction else []) for e in entries}


def key_snippet(text: str, evidence: list[dict], width: int = SNIPPET_CHARS) -> Snippet:
    """Return the strongest key sentence with context on both sides, about `width` characters; else the lead."""
    keys = [s for s in valid_spans(text, evidence) if s.get("label") == KEY_SENTENCE]
    if not keys:
        return Snippet("", "", _cut_after(_flat(text), width))
    best = max(keys, key=lambda s: s.get("weight", 0))
    key = _flat(text[best["start"]:best["end"]])
    if len(key) >= width:
        return Snippet("", _cut_after(key, width), "")
    room = width - len(key)
    before = _context_before(text, best["start"], room // 3)
    after = _cut_after(_flat(text[best["end"]:best["end"] + room]), room - len(before))
    return Snippet(before, key, after)


def _flat(text: str) -> str:
    # A snippet is one run of text: newlines and runs of spaces become single spaces.
    return re.sub(r"\s+", " ", text)


def _cut_after(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip() + "…"


def _context_before(text: str, start: int, limit: int) -> str:
    # Up to `limit` characters before the key sentence, starting at a whole word; "…" when text was left out.
    piece = _flat(text[max(0, start - limit):start])
    if start <= limit:
        return piece.lstrip()
    return "…" + (piece.split(" ", 1)[1] if " " in piece else piece)
