"""The review queue: paged, filtered and searched in SQL on the cluster table."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Integer, and_, case, exists, false, func, or_, select, text, union
from sqlalchemy.engine import Connection

from pipeline.records import Cluster, QueueFilters, QueueMarks, QueuePlace
from pipeline.store.base import StorePart, _chunks
from pipeline.store.cluster import _clusters_by_ids, queued_cluster
from pipeline.store.schema import (
    SEARCH_TABLE, SEARCH_VECTOR, articles, clusters, duplicates, predictions, reviews, skips
)


class QueueStore(StorePart):
    """The review queue: pages, sizes, places and progress of the flagged clusters."""

    # -- the review queue: paged and filtered in SQL on the cluster table ---------------------------------
    def review_queue(self, analyst: str, filters: QueueFilters, threshold: float, *, limit: int = 50,
                     offset: int = 0) -> list[Cluster]:
        """Return one page of the flagged clusters that pass the filters, in the requested order."""
        where = _queue_where(analyst, filters, self.engine.dialect.name)
        with self.engine.connect() as conn:
            if filters.order == "uncertain":
                ids = _uncertain_ids(conn, where, threshold, limit, offset)
            else:
                query = select(clusters.c.cluster_id).where(*where).order_by(*_QUEUE_ORDER[filters.order])
                ids = list(conn.execute(query.limit(limit).offset(offset)).scalars())
            return _clusters_by_ids(conn, ids)

    def queue_size(self, analyst: str, filters: QueueFilters) -> int:
        """Return how many flagged clusters pass the filters."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(clusters)
                                .where(*_queue_where(analyst, filters, self.engine.dialect.name))).scalar_one()

    def queue_place(self, analyst: str, filters: QueueFilters, threshold: float, cluster_id: int, *,
                    counted: bool = True) -> QueuePlace:
        """Return a cluster's neighbours and position in the filtered queue (the first entry when it is not in it).

        With counted=False the position is left empty: a decision only needs the next cluster, not two counts.
        """
        where, key = _queue_where(analyst, filters, self.engine.dialect.name), _sort_key(filters.order, threshold)
        count = select(func.count()).select_from(clusters)
        with self.engine.connect() as conn:
            row = conn.execute(select(clusters.c.cluster_id, clusters.c.score, clusters.c.date)
                               .where(clusters.c.cluster_id == cluster_id, *where)).first()
            total = conn.execute(count.where(*where)).scalar_one() if counted else 0
            if row is None:
                first = _first_id(conn, where, key, ascending=True)
                return QueuePlace(None, first, f"{total} left" if counted else "")
            before = _before(key, row, threshold, filters.order)
            prev_id = _first_id(conn, [*where, before], key, ascending=False)
            next_id = _first_id(conn, [*where, _after(key, row, threshold, filters.order)], key, ascending=True)
            ahead = conn.execute(count.where(*where, before)).scalar_one() if counted else 0
        return QueuePlace(prev_id, next_id, f"{ahead + 1} of {total}" if counted else "")

    def queue_cluster_ids(self, analyst: str, filters: QueueFilters) -> list[int]:
        """Return the ids of every cluster that passes the queue's filters (an export of the filter selects them)."""
        where = _queue_where(analyst, filters, self.engine.dialect.name)
        with self.engine.connect() as conn:
            return list(conn.execute(select(clusters.c.cluster_id).where(*where).order_by(clusters.c.cluster_id))
                        .scalars())

    def queue_outlets(self) -> list[str]:
        """Return the outlets that carry an article of a flagged cluster, sorted (one query, however many outlets)."""
        with self.engine.connect() as conn:
            return list(conn.execute(_FLAGGED_OUTLETS).scalars())

    def queue_marks(self, analyst: str, cluster_ids: Iterable[int]) -> QueueMarks:
        """Return which of a page's clusters a reader submitted and which the analyst parked, in one read a page."""
        submitted: set[int] = set()
        skipped: set[int] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(cluster_ids):
                query = (select(clusters.c.cluster_id, clusters.c.submitted, _is_skipped(analyst).label("skipped"))
                         .where(clusters.c.cluster_id.in_(chunk)))
                for row in conn.execute(query):
                    submitted |= {row.cluster_id} if row.submitted else set()
                    skipped |= {row.cluster_id} if row.skipped else set()
        return QueueMarks(frozenset(submitted), frozenset(skipped))

    def review_progress(self, analyst: str, today: str) -> dict:
        """Count the analyst's reviewed and remaining queued stories, on `today` (ISO date) and overall.

        Queued is what the queue shows: flagged clusters and those a reader submitted, whatever their score.
        """
        newest = (select(reviews.c.article_id, func.max(reviews.c.id).label("last"))
                  .where(reviews.c.analyst == analyst, reviews.c.action != "settle")
                  .group_by(reviews.c.article_id).subquery())
        today_case = func.sum(case((func.substr(reviews.c.created_at, 1, 10) == today, 1), else_=0))
        mine = (select(func.count().label("reviewed"), today_case.label("today"))
                .select_from(newest.join(reviews, reviews.c.id == newest.c.last)
                             .join(clusters, clusters.c.cluster_id == newest.c.article_id))
                .where(reviews.c.cocreation.is_not(None), queued_cluster()))
        # From the analyst's few parked rows, not from every queued cluster.
        parked = (select(func.count()).select_from(skips.join(clusters, clusters.c.cluster_id == skips.c.cluster_id))
                  .where(skips.c.analyst == analyst, queued_cluster(), ~_has_decision(analyst)))
        with self.engine.connect() as conn:
            flagged, flagged_articles = _flagged_counts(conn)
            queued, submitted = _queued_counts(conn)
            # Rows read by label: unpacking a Row of unknown width types its values as object.
            mine_row = conn.execute(mine).one()
            reviewed, reviewed_today = int(mine_row.reviewed), mine_row.today
            skipped = conn.execute(parked).scalar_one()
        return {"flagged": flagged, "flagged_articles": flagged_articles, "queued": queued, "submitted": submitted,
                "reviewed": reviewed, "remaining": queued - reviewed, "skipped": skipped,
                "reviewed_today": reviewed_today or 0}

    def queued_counts(self) -> tuple[int, int]:
        """Return (stories in the queue, those among them readers sent in that the model did not flag)."""
        with self.engine.connect() as conn:
            return _queued_counts(conn)

    def flagged_counts(self, run_id: int | None = None) -> tuple[int, int]:
        """Return (stories, articles) flagged: in the queue now, or by the predictions of one run.

        A story is a near-duplicate cluster; it is flagged when one of its articles is (labels.py).
        """
        with self.engine.connect() as conn:
            if run_id is None:
                return _flagged_counts(conn)
            story = func.coalesce(duplicates.c.canonical_id, predictions.c.article_id)
            query = (select(func.count(func.distinct(story)), func.count(func.distinct(predictions.c.article_id)))
                     .select_from(predictions.join(duplicates, duplicates.c.article_id == predictions.c.article_id,
                                                   isouter=True))
                     .where(predictions.c.run_id == run_id, predictions.c.flagged == 1))
            stories, flagged_articles = conn.execute(query).one()
            return stories, flagged_articles


def _has_decision(analyst: str):
    # The analyst has a current decision on the cluster: a non-settle event of theirs with a label that no
    # later non-settle event of theirs replaced. Written as EXISTS so PostgreSQL can hash-join it.
    mine, newer = reviews.alias("mine"), reviews.alias("newer")
    replaced = exists().where(newer.c.article_id == mine.c.article_id, newer.c.analyst == mine.c.analyst,
                              newer.c.action != "settle", newer.c.id > mine.c.id)
    return exists().where(mine.c.article_id == clusters.c.cluster_id, mine.c.analyst == analyst,
                          mine.c.action != "settle", mine.c.cocreation.is_not(None), ~replaced)


def _has_outlet(outlet: str):
    copy = articles.alias("copy")
    return or_(exists().where(articles.c.id == clusters.c.cluster_id, articles.c.outlet == outlet),
               exists().where(duplicates.c.canonical_id == clusters.c.cluster_id, copy.c.id == duplicates.c.article_id,
                              copy.c.outlet == outlet))


def _is_skipped(analyst: str):
    return exists().where(skips.c.cluster_id == clusters.c.cluster_id, skips.c.analyst == analyst)


MAX_SEARCH_WORDS = 12  # more words than this narrow nothing further and only lengthen the query


def search_words(search: str) -> list[str]:
    """Return the words of a typed search: letters and digits only, so no input is query syntax."""
    return re.findall(r"[^\W_]+", search)[:MAX_SEARCH_WORDS]


def _search_matches(dialect: str, words: list[str]):
    # The clusters with an article (head or copy) whose title or text holds every word, each as a prefix
    # ("zorg" finds "zorgpad": Dutch compounds). PostgreSQL also stems the words the Dutch way.
    if dialect == "postgresql":
        query = " & ".join(f"{w}:*" for w in words)
        sql = (f"SELECT COALESCE(d.canonical_id, a.id) AS cluster_id FROM articles a LEFT JOIN duplicates d "
               f"ON d.article_id = a.id WHERE {SEARCH_VECTOR} @@ to_tsquery('dutch', :search_query)")
    else:
        query = " ".join(f'"{w}"*' for w in words)
        sql = (f"SELECT COALESCE(d.canonical_id, f.rowid) AS cluster_id FROM {SEARCH_TABLE} f LEFT JOIN duplicates d "
               f"ON d.article_id = f.rowid WHERE {SEARCH_TABLE} MATCH :search_query")
    return text(sql).bindparams(search_query=query).columns(cluster_id=Integer)


def _queue_where(analyst: str, f: QueueFilters, dialect: str = "sqlite") -> list:
    c = clusters.c
    where = [queued_cluster()]  # a reader's submission is queued whatever its score
    if f.origin == "submission":
        where.append(c.submitted == 1)
    if f.search:
        words = search_words(f.search)
        where.append(c.cluster_id.in_(_search_matches(dialect, words)) if words else false())
    if f.sector:
        where.append(c.sector == f.sector)
    if f.type:
        where.append(c.type == f.type)
    if f.outlet:
        where.append(_has_outlet(f.outlet))
    if f.date_from:
        where += [c.date != "", func.substr(c.date, 1, 10) >= f.date_from]
    if f.date_to:
        where += [c.date != "", func.substr(c.date, 1, 10) <= f.date_to]
    if f.status == "todo":
        where += [~_has_decision(analyst), ~_is_skipped(analyst)]
    elif f.status == "skipped":
        where += [_is_skipped(analyst), ~_has_decision(analyst)]
    elif f.status == "mine":
        where.append(_has_decision(analyst))
    elif f.status == "disputed":
        where.append(c.disputed == 1)
    return where


_QUEUE_ORDER = {"score": (clusters.c.score.desc(), clusters.c.cluster_id.desc()),
                "newest": (clusters.c.date.desc(), clusters.c.cluster_id.desc())}


def _uncertain_ids(conn: Connection, where: list, threshold: float, limit: int, offset: int) -> list[int]:
    # "Most uncertain" is closest to the threshold: the nearest above and the nearest below, each an index
    # range read, merged; the first offset + limit of both hold the page.
    c, wanted = clusters.c, offset + limit
    above = conn.execute(select(c.cluster_id, c.score).where(*where, c.score >= threshold)
                         .order_by(c.score, c.cluster_id).limit(wanted)).all()
    below = conn.execute(select(c.cluster_id, c.score).where(*where, c.score < threshold)
                         .order_by(c.score.desc(), c.cluster_id).limit(wanted)).all()
    merged = sorted([*above, *below], key=lambda r: (abs(r.score - threshold), r.cluster_id))
    return [r.cluster_id for r in merged[offset:wanted]]


def _sort_key(order: str, threshold: float) -> tuple[Any, bool]:
    # (expression, descending) of the queue order; the cluster id breaks ties in the same direction.
    if order == "uncertain":
        return func.abs(clusters.c.score - threshold), False
    return (clusters.c.date, True) if order == "newest" else (clusters.c.score, True)


def _key_value(order: str, row: Any, threshold: float) -> Any:
    if order == "uncertain":
        return abs(row.score - threshold)
    return row.date if order == "newest" else row.score


def _before(key: tuple[Any, bool], row: Any, threshold: float, order: str):
    expr, descending = key
    value, cid = _key_value(order, row, threshold), clusters.c.cluster_id
    if descending:  # written as a range plus a tie-break so the index serves it
        return and_(expr >= value, or_(expr > value, cid > row.cluster_id))
    return and_(expr <= value, or_(expr < value, cid < row.cluster_id))


def _after(key: tuple[Any, bool], row: Any, threshold: float, order: str):
    expr, descending = key
    value, cid = _key_value(order, row, threshold), clusters.c.cluster_id
    if descending:
        return and_(expr <= value, or_(expr < value, cid < row.cluster_id))
    return and_(expr >= value, or_(expr > value, cid > row.cluster_id))


def _first_id(conn: Connection, where: list, key: tuple[Any, bool], *, ascending: bool) -> int | None:
    # The first cluster in queue order (ascending) or the last (not ascending) among those matching `where`.
    expr, descending = key
    forward = descending != ascending
    order = (expr.asc(), clusters.c.cluster_id.asc()) if forward else (expr.desc(), clusters.c.cluster_id.desc())
    return conn.execute(select(clusters.c.cluster_id).where(*where).order_by(*order).limit(1)).scalar()


def _queued_counts(conn: Connection) -> tuple[int, int]:
    # Stories in the queue, and those among them a reader submitted without the model flagging them.
    query = select(func.count().label("queued"),
                   func.coalesce(func.sum(case((clusters.c.flagged == 0, 1), else_=0)), 0).label("submitted_only"))
    row = conn.execute(query.where(queued_cluster())).one()
    return int(row.queued), int(row.submitted_only)


def _flagged_counts(conn: Connection) -> tuple[int, int]:
    # Stories (flagged clusters) and their articles with a flagged newest prediction: one indexed range read.
    query = (select(func.count().label("stories"),
                    func.coalesce(func.sum(clusters.c.flagged_articles), 0).label("flagged_articles"))
             .where(clusters.c.flagged == 1))
    row = conn.execute(query).one()
    return int(row.stories), int(row.flagged_articles)


def _flagged_outlets():
    # The outlets of the flagged clusters' heads and copies, read from the flagged clusters (an index range)
    # in one statement: a query per outlet made the queue page's statements grow with the outlets stored.
    copy = articles.alias("copy")
    heads = (select(articles.c.outlet).join(clusters, clusters.c.cluster_id == articles.c.id)
             .where(clusters.c.flagged == 1))
    copies = (select(copy.c.outlet).select_from(clusters.join(duplicates, duplicates.c.canonical_id
                                                              == clusters.c.cluster_id)
                                                .join(copy, copy.c.id == duplicates.c.article_id))
              .where(clusters.c.flagged == 1))
    outlets = union(heads, copies).subquery()
    return select(outlets.c.outlet).where(outlets.c.outlet.is_not(None)).order_by(outlets.c.outlet)


_FLAGGED_OUTLETS = _flagged_outlets()
