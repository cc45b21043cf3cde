"""The reviewed dataset as JSONL, CSV or Parquet (the digest of accepted examples is pipeline/public/digest.py)."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta, UTC
from pathlib import Path
from typing import BinaryIO

from pipeline import labels
from pipeline.errors import ConfigError
from pipeline.records import FinalLabel, Prediction, StoredArticle
from pipeline.highlight import best_quote
from pipeline.store import Store

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet")
STATUSES = ("reviewed", "flagged", "all")
# The export's columns, in order. They are a published interface (README): add, never rename.
COLUMNS: dict[str, str] = {
    "article_id": "int", "cluster_id": "int", "is_canonical": "bool", "label_from_cluster": "bool",
    "url": "str", "outlet": "str", "title": "str", "author": "str", "published": "str", "language": "str",
    "text": "str",
    "flagged": "bool", "score": "float", "rule_score": "float", "predicted_sector": "str",
    "predicted_type": "str", "prediction_model_version": "str",
    "cocreation": "bool", "sector": "str", "type": "str", "borderline": "bool", "note": "str",
    "evidence_quote": "str", "label_source": "str", "analysts": "str", "settled_by": "str",
    "reviewed_at": "str", "review_model_version": "str", "codebook_version": "str",
    "origin": "str", "provenance": "str",
    "submission_note": "str", "lesson": "str", "private": "bool",
}
# The columns that come from the analysts' decisions: what blind review hides from an analyst who has not
# decided the article (pipeline/review/blind.py) when the review app's queue is downloaded.
REVIEW_COLUMNS = ("cocreation", "sector", "type", "borderline", "note", "label_source", "analysts", "settled_by",
                  "reviewed_at", "review_model_version", "codebook_version", "lesson", "private")


def parse_since(text: str | None, today: date | None = None) -> str | None:
    """Turn '7d', '2w' or an ISO date into an ISO date string (None passes through)."""
    if not text:
        return None
    today = today or datetime.now(UTC).date()
    match = re.fullmatch(r"(\d+)([dw])", text.strip())
    if match:
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        return (today - timedelta(days=days)).isoformat()
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ConfigError(f"--since {text!r}: give a date (2026-03-01) or a span such as 7d or 2w") from None


def final_provenance(store: Store) -> dict[int, FinalLabel]:
    """Return per labelled article its final label with analysts, settler and time of decision (labels.py)."""
    return store.final_labels()


def export_rows(store: Store, status: str = "reviewed", since: str | None = None,
                cluster_ids: Iterable[int] | None = None) -> list[dict]:
    """Return one row per article (labels of a cluster copied to its members), in COLUMNS order."""
    return list(iter_export_rows(store, status, since, cluster_ids))


def iter_export_rows(store: Store, status: str = "reviewed", since: str | None = None,
                     cluster_ids: Iterable[int] | None = None) -> Iterator[dict]:
    """Yield the export rows a batch of articles at a time, so memory stays flat however many articles there are.

    cluster_ids limits the export to those clusters' articles: the review queue's current filter exports
    through here with the ids that Store.queue_cluster_ids selected in SQL.
    """
    if status not in STATUSES:
        raise ConfigError(f"--status must be one of {', '.join(STATUSES)}")
    final = final_provenance(store)
    flagged_clusters = store.flagged_cluster_ids()
    notes = submission_notes(store)
    count = 0
    for art, pred in store.iter_articles_with_predictions(cluster_ids):
        label, from_cluster = labels.label_for_member(final, art.id, art.canonical_id)
        if not _selected(status, label, art.cluster_id in flagged_clusters) or not _since(art, since):
            continue
        # The analysts' chosen quote, else the model's strongest key sentence (publish reads it the same way).
        quote_text = (label.quote if label else "") or (best_quote(art.text, pred.evidence) if pred else "")
        count += 1
        yield {**_row(art, pred, label, from_cluster, quote_text), "submission_note": notes.get(art.cluster_id),
               "lesson": label.lesson if label else None, "private": label.private if label else None}
    log.info("export: %d rows (status %s, since %s)", count, status, since or "any date")


def submission_notes(store: Store) -> dict[int, str]:
    """Return per cluster the readers' notes of its submissions, oldest first, one paragraph each."""
    return {cluster_id: "\n\n".join(s.note for s in subs if s.note) or ""
            for cluster_id, subs in store.submissions_of_clusters(None).items()}


def _selected(status: str, label: FinalLabel | None, flagged: bool) -> bool:
    return status == "all" or (status == "reviewed" and label is not None) or (status == "flagged" and flagged)


def _since(article: StoredArticle, since: str | None) -> bool:
    return not since or article.date[:10] >= since


def _row(art: StoredArticle, pred: Prediction | None, label: FinalLabel | None, from_cluster: bool,
         quote_text: str) -> dict:
    decided = label if label is not None and label.cocreation is not None else None  # a label with a decision
    return {
        "article_id": art.id, "cluster_id": art.cluster_id, "is_canonical": art.id == art.cluster_id,
        "label_from_cluster": from_cluster,
        "url": art.url, "outlet": art.outlet, "title": art.title, "author": art.author,
        "published": art.published, "language": art.language, "text": art.text,
        "flagged": pred.flagged if pred else None, "score": pred.cocreation_score if pred else None,
        "rule_score": pred.rule_score if pred else None, "predicted_sector": pred.sector if pred else None,
        "predicted_type": pred.type if pred else None, "prediction_model_version": pred.model_version if pred else None,
        "cocreation": bool(decided.cocreation) if decided else None,
        "sector": label.sector if label else None, "type": label.type if label else None,
        "borderline": bool(decided.borderline) if decided else None, "note": label.note if label else None,
        "evidence_quote": quote_text, "label_source": label.label_source if label else None,
        "analysts": label.analysts if label else None, "settled_by": label.settled_by if label else None,
        "reviewed_at": label.reviewed_at if label else None,
        "review_model_version": label.model_version if label else None,
        "codebook_version": label.codebook_version if label else None,
        "origin": art.origin, "provenance": art.provenance,
    }


def write_export(rows: Iterable[dict], fmt: str, output: Path | BinaryIO | None = None) -> bytes | None:
    """Write the rows as JSONL, CSV or Parquet to `output` (a path or an open binary file) as they come,
    or return the bytes when no output is given."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}")
    writer = {"jsonl": _write_jsonl, "csv": _write_csv, "parquet": _write_parquet}[fmt]
    if output is not None and not isinstance(output, Path):
        writer(rows, output)
        return None
    if output is None:
        buffer = io.BytesIO()
        writer(rows, buffer)
        return buffer.getvalue()
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as file:
        writer(rows, file)
    return None


def _write_jsonl(rows: Iterable[dict], sink) -> None:
    for row in rows:
        sink.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _write_csv(rows: Iterable[dict], sink) -> None:
    text = io.TextIOWrapper(sink, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    text.detach()  # leave the binary sink open for the caller


def _csv_cell(value: object) -> object:
    # Lower-case booleans and empty cells for missing values read back the same in pandas and R.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    # Untrusted text that a spreadsheet would run gets a leading quote, as OWASP advises; numbers stay
    # numbers (a negative score is not a formula). JSONL and Parquet keep the raw values.
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


PARQUET_BATCH = 5000  # rows per row group: the export holds one group in memory, not the whole table


def _write_parquet(rows: Iterable[dict], sink) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # An explicit schema keeps the column types stable even for an empty or all-null export.
    types = {"int": pa.int64(), "bool": pa.bool_(), "float": pa.float64(), "str": pa.string()}
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])
    with pq.ParquetWriter(sink, schema) as writer:
        batch: list[dict] = []
        wrote = False
        for row in rows:
            batch.append(row)
            if len(batch) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch, wrote = [], True
        if batch or not wrote:  # an empty export still gets its schema
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))

