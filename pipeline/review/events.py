"""Writes of the review app: decisions, undos and settles, all appended as events; per-article history."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import and_, insert, select
from sqlalchemy.engine import Connection

from pipeline.store import Store, now_iso, reviews

log = logging.getLogger(__name__)

STATE_FIELDS = ("cocreation", "sector", "type", "borderline", "note")


@dataclass(frozen=True)
class Label:
    """What an analyst says about one article (sector and type only for a yes)."""

    cocreation: bool
    sector: str | None = None
    type: str | None = None
    borderline: bool = False
    note: str = ""

    def row(self) -> dict:
        """Return the label as review-table values; a no carries no sector or type (codebook rule)."""
        return {"cocreation": int(self.cocreation), "sector": self.sector if self.cocreation else None,
                "type": self.type if self.cocreation else None, "borderline": int(self.borderline),
                "note": self.note}


def analyst_state(conn: Connection, article_id: int, analyst: str) -> dict:
    """Return the analyst's current label of an article as a dict (empty when not reviewed)."""
    row = conn.execute(
        select(reviews).where(reviews.c.article_id == article_id, reviews.c.analyst == analyst,
                              reviews.c.action != "settle")
        .order_by(reviews.c.id.desc()).limit(1)
    ).mappings().first()
    if row is None or row["cocreation"] is None:
        return {}
    return {"event_id": row["id"], **{k: row[k] for k in STATE_FIELDS}}


def record_decision(store: Store, article_id: int, analyst: str, label: Label, *,
                    model_version: str | None, codebook_version: str) -> int:
    """Append a decision event with the analyst's previous label; return the event id."""
    with store.engine.begin() as conn:
        previous = analyst_state(conn, article_id, analyst)
        event_id = conn.execute(insert(reviews).values(
            article_id=article_id, analyst=analyst, action="decide", **label.row(),
            previous=json.dumps(previous, ensure_ascii=False), model_version=model_version,
            codebook_version=codebook_version, created_at=now_iso(),
        )).inserted_primary_key[0]
    log.info("review %d: %s decided article %d", event_id, analyst, article_id)
    return event_id


def undo_last(store: Store, analyst: str, codebook_version: str, article_id: int | None = None) -> int | None:
    """Append an undo of the analyst's newest decision not undone yet; return its article id."""
    with store.engine.begin() as conn:
        target = _undo_target(conn, analyst, article_id)
        if target is None:
            return None
        restored = json.loads(target["previous"] or "{}")
        conn.execute(insert(reviews).values(
            article_id=target["article_id"], analyst=analyst, action="undo",
            cocreation=restored.get("cocreation"), sector=restored.get("sector"), type=restored.get("type"),
            borderline=int(restored.get("borderline") or 0), note=restored.get("note") or "",
            previous=json.dumps(analyst_state(conn, target["article_id"], analyst), ensure_ascii=False),
            undoes_id=target["id"], model_version=target["model_version"],
            codebook_version=codebook_version, created_at=now_iso(),
        ))
    log.info("%s undid review %d on article %d", analyst, target["id"], target["article_id"])
    return target["article_id"]


def _undo_target(conn: Connection, analyst: str, article_id: int | None) -> dict | None:
    # Undo works as a stack: each undo takes back the newest decision that no undo has taken back yet.
    undone = select(reviews.c.undoes_id).where(reviews.c.analyst == analyst, reviews.c.undoes_id.is_not(None))
    query = select(reviews).where(reviews.c.analyst == analyst, reviews.c.action == "decide",
                                  reviews.c.id.not_in(undone))
    if article_id is not None:
        query = query.where(reviews.c.article_id == article_id)
    row = conn.execute(query.order_by(reviews.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def record_settle(store: Store, article_id: int, analyst: str, label: Label, *,
                  model_version: str | None, codebook_version: str) -> int:
    """Append a settle event that fixes the final label of a disputed article; return its id."""
    with store.engine.begin() as conn:
        current = conn.execute(
            select(reviews.c.analyst).where(reviews.c.article_id == article_id, reviews.c.action != "settle")
            .distinct()).scalars().all()
        previous = {name: analyst_state(conn, article_id, name) for name in current}
        return conn.execute(insert(reviews).values(
            article_id=article_id, analyst=analyst, action="settle", **label.row(),
            previous=json.dumps(previous, ensure_ascii=False), model_version=model_version,
            codebook_version=codebook_version, created_at=now_iso(),
        )).inserted_primary_key[0]


def article_history(store: Store, article_id: int) -> list[dict]:
    """Return every review event of an article, oldest first, with the previous label decoded."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(reviews).where(reviews.c.article_id == article_id)
                            .order_by(reviews.c.id)).mappings().all()
    return [{**row, "previous": json.loads(row["previous"] or "{}")} for row in rows]


def latest_settle(store: Store, article_id: int) -> dict | None:
    """Return the newest settle event of an article, or None."""
    with store.engine.connect() as conn:
        row = conn.execute(select(reviews).where(and_(reviews.c.article_id == article_id,
                                                      reviews.c.action == "settle"))
                           .order_by(reviews.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None
