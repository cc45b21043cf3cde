"""Review events (append-only; labels.py says what they mean), skips, analysts and agreement progress."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from pipeline import labels
from pipeline.chars import xml_safe
from pipeline.errors import StoreError
from pipeline.records import FinalLabel, ReviewEvent
from pipeline.store.base import StorePart, _chunks, as_record, inserted_id, now_iso
from pipeline.store.cluster import _current_reviews, _settled_among, _settles_in_force, queued_cluster
from pipeline.store.schema import analysts, clusters, reviews, skips


class ReviewStore(StorePart):
    """Analysts' review events, parked ("skip for now") clusters, registered analysts, agreement progress."""

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
        """Return the settle in force of every settled article (its newest settle event, when not undone)."""
        with self.engine.connect() as conn:
            rows = conn.execute(_settles_in_force()).mappings().all()
        return [as_record(ReviewEvent, row) for row in rows]

    def settled_article_ids(self) -> set[int]:
        """Return the ids of articles with a settle in force."""
        return {event.article_id for event in self.settle_events()}

    def required_reviews(self) -> int:
        """Return how many agreeing analysts make a label final here (the min_reviews option, see labels)."""
        with self.engine.connect() as conn:
            registered = conn.execute(select(func.count()).select_from(analysts)
                                      .where(analysts.c.disabled == 0)).scalar_one()
        return labels.required_reviews(self.min_reviews, registered)

    def final_labels(self) -> dict[int, FinalLabel]:
        """Return the final label per article with its provenance (see labels.final_label).

        Articles fewer than required_reviews() analysts decided, or whose analysts disagree, and that nobody
        settled are left out: they are not final. Export, digest, publish, load_dataset and training all ask here.
        """
        return labels.final_labels(self.current_reviews(), self.settle_events(), self.required_reviews())

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
        """Return the settle in force of an article (its newest settle event, when not undone), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(_settles_in_force([article_id])).mappings().first()
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
        """Append an undo of the analyst's newest decision or settle not undone yet; return the event undone, or None."""
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
            names: Sequence[str] = conn.execute(select(reviews.c.analyst).where(
                reviews.c.article_id == article_id, reviews.c.action != "settle").distinct()).scalars().all()
            previous = {name: _analyst_state(conn, article_id, name) for name in names}
            event_id = _append_review(conn, article_id=article_id, analyst=analyst, action="settle", **label,
                                      previous=previous, model_version=model_version, codebook_version=codebook_version)
            _refresh_dispute(conn, article_id)  # a settled article is no longer disputed (issue 11)
        return event_id

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

    # -- settle and agreement (issue 11) --
    def analyst_progress(self, today: str) -> list[dict]:
        """Count per analyst the queued stories decided, decided on `today` (ISO date) and still disputed.

        Every enabled registered analyst is listed, also with nothing decided yet; flagged is the same for all.
        """
        newest = (select(reviews.c.analyst, func.max(reviews.c.id).label("last"))
                  .where(reviews.c.action != "settle").group_by(reviews.c.article_id, reviews.c.analyst).subquery())
        decided_today = func.sum(case((func.substr(reviews.c.created_at, 1, 10) == today, 1), else_=0))
        query = (select(newest.c.analyst, func.count(), decided_today, func.sum(clusters.c.disputed))
                 .select_from(newest.join(reviews, reviews.c.id == newest.c.last)
                              .join(clusters, clusters.c.cluster_id == reviews.c.article_id))
                 .where(reviews.c.cocreation.is_not(None), queued_cluster()).group_by(newest.c.analyst))
        with self.engine.connect() as conn:
            # Queued stories, as the queue shows them: flagged ones and those readers submitted.
            flagged = conn.execute(select(func.count()).select_from(clusters).where(queued_cluster())).scalar()
            counts = {row[0]: row[1:] for row in conn.execute(query)}
            registered: Sequence[str] = conn.execute(select(analysts.c.name)
                                                     .where(analysts.c.disabled == 0)).scalars().all()
        rows = {name: counts.get(name, (0, 0, 0)) for name in sorted(set(counts) | set(registered))}
        return [{"analyst": name, "flagged": flagged, "decided": decided, "decided_today": int(today_n or 0),
                 "disputed": int(disputed or 0)} for name, (decided, today_n, disputed) in rows.items()]


STATE_FIELDS = ("cocreation", "sector", "type", "borderline", "note", "lesson", "private", "quote")


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
    cleaned = {key: xml_safe(values[key]) for key in ("note", "lesson", "quote") if isinstance(values.get(key), str)}
    row = {**values, **cleaned, "previous": json.dumps(previous, ensure_ascii=False), "created_at": now_iso()}
    return inserted_id(conn.execute(insert(reviews).values(**row)))


def _undo_target(conn: Connection, analyst: str, article_id: int | None) -> ReviewEvent | None:
    # Undo works as a stack: each undo takes back the analyst's newest decision or settle that no undo has taken
    # back yet. An undo of a settle is itself a settle event (with undoes_id), never a target of its own.
    undone = select(reviews.c.undoes_id).where(reviews.c.analyst == analyst, reviews.c.undoes_id.is_not(None))
    own = or_(reviews.c.action == "decide", and_(reviews.c.action == "settle", reviews.c.undoes_id.is_(None)))
    query = select(reviews).where(reviews.c.analyst == analyst, own, reviews.c.id.not_in(undone))
    if article_id is not None:
        query = query.where(reviews.c.article_id == article_id)
    row = conn.execute(query.order_by(reviews.c.id.desc()).limit(1)).mappings().first()
    return as_record(ReviewEvent, row) if row else None


def _append_undo(conn: Connection, analyst: str, target: ReviewEvent, codebook_version: str) -> None:
    # The undo event restores the state the undone event replaced, and says which event it undoes. A decision's
    # state is the analyst's own label before it; a settle's is the settle in force before it, if any.
    if target.action == "settle":
        restored, action, previous = _settle_before(conn, target), "settle", target.previous
    else:
        restored, action, previous = target.previous, "undo", _analyst_state(conn, target.article_id, analyst)
    _append_review(
        conn, article_id=target.article_id, analyst=analyst, action=action,
        cocreation=restored.get("cocreation"), sector=restored.get("sector"), type=restored.get("type"),
        borderline=int(restored.get("borderline") or 0), note=restored.get("note") or "",
        lesson=restored.get("lesson") or "", private=int(restored.get("private") or 0),
        quote=restored.get("quote") or "", previous=previous, undoes_id=target.id, model_version=target.model_version,
        codebook_version=codebook_version)
    _refresh_dispute(conn, target.article_id)


def _settle_before(conn: Connection, target: ReviewEvent) -> dict:
    # The label of the newest settle event before the target (an earlier settle, or an undo back to one).
    row = conn.execute(
        select(reviews).where(reviews.c.article_id == target.article_id, reviews.c.action == "settle",
                              reviews.c.id < target.id)
        .order_by(reviews.c.id.desc()).limit(1)
    ).mappings().first()
    return {k: row[k] for k in STATE_FIELDS} if row is not None and row["cocreation"] is not None else {}


def _refresh_dispute(conn: Connection, article_id: int) -> None:
    decisions = {e.analyst: e for e in _current_reviews(conn, [article_id])}
    settled = article_id in _settled_among(conn, [article_id])
    conn.execute(update(clusters).where(clusters.c.cluster_id == article_id)
                 .values(disputed=int(labels.is_disputed(decisions, settled))))
