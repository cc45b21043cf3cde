"""The notebook API: articles with predictions and final review labels as one pandas DataFrame."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from pipeline.codebook import load_codebook
from pipeline.labels import cluster_id_of

STATUSES = ("all", "flagged", "reviewed", "unreviewed")


def database_url(source: str | Path | None = None) -> str:
    """Turn None (the configured default), a file path or a SQLAlchemy URL into a URL."""
    if source is None:
        from pipeline.settings import load_settings
        return load_settings().effective_database_url
    text = str(source)
    return text if "://" in text else f"sqlite:///{Path(text).expanduser().resolve()}"


def load_dataset(source: str | Path | None = None, *, since: str | None = None, status: str = "all",
                 sector: str | None = None, outlet: str | None = None, origin: str | None = None,
                 min_reviews: int | None = None) -> pd.DataFrame:
    """Return articles with metadata, scores, predictions, evidence and final review labels.

    `source` is a database file, a SQLAlchemy URL or None for the configured database; `status`
    is one of all, flagged, reviewed, unreviewed; `sector` filters on the final label when the
    article is reviewed, else on the predicted sector; `origin` is feed, ingest, submission or backfill.
    A final label is one min_reviews analysts agree on, or a settle (unset: as the review app decides, see labels).
    """
    from pipeline.store import Store

    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    store = Store(database_url(source), min_reviews=min_reviews)
    try:
        store.migrate()
        frame = _articles_frame(store)
    finally:
        store.close()
    return _filter(_with_dtypes(frame), since=since, status=status, sector=sector, outlet=outlet,
                   origin=origin)


def _articles_frame(store) -> pd.DataFrame:
    articles = pd.DataFrame([{**asdict(a), "cluster_id": cluster_id_of(a.id, a.canonical_id)} for a in store.articles()])
    if articles.empty:
        return pd.DataFrame(columns=COLUMNS)
    articles = articles.rename(columns={"id": "article_id"})
    predictions = pd.DataFrame([asdict(p) for p in store.latest_predictions()])
    if predictions.empty:
        predictions = pd.DataFrame(columns=["article_id"])
    predictions = predictions.rename(columns={"sector": "predicted_sector", "type": "predicted_type"})
    from pipeline.research.export import submission_notes  # lazy, like the store: export imports the review app's helpers

    final = pd.DataFrame([{"cluster_id": k, "final_cocreation": v.cocreation, "final_sector": v.sector,
                           "final_type": v.type, "borderline": v.borderline, "reviewed_by": v.analyst,
                           "reviewed_at": v.created_at, "lesson": v.lesson} for k, v in store.final_labels().items()],
                         columns=["cluster_id", "final_cocreation", "final_sector", "final_type", "borderline",
                                  "reviewed_by", "reviewed_at", "lesson"])
    notes = pd.DataFrame(list(submission_notes(store).items()), columns=["cluster_id", "submission_note"])
    # A near-duplicate cluster is reviewed once, on its canonical article: its members carry that label
    # (labels.label_for_member), as in `radar export`.
    merged = articles.merge(predictions.drop(columns=["id", "created_at", "run_id"], errors="ignore"),
                            on="article_id", how="left").merge(final, on="cluster_id", how="left")
    merged = merged.merge(notes, on="cluster_id", how="left")
    return merged.reindex(columns=COLUMNS)


COLUMNS = ["article_id", "title", "outlet", "url", "published", "text", "source", "method", "language",
           "cluster_id", "duplicate_kind", "model_version", "codebook_version", "cocreation_score", "rule_score",
           "flagged", "predicted_sector", "sector_scores", "predicted_type", "type_scores", "evidence",
           "final_cocreation", "final_sector", "final_type", "borderline", "reviewed_by", "reviewed_at", "created_at",
           "origin", "provenance", "submission_note", "lesson"]


def _with_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    codebook = load_codebook()
    frame = frame.copy()
    for column in ("published", "reviewed_at", "created_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="mixed")
    for column in ("outlet", "source", "method", "language", "duplicate_kind", "origin"):
        frame[column] = frame[column].astype("category")
    for column in ("predicted_sector", "final_sector"):
        frame[column] = pd.Categorical(frame[column], categories=codebook.sectors)
    for column in ("predicted_type", "final_type"):
        frame[column] = pd.Categorical(frame[column], categories=codebook.types)
    frame["flagged"] = frame["flagged"].astype("boolean")
    frame["final_cocreation"] = frame["final_cocreation"].astype("boolean")
    frame["borderline"] = frame["borderline"].astype("boolean")
    frame["cocreation_score"] = frame["cocreation_score"].astype("float64")
    frame["rule_score"] = frame["rule_score"].astype("float64")
    frame["reviewed"] = frame["final_cocreation"].notna()
    return frame


def _filter(frame: pd.DataFrame, *, since, status, sector, outlet, origin) -> pd.DataFrame:
    if since is not None:
        frame = frame[frame["published"] >= pd.Timestamp(since, tz="UTC")]
    if status == "flagged":
        frame = frame[frame["flagged"].fillna(False)]
    elif status == "reviewed":
        frame = frame[frame["reviewed"]]
    elif status == "unreviewed":
        frame = frame[~frame["reviewed"]]
    if sector is not None:
        label = frame["final_sector"].astype(object).where(frame["reviewed"], frame["predicted_sector"].astype(object))
        frame = frame[label == sector]
    if outlet is not None:
        frame = frame[frame["outlet"] == outlet]
    if origin is not None:
        frame = frame[frame["origin"] == origin]
    return frame.reset_index(drop=True)


def score_texts(texts) -> pd.DataFrame:
    """Score Dutch texts with the shipped models: a list of strings, of dicts, or a DataFrame with `text`."""
    from pipeline.detect.score import Scorer

    if isinstance(texts, pd.DataFrame):
        records = [{"id": idx, "title": row.get("title", "") or "", "text": row["text"]}
                   for idx, row in texts.iterrows()]
    else:
        records = [{"id": i, "title": "", "text": t} if isinstance(t, str) else {"id": i, **t}
                   for i, t in enumerate(texts)]
    scored = pd.DataFrame(Scorer.load().score(records)).set_index("id")
    scored.index.name = None
    return scored
