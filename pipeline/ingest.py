"""Import articles that are already text (JSONL) into the store, deduplicated like fetched ones."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from pipeline.dedupe import NearDuplicateIndex, save_deduplicated
from pipeline.errors import ConfigError
from pipeline.extract import canonical_url, content_hash, guess_language
from pipeline.records import Article
from pipeline.store import Store

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """Counts of one ingest."""

    new: int = 0
    duplicate: int = 0
    already_stored: int = 0
    invalid: list[str] = field(default_factory=list)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict | str]]:
    """Yield (line number, record) per line of a file; see parse_jsonl_lines."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    with handle:
        yield from parse_jsonl_lines(handle)


def parse_jsonl_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict | str]]:
    """Yield (line number, record) per non-empty line; a line that is not a JSON object yields its error."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"line {number}: not JSON ({exc.msg})"
            continue
        yield number, record if isinstance(record, dict) else f"line {number}: not a JSON object"


def article_from_record(record: dict, source: str = "ingest") -> Article:
    """Build an Article from an `id`, `title`, `text` record with optional url, date, outlet."""
    missing = [key for key in ("id", "text") if not str(record.get(key) or "").strip()]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    text = str(record["text"]).strip()
    url = str(record.get("url") or "")
    return Article(
        url=url, canonical_url=canonical_url(url) if url else "", title=str(record.get("title") or ""),
        text=text, outlet=str(record.get("outlet") or ""), date=record.get("date"),
        language=guess_language(text), method="ingest", source=source, external_id=str(record["id"]),
        content_hash=content_hash(text),
    )


def ingest_records(store: Store, records: Iterable[tuple[int, dict | str]], threshold: float,
                   run_id: int | None = None) -> IngestReport:
    """Store each valid record once; invalid lines are reported, never stop the others."""
    report = IngestReport()
    index = NearDuplicateIndex.from_signatures(store.signatures_of_canonicals(), threshold)
    for number, record in records:
        if isinstance(record, str):
            report.invalid.append(record)
            continue
        try:
            article = article_from_record(record)
        except ValueError as exc:
            report.invalid.append(f"line {number}: {exc}")
            continue
        if store.find_article(source=article.source, external_id=article.external_id,
                              canonical_url=article.canonical_url or None):
            report.already_stored += 1
            continue
        if save_deduplicated(store, index, article, run_id=run_id):
            report.new += 1
        else:
            report.duplicate += 1
    log.info("ingest: %d new, %d duplicate, %d already stored, %d invalid", report.new, report.duplicate,
             report.already_stored, len(report.invalid))
    return report
