"""The cluster table's upkeep and the cluster reads that articles, reviews, the queue and submissions share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from pipeline import labels
from pipeline.records import ArticleMeta, Cluster, Prediction, ReviewEvent
from pipeline.store.base import StorePart, BATCH, _chunks, as_record
from pipeline.store.schema import articles, clusters, duplicates, predictions, reviews, submissions


class ClusterStore(StorePart):
    """Keep the cluster table (one queue row per near-duplicate cluster) in step with its articles."""

    def rebuild_clusters(self) -> int:
        """Recompute every cluster row from the stored articles, predictions and reviews; return the count.

        For a bulk load that wrote the tables directly; the normal writers keep the rows up to date.
        """
        with self.engine.begin() as conn:
            conn.execute(delete(clusters))
            count = self._fill_clusters(conn)
            _mark_submitted(conn, _submitted_clusters(conn))
            return count

    def _fill_clusters(self, conn: Connection) -> int:
        heads = (select(articles.c.id).join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
                 .where(duplicates.c.article_id.is_(None)))
        count, last = 0, 0
        while True:
            ids: list[int] = list(conn.execute(heads.where(articles.c.id > last).order_by(articles.c.id).limit(BATCH)).scalars())
            if not ids:
                return count
            rows = _cluster_rows(conn, ids)
            conn.execute(insert(clusters), rows)
            count, last = count + len(rows), ids[-1]

    def _clusters_of(self, conn: Connection, article_ids: Iterable[int]) -> set[int]:
        result: set[int] = set()
        for chunk in _chunks(article_ids):
            links = select(duplicates.c.article_id, duplicates.c.canonical_id).where(duplicates.c.article_id.in_(chunk))
            canonical: dict[int, int] = dict(conn.execute(links).all())
            result |= {canonical.get(a, a) for a in chunk}
        return result

    def _refresh_clusters(self, conn: Connection, cluster_ids: Iterable[int]) -> None:
        for chunk in _chunks(cluster_ids):
            rows = _cluster_rows(conn, chunk)
            # The reader's mark is not derived from articles and predictions: it survives the rebuild of the row.
            kept: set[int] = set(conn.execute(select(clusters.c.cluster_id).where(clusters.c.cluster_id.in_(chunk),
                                                                         clusters.c.submitted == 1)).scalars())
            conn.execute(delete(clusters).where(clusters.c.cluster_id.in_(chunk)))
            if rows:
                conn.execute(insert(clusters), [{**row, "submitted": int(row["cluster_id"] in kept)} for row in rows])


def _prediction(row: Mapping) -> Prediction:
    return as_record(Prediction, {**row, "flagged": bool(row["flagged"])})


def _submitted_clusters(conn: Connection, cluster_ids: list[int] | None = None) -> set[int]:
    # The clusters that hold an article a submission made or joined (of the given clusters, when given).
    head = func.coalesce(duplicates.c.canonical_id, submissions.c.article_id)
    query = (select(head).select_from(submissions)
             .join(duplicates, duplicates.c.article_id == submissions.c.article_id, isouter=True)
             .where(submissions.c.article_id.is_not(None)))
    if cluster_ids is not None:
        query = query.where(head.in_(cluster_ids))
    return set(conn.execute(query.distinct()).scalars())


def _mark_submitted(conn: Connection, cluster_ids: set[int]) -> None:
    for chunk in _chunks(cluster_ids):
        conn.execute(update(clusters).where(clusters.c.cluster_id.in_(chunk)).values(submitted=1))


def _canonical_of(conn: Connection, article_id: int) -> int:
    found = conn.execute(select(duplicates.c.canonical_id).where(duplicates.c.article_id == article_id)).scalar()
    return found or article_id


def _newest_of(article_ids: list[int]):
    return (select(func.max(predictions.c.id)).where(predictions.c.article_id.in_(article_ids))
            .group_by(predictions.c.article_id))


def _newest_predictions(conn: Connection, article_ids: Iterable[int]) -> dict[int, Prediction]:
    result = {}
    for chunk in _chunks(article_ids):
        for row in conn.execute(select(predictions).where(predictions.c.id.in_(_newest_of(chunk)))).mappings():
            result[row["article_id"]] = _prediction(row)
    return result


def _newest_scores(conn: Connection, article_ids: list[int]) -> dict[int, Any]:
    # The few columns a cluster row needs; decoding every prediction's evidence would dominate a rebuild.
    p = predictions.c
    query = select(p.id, p.article_id, p.flagged, p.cocreation_score, p.sector, p.type).where(
        p.id.in_(_newest_of(article_ids)))
    return {row.article_id: row for row in conn.execute(query)}


def _current_reviews(conn: Connection, article_ids: Iterable[int] | None = None) -> list[ReviewEvent]:
    def query(chunk: list[int] | None):
        newest = select(func.max(reviews.c.id)).where(reviews.c.action != "settle")
        if chunk is not None:
            newest = newest.where(reviews.c.article_id.in_(chunk))
        newest = newest.group_by(reviews.c.article_id, reviews.c.analyst)
        return (select(reviews).where(reviews.c.id.in_(newest), reviews.c.cocreation.is_not(None))
                .order_by(reviews.c.article_id, reviews.c.id))

    chunks = [None] if article_ids is None else _chunks(article_ids)
    return [as_record(ReviewEvent, row) for chunk in chunks for row in conn.execute(query(chunk)).mappings()]


def queued_cluster():
    """Return the condition of a cluster the queue shows: flagged, or submitted by a reader whatever its score."""
    return or_(clusters.c.flagged == 1, clusters.c.submitted == 1)


def _settles_in_force(article_ids: list[int] | None = None):
    # The newest settle event per article, when it carries a decision: a lead's undo of the only settle is a
    # settle event without one (labels.newest_settle reads events the same way).
    newest = select(func.max(reviews.c.id)).where(reviews.c.action == "settle")
    if article_ids is not None:
        newest = newest.where(reviews.c.article_id.in_(article_ids))
    return select(reviews).where(reviews.c.id.in_(newest.group_by(reviews.c.article_id)),
                                 reviews.c.cocreation.is_not(None))


def _settled_among(conn: Connection, article_ids: list[int]) -> set[int]:
    # The given articles with a settle in force: their final label is fixed, so they are not disputed.
    if not article_ids:
        return set()
    return set(conn.execute(select(_settles_in_force(article_ids).subquery().c.article_id)).scalars())


def _cluster_rows(conn: Connection, ids: list[int]) -> list[dict]:
    # The queue row of each cluster headed by one of `ids`, derived with the rules of labels.py.
    heads = conn.execute(
        select(articles.c.id, articles.c.published, articles.c.created_at)
        .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
        .where(articles.c.id.in_(ids), duplicates.c.article_id.is_(None))).all()
    members: dict[int, list[int]] = {head.id: [] for head in heads}
    for link in conn.execute(select(duplicates.c.article_id, duplicates.c.canonical_id)
                             .where(duplicates.c.canonical_id.in_(ids))):
        members.setdefault(link.canonical_id, []).append(link.article_id)
    scores = _newest_scores(conn, [*members, *(m for ms in members.values() for m in ms)])
    decisions: dict[int, dict[str, ReviewEvent]] = {}
    for review in _current_reviews(conn, list(members)):
        decisions.setdefault(review.article_id, {})[review.analyst] = review
    settled = _settled_among(conn, list(members))
    return [_cluster_row(head, sorted(members[head.id]), scores, decisions.get(head.id, {}), head.id in settled)
            for head in heads]


def _cluster_row(head: Any, copies: list[int], scores: dict[int, Any], decisions: dict, settled: bool = False) -> dict:
    scored = [scores[a] for a in [head.id, *copies] if a in scores]
    shown = scores.get(head.id) or next((scores[a] for a in copies if a in scores), None)
    return dict(cluster_id=head.id, flagged=int(labels.cluster_flagged(bool(p.flagged) for p in scored)),
                score=max([0.0, *(p.cocreation_score for p in scored)]), prediction_id=shown.id if shown else None,
                sector=shown.sector if shown else None, type=shown.type if shown else None,
                date=head.published or head.created_at or "",
                disputed=int(labels.is_disputed(decisions, settled)),
                flagged_articles=sum(bool(p.flagged) for p in scored))


META_COLUMNS = (articles.c.id, articles.c.url, articles.c.outlet, articles.c.title, articles.c.published,
                articles.c.created_at)


def _clusters_by_ids(conn: Connection, ids: list[int]) -> list[Cluster]:
    # The page's clusters in the given order, each with its head, copies and shown prediction.
    if not ids:
        return []
    rows = {r["cluster_id"]: r for r in conn.execute(select(clusters).where(clusters.c.cluster_id.in_(ids))).mappings()}
    missing = [i for i in ids if i not in rows]  # an article written past the store (an old tool, a test)
    rows.update({r["cluster_id"]: r for r in _cluster_rows(conn, missing)} if missing else {})
    heads = {r["id"]: as_record(ArticleMeta, r)
             for r in conn.execute(select(*META_COLUMNS).where(articles.c.id.in_(ids))).mappings()}
    members: dict[int, list[ArticleMeta]] = {}
    query = (select(*META_COLUMNS, duplicates.c.canonical_id).join(duplicates, duplicates.c.article_id == articles.c.id)
             .where(duplicates.c.canonical_id.in_(ids)).order_by(articles.c.id))
    for r in conn.execute(query).mappings():
        members.setdefault(r["canonical_id"], []).append(as_record(ArticleMeta, r))
    shown = [r["prediction_id"] for r in rows.values() if r["prediction_id"]]
    preds = {r["id"]: _prediction(r)
             for r in conn.execute(select(predictions).where(predictions.c.id.in_(shown))).mappings()} if shown else {}
    return [Cluster(i, heads[i], members.get(i, []), preds.get(rows[i]["prediction_id"]), bool(rows[i]["flagged"]),
                    rows[i]["score"]) for i in ids if i in rows and i in heads]
