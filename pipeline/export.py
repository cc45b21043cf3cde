"""The reviewed dataset as JSONL, CSV or Parquet (the digest of accepted examples is pipeline/digest.py)."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pipeline.errors import ConfigError
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
}


def parse_since(text: str | None, today: date | None = None) -> str | None:
    """Turn '7d', '2w' or an ISO date into an ISO date string (None passes through)."""
    if not text:
        return None
    today = today or datetime.now(timezone.utc).date()
    match = re.fullmatch(r"(\d+)([dw])", text.strip())
    if match:
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        return (today - timedelta(days=days)).isoformat()
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ConfigError(f"--since {text!r}: give a date (2026-03-01) or a span such as 7d or 2w") from None


def final_provenance(store: Store) -> dict[int, dict]:
    """Return per labelled article its final label with analysts, settler and time of decision."""
    current: dict[int, list[dict]] = {}
    for row in store.current_reviews():
        current.setdefault(row["article_id"], []).append(row)
    result = {}
    for article_id, final in store.final_labels().items():
        rows = current.get(article_id, [])
        settled = final["action"] == "settle"
        names = sorted({r["analyst"] for r in rows} | ({final["analyst"]} if settled else set()))
        times = [r["created_at"] for r in rows] + [final["created_at"]]
        result[article_id] = {**final, "label_source": "settled" if settled else "agreed",
                              "analysts": ", ".join(names), "settled_by": final["analyst"] if settled else "",
                              "reviewed_at": max(times)}
    return result


def export_rows(store: Store, status: str = "reviewed", since: str | None = None) -> list[dict]:
    """Return one row per article (labels of a cluster copied to its members), in COLUMNS order."""
    from pipeline.review.highlight import best_quote

    if status not in STATUSES:
        raise ConfigError(f"--status must be one of {', '.join(STATUSES)}")
    labels = final_provenance(store)
    predictions = {p["article_id"]: p for p in store.latest_predictions()}
    flagged_clusters = {_cluster(a) for a in store.articles()
                        if predictions.get(a["id"], {}).get("flagged")}
    rows = []
    for art in store.articles():
        cluster_id = _cluster(art)
        label = labels.get(cluster_id)
        if not _selected(status, label, cluster_id in flagged_clusters) or not _since(art, since):
            continue
        pred = predictions.get(art["id"])
        quote_text = best_quote(art["text"], pred["evidence"]) if pred else ""
        rows.append(_row(art, cluster_id, pred, label, quote_text))
    log.info("export: %d rows (status %s, since %s)", len(rows), status, since or "any date")
    return rows


def _cluster(article: dict) -> int:
    return article["canonical_id"] or article["id"]


def _selected(status: str, label: dict | None, flagged: bool) -> bool:
    return status == "all" or (status == "reviewed" and label is not None) or (status == "flagged" and flagged)


def _since(article: dict, since: str | None) -> bool:
    return not since or (article["published"] or article["created_at"] or "")[:10] >= since


def _row(art: dict, cluster_id: int, pred: dict | None, label: dict | None, quote_text: str) -> dict:
    pred, label = pred or {}, label or {}
    has_label = bool(label) and label.get("cocreation") is not None
    return {
        "article_id": art["id"], "cluster_id": cluster_id, "is_canonical": art["id"] == cluster_id,
        "label_from_cluster": has_label and art["id"] != cluster_id,
        "url": art["url"], "outlet": art["outlet"], "title": art["title"], "author": art["author"],
        "published": art["published"], "language": art["language"], "text": art["text"],
        "flagged": bool(pred["flagged"]) if pred else None, "score": pred.get("cocreation_score"),
        "rule_score": pred.get("rule_score"), "predicted_sector": pred.get("sector"),
        "predicted_type": pred.get("type"), "prediction_model_version": pred.get("model_version"),
        "cocreation": bool(label["cocreation"]) if has_label else None,
        "sector": label.get("sector"), "type": label.get("type"),
        "borderline": bool(label["borderline"]) if has_label else None, "note": label.get("note"),
        "evidence_quote": quote_text, "label_source": label.get("label_source"),
        "analysts": label.get("analysts"), "settled_by": label.get("settled_by"),
        "reviewed_at": label.get("reviewed_at"), "review_model_version": label.get("model_version"),
        "codebook_version": label.get("codebook_version"),
    }


def write_export(rows: list[dict], fmt: str, output: Path | None = None) -> bytes | None:
    """Write the rows as JSONL, CSV or Parquet to `output`, or return the bytes when no output is given."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}")
    data = {"jsonl": _jsonl_bytes, "csv": _csv_bytes, "parquet": _parquet_bytes}[fmt](rows)
    if output is None:
        return data
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    return None


def _jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_bytes(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue().encode("utf-8")


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


def _parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # An explicit schema keeps the column types stable even for an empty or all-null export.
    types = {"int": pa.int64(), "bool": pa.bool_(), "float": pa.float64(), "str": pa.string()}
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
