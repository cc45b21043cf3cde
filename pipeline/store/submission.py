"""Readers' submissions, the public forms' nonces and the public collection's version."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from pipeline.records import Submission
from pipeline.store.base import StorePart, _chunks, as_record, inserted_id, now_iso
from pipeline.store.cluster import _canonical_of, _mark_submitted, _submitted_clusters
from pipeline.store.schema import articles, clusters, duplicates, form_nonces, items, predictions, reviews, submissions


class SubmissionStore(StorePart):
    """Readers' submissions and what the public pages need of the store."""

    # -- submissions and the public collection (issue 12) --
    def add_submission(self, url: str, note: str, name: str = "", email: str = "", ip_hash: str = "") -> int:
        """Queue a reader's submission for the next run; return its id."""
        with self.engine.begin() as conn:
            return inserted_id(conn.execute(insert(submissions).values(
                url=url, note=note, name=name, email=email, ip_hash=ip_hash, created_at=now_iso(), status="queued",
                reason="", attempts=0)))

    def use_form_nonce(self, nonce: str, expires_at: str) -> bool:
        """Record a public form's nonce as used; False when it was used before (the form is being replayed).

        Nonces are kept until `expires_at` (ISO time), when the signed form would be refused as stale anyway;
        older ones are removed here, so the table holds at most a day of posts.
        """
        with self.engine.begin() as conn:
            conn.execute(delete(form_nonces).where(form_nonces.c.expires_at < now_iso()))
        try:
            with self.engine.begin() as conn:  # its own transaction: a refused insert leaves nothing half done
                conn.execute(insert(form_nonces).values(nonce=nonce, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def count_submissions_since(self, since: str, ip_hash: str | None = None) -> int:
        """Count the submissions made at or after `since` (ISO time), from one address hash when given."""
        query = select(func.count()).select_from(submissions).where(submissions.c.created_at >= since)
        if ip_hash is not None:
            query = query.where(submissions.c.ip_hash == ip_hash)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def due_submissions(self, max_attempts: int) -> list[Submission]:
        """Return the submissions still to fetch: queued, or failed fewer than max_attempts times; oldest first."""
        s = submissions.c
        query = select(submissions).where(or_(s.status == "queued", and_(s.status == "failed",
                                                                         s.attempts < max_attempts)))
        with self.engine.connect() as conn:
            return [as_record(Submission, row) for row in conn.execute(query.order_by(s.id)).mappings()]

    def finish_submission(self, submission_id: int, status: str, reason: str = "",
                          article_id: int | None = None) -> None:
        """Record a submission's outcome; one with an article marks that article's cluster as submitted."""
        with self.engine.begin() as conn:
            conn.execute(update(submissions).where(submissions.c.id == submission_id).values(
                status=status, reason=reason[:2000], article_id=article_id, attempts=submissions.c.attempts + 1,
                processed_at=now_iso()))
            if article_id is not None:
                _mark_submitted(conn, {_canonical_of(conn, article_id)})

    def submission(self, submission_id: int) -> Submission | None:
        """Return one submission, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(submissions).where(submissions.c.id == submission_id)).mappings().first()
        return as_record(Submission, row) if row else None

    def list_submissions(self, status: str | None = None) -> list[Submission]:
        """Return every submission (of one status when given), newest first."""
        query = select(submissions).order_by(submissions.c.id.desc())
        if status is not None:
            query = query.where(submissions.c.status == status)
        with self.engine.connect() as conn:
            return [as_record(Submission, row) for row in conn.execute(query).mappings()]

    def delete_submission(self, submission_id: int) -> bool:
        """Delete a submission (a request to be forgotten); its cluster keeps the mark only if others remain."""
        with self.engine.begin() as conn:
            article_id = conn.execute(select(submissions.c.article_id)
                                      .where(submissions.c.id == submission_id)).first()
            if article_id is None:
                return False
            conn.execute(delete(submissions).where(submissions.c.id == submission_id))
            if article_id[0] is not None:
                cluster_id = _canonical_of(conn, article_id[0])
                conn.execute(update(clusters).where(clusters.c.cluster_id == cluster_id)
                             .values(submitted=int(cluster_id in _submitted_clusters(conn, [cluster_id]))))
        return True

    def purge_submission_personal(self, before: str) -> int:
        """Blank name, e-mail and address hash of submissions made before `before` (ISO time); return how many."""
        s = submissions.c
        personal = or_(s.name != "", s.email != "", s.ip_hash != "")
        with self.engine.begin() as conn:
            result = conn.execute(update(submissions).where(s.created_at < before, personal)
                                  .values(name="", email="", ip_hash=""))
        return result.rowcount

    def submissions_of_clusters(self, cluster_ids: Iterable[int] | None) -> dict[int, list[Submission]]:
        """Return the submissions that joined or made an article of each given cluster (of all: None), oldest first."""
        head = func.coalesce(duplicates.c.canonical_id, submissions.c.article_id).label("cluster_id")
        result: dict[int, list[Submission]] = {}
        with self.engine.connect() as conn:
            for chunk in [None] if cluster_ids is None else _chunks(cluster_ids):
                query = (select(submissions, head)
                         .join(duplicates, duplicates.c.article_id == submissions.c.article_id, isouter=True)
                         .where(head.is_not(None) if chunk is None else head.in_(chunk)).order_by(submissions.c.id))
                for row in conn.execute(query).mappings():
                    result.setdefault(row["cluster_id"], []).append(as_record(Submission, row))
        return result

    def submission_item(self, url: str, canonical_url: str, title: str) -> int:
        """Return the item a fetched submission's raw page is kept under, making one (done, no feed) if needed.

        Through the item a feed that later lists the same link sees it as known, and the page can be
        re-extracted from its raw bytes like any feed article.
        """
        with self.engine.begin() as conn:
            found = conn.execute(select(items.c.id).where(items.c.canonical_url == canonical_url)).scalar()
            if found is not None:
                return found
            return inserted_id(conn.execute(insert(items).values(
                canonical_url=canonical_url, url=url, feed_id=None, title=title, summary="", published=None,
                author="", categories="[]", status="done", updated_at=now_iso())))

    def collection_version(self) -> tuple[int, int, int, int]:
        """Return the newest review, prediction, article and duplicate ids: the public pages change only with these."""
        with self.engine.connect() as conn:
            review, prediction, article = (conn.execute(select(func.max(t.c.id))).scalar() or 0
                                           for t in (reviews, predictions, articles))
            linked = conn.execute(select(func.count()).select_from(duplicates)).scalar_one()
        return review, prediction, article, linked

    def is_submitted_cluster(self, cluster_id: int) -> bool:
        """Tell whether a reader submitted an article of this cluster."""
        query = select(clusters.c.submitted).where(clusters.c.cluster_id == cluster_id)
        with self.engine.connect() as conn:
            return bool(conn.execute(query).scalar())
