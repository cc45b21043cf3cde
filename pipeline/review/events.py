"""Writes of the review app: decisions, undos and settles, all appended as events by the store; per-article history."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.records import ReviewEvent
from pipeline.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Label:
    """What an analyst says about one article (sector and type only for a yes)."""

    cocreation: bool
    sector: str | None = None
    type: str | None = None
    borderline: bool = False
    note: str = ""
    lesson: str = ""  # for the public collection: what readers can learn from the example
    private: bool = False  # never published
    quote: str = ""  # the sentence chosen to quote outside the tool; '' leaves it to the model (highlight.best_quote)

    def row(self) -> dict:
        """Return the label as review-table values; a no carries no sector or type (codebook rule)."""
        return {"cocreation": int(self.cocreation), "sector": self.sector if self.cocreation else None,
                "type": self.type if self.cocreation else None, "borderline": int(self.borderline),
                "note": self.note, "lesson": self.lesson, "private": int(self.private),
                "quote": self.quote if self.cocreation else ""}


def record_decision(store: Store, article_id: int, analyst: str, label: Label, *,
                    model_version: str | None, codebook_version: str) -> int:
    """Append a decision event with the analyst's previous label; return the event id."""
    event_id = store.append_decision(article_id, analyst, label.row(), model_version=model_version,
                                     codebook_version=codebook_version)
    log.info("review %d: %s decided article %d", event_id, analyst, article_id)
    return event_id


def undo_last(store: Store, analyst: str, codebook_version: str, article_id: int | None = None) -> ReviewEvent | None:
    """Append an undo of the analyst's newest decision or settle not undone yet; return the event undone."""
    target = store.append_undo(analyst, codebook_version, article_id)
    if target is None:
        return None
    log.info("%s undid %s %d on article %d", analyst, target.action, target.id, target.article_id)
    return target


def record_settle(store: Store, article_id: int, analyst: str, label: Label, *,
                  model_version: str | None, codebook_version: str) -> int:
    """Append a settle event that fixes the final label of a disputed article; return its id."""
    return store.append_settle(article_id, analyst, label.row(), model_version=model_version,
                               codebook_version=codebook_version)


def article_history(store: Store, article_id: int) -> list[ReviewEvent]:
    """Return every review event of an article, oldest first, with the previous label decoded."""
    return store.review_history([article_id]).get(article_id, [])


def latest_settle(store: Store, article_id: int) -> ReviewEvent | None:
    """Return the settle in force of an article (its newest settle, unless a lead undid it), or None."""
    return store.latest_settle(article_id)
