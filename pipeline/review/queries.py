"""Reads of the review app: duplicate clusters, the queue with its filters and order, progress."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from pipeline.store import Store, articles, duplicates, predictions, reviews

log = logging.getLogger(__name__)

STATUSES = ("todo", "mine", "disputed", "all")
ORDERS = ("score", "uncertain", "newest")
META_COLUMNS = (articles.c.id, articles.c.url, articles.c.outlet, articles.c.title, articles.c.published,
                articles.c.created_at)


@dataclass
class Cluster:
    """A near-duplicate cluster, reviewed once through its canonical article."""

    canonical_id: int
    head: dict
    members: list[dict] = field(default_factory=list)  # the other articles, not the head
    prediction: dict | None = None  # of the head; of the best member when the head has none
    flagged: bool = False
    score: float = 0.0

    @property
    def date(self) -> str:
        """Return the publication date (or storage date) as sortable text."""
        return self.head.get("published") or self.head.get("created_at") or ""


@dataclass
class QueueFilters:
    """What the analyst asked the queue to show, carried through every link so nobody loses their place."""

    sector: str = ""
    type: str = ""
    outlet: str = ""
    date_from: str = ""
    date_to: str = ""
    status: str = "todo"
    order: str = "score"

    @classmethod
    def from_args(cls, args) -> "QueueFilters":
        """Read the filters from request arguments, ignoring unknown values."""
        status = args.get("status", "todo")
        order = args.get("order", "score")
        return cls(sector=args.get("sector", ""), type=args.get("type", ""), outlet=args.get("outlet", ""),
                   date_from=args.get("date_from", ""), date_to=args.get("date_to", ""),
                   status=status if status in STATUSES else "todo", order=order if order in ORDERS else "score")

    def as_args(self) -> dict[str, str]:
        """Return the non-default filters as URL arguments."""
        defaults = QueueFilters()
        return {k: v for k, v in self.__dict__.items() if v and v != getattr(defaults, k)}


def load_clusters(store: Store) -> dict[int, Cluster]:
    """Group every article with its newest prediction into duplicate clusters keyed by canonical id."""
    with store.engine.connect() as conn:
        metas = {row["id"]: dict(row) for row in conn.execute(select(*META_COLUMNS)).mappings()}
        canonical = dict(conn.execute(select(duplicates.c.article_id, duplicates.c.canonical_id)).all())
    preds = {p["article_id"]: p for p in store.latest_predictions()}
    clusters: dict[int, Cluster] = {}
    for article_id in sorted(metas):
        head_id = canonical.get(article_id, article_id)
        if head_id not in metas:
            head_id = article_id
        cluster = clusters.setdefault(head_id, Cluster(head_id, metas[head_id]))
        if article_id != head_id:
            cluster.members.append(metas[article_id])
        _merge_prediction(cluster, preds.get(article_id), article_id == head_id)
    return clusters


def _merge_prediction(cluster: Cluster, prediction: dict | None, is_head: bool) -> None:
    # A cluster is flagged when any copy is: wire copy in one paper may be scored higher than in another.
    if prediction is None:
        return
    cluster.flagged = cluster.flagged or bool(prediction["flagged"])
    cluster.score = max(cluster.score, prediction["cocreation_score"])
    if is_head or cluster.prediction is None:
        cluster.prediction = prediction


def reviews_by_article(store: Store) -> dict[int, dict[str, dict]]:
    """Return every analyst's current decision, as article id -> analyst -> review row."""
    result: dict[int, dict[str, dict]] = {}
    for row in store.current_reviews():
        result.setdefault(row["article_id"], {})[row["analyst"]] = row
    return result


def settled_articles(store: Store) -> set[int]:
    """Return the ids of articles that carry a settle event."""
    with store.engine.connect() as conn:
        return set(conn.execute(select(reviews.c.article_id).where(reviews.c.action == "settle").distinct()).scalars())


def is_disputed(decisions: dict[str, dict]) -> bool:
    """Tell whether analysts gave different labels to one article."""
    return len({(r["cocreation"], r["sector"], r["type"]) for r in decisions.values()}) > 1


def queue_entries(clusters: dict[int, Cluster], decisions: dict[int, dict[str, dict]], analyst: str,
                  filters: QueueFilters, threshold: float) -> list[Cluster]:
    """Return the flagged clusters that pass the filters, in the requested priority order."""
    chosen = [c for c in clusters.values()
              if c.flagged and _passes(c, decisions.get(c.canonical_id, {}), analyst, filters)]
    # "Most uncertain": closest to the flag threshold, where the model could go either way.
    if filters.order == "uncertain":
        return sorted(chosen, key=lambda c: (abs(c.score - threshold), c.canonical_id))
    if filters.order == "newest":
        return sorted(chosen, key=lambda c: (c.date, c.canonical_id), reverse=True)
    return sorted(chosen, key=lambda c: (c.score, c.canonical_id), reverse=True)


def _passes(cluster: Cluster, decided: dict[str, dict], analyst: str, f: QueueFilters) -> bool:
    pred = cluster.prediction or {}
    outlets = {cluster.head["outlet"]} | {m["outlet"] for m in cluster.members}
    date = cluster.date[:10]
    checks = [
        not f.sector or pred.get("sector") == f.sector,
        not f.type or pred.get("type") == f.type,
        not f.outlet or f.outlet in outlets,
        not f.date_from or (date and date >= f.date_from),
        not f.date_to or (date and date <= f.date_to),
        f.status != "todo" or analyst not in decided,
        f.status != "mine" or analyst in decided,
        f.status != "disputed" or is_disputed(decided),
    ]
    return all(checks)


def neighbours(entries: list[Cluster], canonical_id: int) -> tuple[int | None, int | None]:
    """Return the previous and next canonical ids around an article in the queue order."""
    ids = [c.canonical_id for c in entries]
    if canonical_id not in ids:
        return None, ids[0] if ids else None
    at = ids.index(canonical_id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


def progress_counts(clusters: dict[int, Cluster], decisions: dict[int, dict[str, dict]], analyst: str) -> dict:
    """Count the analyst's reviewed and remaining flagged clusters, today and overall."""
    flagged = [c.canonical_id for c in clusters.values() if c.flagged]
    mine = [decisions[i][analyst] for i in flagged if analyst in decisions.get(i, {})]
    today = datetime.now(timezone.utc).date().isoformat()
    return {"flagged": len(flagged), "reviewed": len(mine), "remaining": len(flagged) - len(mine),
            "reviewed_today": sum(r["created_at"][:10] == today for r in mine)}


def article_by_id(store: Store, article_id: int) -> dict | None:
    """Return one article with its text, or None."""
    with store.engine.connect() as conn:
        row = conn.execute(select(articles).where(articles.c.id == article_id)).mappings().first()
    return dict(row) if row else None


def flag_threshold(model_dir: Path) -> float:
    """Return the flag threshold from the model card, 0.5 when there is no readable card."""
    try:
        return float(json.loads((model_dir / "card.json").read_text(encoding="utf-8"))["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        log.info("no readable model card in %s: 'most uncertain' centres on 0.5", model_dir)
        return 0.5


def prediction_of(store: Store, article_id: int) -> dict | None:
    """Return the newest prediction of one article with its JSON fields decoded, or None."""
    with store.engine.connect() as conn:
        row = conn.execute(select(predictions).where(predictions.c.article_id == article_id)
                           .order_by(predictions.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return {**row, **{key: json.loads(row[key]) for key in ("sector_scores", "type_scores", "evidence")}}
