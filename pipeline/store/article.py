"""Articles, their predictions and scoring failures, and the re-signing of stored articles."""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from pipeline.chars import has_forbidden, xml_safe
from pipeline.records import Article, Cluster, Prediction, Response, StoredArticle
from pipeline.store.base import StorePart, BATCH, _chunks, as_record, inserted_id, now_iso
from pipeline.store.cluster import _canonical_of, _clusters_by_ids, _newest_predictions, _prediction
from pipeline.store.schema import (
    articles, clusters, duplicates, items, pages, predictions, scoring_failures, signatures
)
from pipeline.text import cap_article


class ArticleStore(StorePart):
    """Articles with their duplicate links and signatures, predictions and scoring failures."""

    # -- articles -----------------------------------------------------------
    def save_article(
        self, article: Article, *, run_id: int | None, item_id: int | None = None,
        response: Response | None = None, duplicate: tuple[int, str, float] | None = None,
        minhash: bytes | None = None,
    ) -> int:
        """Store an article (text capped) with its raw page, duplicate link and signature in one transaction."""
        # Every path that stores an article (run, ingest, submissions, backfill) comes here, so no text outgrows
        # the scorer and none carries a character that would break the pages and feeds it appears in.
        article = _xml_safe_article(cap_article(article, self.max_text_chars))
        with self.engine.begin() as conn:
            if response is not None and item_id is not None:
                conn.execute(insert(pages).values(
                    item_id=item_id, url=response.url, final_url=response.final_url, status_code=response.status,
                    content_type=response.content_type, body_zlib=zlib.compress(response.body, 6),
                    fetched_at=now_iso(),
                ))
            article_id = _insert_article(conn, article, item_id, run_id, duplicate, minhash)
            if item_id is not None:
                conn.execute(update(items).where(items.c.id == item_id).values(
                    status="done", last_error=None, attempts=items.c.attempts + 1, updated_at=now_iso()))
        return article_id

    def find_article(self, *, canonical_url: str | None = None, content_hash: str | None = None,
                     source: str | None = None, external_id: str | None = None) -> int | None:
        """Return the id of the first article matching one of the given keys."""
        clauses = []
        if canonical_url:
            clauses.append(articles.c.canonical_url == canonical_url)
        if content_hash:
            clauses.append(articles.c.content_hash == content_hash)
        if source and external_id:
            clauses.append((articles.c.source == source) & (articles.c.external_id == external_id))
        if not clauses:
            return None
        cond = clauses[0]
        for clause in clauses[1:]:
            cond = cond | clause
        with self.engine.connect() as conn:
            return conn.execute(select(articles.c.id).where(cond).order_by(articles.c.id).limit(1)).scalar()

    def cluster_of_content(self, content_hash: str) -> int | None:
        """Return the cluster of the first stored article with this content hash, or None (dedupe's exact candidate)."""
        same = self.find_article(content_hash=content_hash)
        return self.canonical_of(same) if same is not None else None

    def canonical_of(self, article_id: int) -> int:
        """Return the canonical member of the article's duplicate cluster."""
        with self.engine.connect() as conn:
            return _canonical_of(conn, article_id)

    def content_hash_of(self, article_id: int) -> str | None:
        """Return the content hash of an article's text (None when there is no such article)."""
        with self.engine.connect() as conn:
            return conn.execute(select(articles.c.content_hash).where(articles.c.id == article_id)).scalar()

    def signatures_of_canonicals(self) -> list[tuple[int, bytes]]:
        """Return the MinHash signatures of articles that head their own cluster."""
        query = (
            select(signatures.c.article_id, signatures.c.minhash)
            .where(signatures.c.article_id.not_in(select(duplicates.c.article_id)))
        )
        with self.engine.connect() as conn:
            return [(row.article_id, row.minhash) for row in conn.execute(query)]

    def articles(self) -> list[StoredArticle]:
        """Return all articles with their cluster's canonical id, oldest first."""
        return list(self.iter_articles())

    def iter_articles(self, cluster_ids: Iterable[int] | None = None) -> Iterator[StoredArticle]:
        """Yield the articles oldest first, a batch at a time, so a reader of a million keeps little in memory.

        With cluster_ids, only the articles of those clusters (heads and copies), a batch of clusters at a time.
        """
        if cluster_ids is not None:
            yield from self._iter_cluster_articles(cluster_ids)
            return
        query = (
            select(articles, duplicates.c.canonical_id, duplicates.c.kind.label("duplicate_kind"))
            .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
            .order_by(articles.c.id).limit(BATCH)
        )
        last = 0
        while True:  # keyset batches: each is an indexed range read, no long-lived cursor holds the database
            with self.engine.connect() as conn:
                rows = conn.execute(query.where(articles.c.id > last)).mappings().all()
            if not rows:
                return
            last = rows[-1]["id"]
            yield from (as_record(StoredArticle, row) for row in rows)

    def _iter_cluster_articles(self, cluster_ids: Iterable[int]) -> Iterator[StoredArticle]:
        query = (select(articles, duplicates.c.canonical_id, duplicates.c.kind.label("duplicate_kind"))
                 .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True))
        for chunk in _chunks(sorted(cluster_ids)):
            # Heads by id, copies by their canonical id: two index reads (an OR across the join would scan).
            with self.engine.connect() as conn:
                rows = [*conn.execute(query.where(articles.c.id.in_(chunk))).mappings(),
                        *conn.execute(query.where(duplicates.c.canonical_id.in_(chunk))).mappings()]
            yield from sorted((as_record(StoredArticle, row) for row in rows), key=lambda a: a.id)

    def iter_articles_with_predictions(self, cluster_ids: Iterable[int] | None = None,
                                       ) -> Iterator[tuple[StoredArticle, Prediction | None]]:
        """Yield every article (of the given clusters) with its newest prediction (None when unscored), a batch at a time."""
        batch: list[StoredArticle] = []
        for art in self.iter_articles(cluster_ids):
            batch.append(art)
            if len(batch) == BATCH:
                yield from self._with_predictions(batch)
                batch = []
        yield from self._with_predictions(batch)

    def _with_predictions(self, batch: list[StoredArticle]) -> Iterator[tuple[StoredArticle, Prediction | None]]:
        preds = self.newest_predictions(a.id for a in batch) if batch else {}
        return ((a, preds.get(a.id)) for a in batch)

    def flagged_cluster_ids(self) -> set[int]:
        """Return the ids of the flagged clusters (any copy's newest prediction is flagged)."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(clusters.c.cluster_id).where(clusters.c.flagged == 1)).scalars())

    def unscored_articles(self, model_version: str, limit: int | None = None) -> list[dict]:
        """Return articles that have no prediction from this model version yet and did not fail with it."""
        scored = select(predictions.c.article_id).where(predictions.c.model_version == model_version)
        failed = select(scoring_failures.c.article_id).where(scoring_failures.c.model_version == model_version)
        query = (select(articles.c.id, articles.c.title, articles.c.text)
                 .where(articles.c.id.not_in(scored), articles.c.id.not_in(failed)).order_by(articles.c.id))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def save_predictions(self, rows: list[dict], run_id: int | None) -> None:
        """Store a batch of predictions in one transaction."""
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(predictions), _prediction_rows(rows, run_id))
            touched = {row["article_id"] for row in rows}
            self._refresh_clusters(conn, self._clusters_of(conn, touched))

    def record_scoring_failure(self, article_id: int, model_version: str, reason: str,
                               run_id: int | None = None) -> None:
        """Record that this model version could not score an article, so later runs skip it."""
        with self.engine.begin() as conn:
            conn.execute(insert(scoring_failures).values(
                article_id=article_id, model_version=model_version, run_id=run_id, reason=reason[:2000],
                created_at=now_iso()))

    def scoring_failures(self, model_version: str | None = None) -> list[dict]:
        """Return the recorded scoring failures (of one model version when given), oldest first."""
        query = select(scoring_failures).order_by(scoring_failures.c.id)
        if model_version is not None:
            query = query.where(scoring_failures.c.model_version == model_version)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def latest_predictions(self) -> list[Prediction]:
        """Return each article's newest prediction with its JSON fields decoded."""
        newest = select(func.max(predictions.c.id)).group_by(predictions.c.article_id)
        query = select(predictions).where(predictions.c.id.in_(newest)).order_by(predictions.c.article_id)
        with self.engine.connect() as conn:
            return [_prediction(row) for row in conn.execute(query).mappings()]

    def newest_predictions(self, article_ids: Iterable[int]) -> dict[int, Prediction]:
        """Return the newest prediction of each given article that has one (an indexed read per batch)."""
        with self.engine.connect() as conn:
            return _newest_predictions(conn, article_ids)

    def newest_prediction(self, article_id: int) -> Prediction | None:
        """Return the newest prediction of one article, or None."""
        return self.newest_predictions([article_id]).get(article_id)

    def article_texts(self, article_ids: Iterable[int]) -> dict[int, str]:
        """Return the texts of the given articles (a queue page's few, for their snippets)."""
        with self.engine.connect() as conn:
            return {row.id: row.text for chunk in _chunks(article_ids)
                    for row in conn.execute(select(articles.c.id, articles.c.text).where(articles.c.id.in_(chunk)))}

    def cluster_of(self, article_id: int) -> Cluster | None:
        """Return the duplicate cluster an article belongs to, with its members and prediction, or None."""
        with self.engine.connect() as conn:
            found = _clusters_by_ids(conn, [_canonical_of(conn, article_id)])
        return found[0] if found else None

    def article(self, article_id: int) -> StoredArticle | None:
        """Return one article with its text and cluster link, or None."""
        query = (select(articles, duplicates.c.canonical_id, duplicates.c.kind.label("duplicate_kind"))
                 .join(duplicates, duplicates.c.article_id == articles.c.id, isouter=True)
                 .where(articles.c.id == article_id))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return as_record(StoredArticle, row) if row else None

    def article_titles(self, article_ids: Iterable[int]) -> dict[int, str]:
        """Return the titles of the given articles."""
        with self.engine.connect() as conn:
            return {row.id: row.title for chunk in _chunks(article_ids)
                    for row in conn.execute(select(articles.c.id, articles.c.title).where(articles.c.id.in_(chunk)))}

    def _resign_articles(self, conn: Connection) -> int:
        # Signatures of another algorithm never match new ones: every near-duplicate would be missed after
        # the upgrade. The stored text is the capped text that dedupe signed (nightly and backfill cap first).
        from pipeline.signatures import minhash_of, signature_bytes  # lazy: numpy and the MinHash libraries are heavy to import

        count, last = 0, 0
        signed = select(signatures.c.article_id, articles.c.text).join(articles, articles.c.id == signatures.c.article_id)
        resign = update(signatures).where(signatures.c.article_id == bindparam("aid")).values(minhash=bindparam("sig"))
        while rows := conn.execute(signed.where(signatures.c.article_id > last)
                                   .order_by(signatures.c.article_id).limit(BATCH)).all():
            new = {row.article_id: minhash_of(row.text) for row in rows}
            if signed_now := [{"aid": a, "sig": signature_bytes(sig)} for a, sig in new.items() if sig is not None]:
                conn.execute(resign, signed_now)
            if too_short := [a for a, sig in new.items() if sig is None]:  # as a new article of that text would be
                conn.execute(signatures.delete().where(signatures.c.article_id.in_(too_short)))
            count, last = count + len(rows), rows[-1][0]
        return count


def _xml_safe_article(article: Article) -> Article:
    # URLs are left as they are: they are the article's identity, and outputs link only what safe_href passes.
    fields = ("title", "text", "outlet", "author", "sitename")
    # Any: the names are picked at run time, so mypy cannot pair them with the fields' types (all are str).
    changed: dict[str, Any] = {name: xml_safe(getattr(article, name)) for name in fields
               if has_forbidden(getattr(article, name) or "")}
    return dataclasses.replace(article, **changed) if changed else article


def _article_row(article: Article, item_id: int | None, run_id: int | None) -> dict:
    return dict(
        item_id=item_id, source=article.source, external_id=article.external_id, url=article.url or None,
        canonical_url=article.canonical_url or None, outlet=article.outlet, title=article.title,
        author=article.author, published=article.date, sitename=article.sitename,
        categories=json.dumps(list(article.categories), ensure_ascii=False), language=article.language,
        text=article.text, text_truncated_from=article.truncated_from, content_hash=article.content_hash,
        method=article.method, run_id=run_id, created_at=now_iso(),
        origin=article.origin or ("feed" if article.source == "feed" else "ingest"), provenance=article.provenance,
    )


def _insert_article(conn: Connection, article: Article, item_id: int | None, run_id: int | None,
                    duplicate: tuple[int, str, float] | None, minhash: bytes | None) -> int:
    # The rows of one stored article: itself, its duplicate link or its cluster row, its signature.
    row = _article_row(article, item_id, run_id)
    article_id = inserted_id(conn.execute(insert(articles).values(**row)))
    if duplicate is not None:
        canonical_id, kind, similarity = duplicate
        conn.execute(insert(duplicates).values(
            article_id=article_id, canonical_id=canonical_id, kind=kind, similarity=similarity))
    else:  # a new cluster head: its queue row, unflagged until a prediction says otherwise
        conn.execute(insert(clusters).values(cluster_id=article_id, flagged=0, score=0.0,
                                             date=row["published"] or row["created_at"], disputed=0))
    if minhash is not None:
        conn.execute(insert(signatures).values(article_id=article_id, minhash=minhash))
    return article_id


def _prediction_rows(rows: list[dict], run_id: int | None) -> list[dict]:
    now = now_iso()
    return [{**row, "run_id": run_id, "created_at": now, "flagged": int(row["flagged"]),
             "sector_scores": json.dumps(row["sector_scores"]), "type_scores": json.dumps(row["type_scores"]),
             "evidence": json.dumps(row["evidence"], ensure_ascii=False)} for row in rows]
