"""Import articles that are already text (JSONL) into the store, deduplicated like fetched ones.

The JSONL reader and the record schema (ArticleRecord) live here; `radar ingest` and `radar score`
both validate every line with it, so a bad line is reported with its number and never stops the others.
A date never refuses its article: one that is not a date is left out, and the line says so (logged to stderr).
"""

from __future__ import annotations

import heapq
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, BinaryIO
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

from pipeline.dates import stored_date
from pipeline.ingest.dedupe import ClusterHeads, load_heads, save_article_deduplicated
from pipeline.errors import ConfigError, RadarError, RunCrashed
from pipeline.ingest.extract import canonical_url, content_hash, guess_language
from pipeline.records import Article
from pipeline.store import Store

log = logging.getLogger(__name__)

# A line longer than this is refused unread: it cannot be a sane article and would only fill memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Ids are letters and digits with a few separators, so that they print and compare safely;
# 200 is the width of articles.external_id.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@#+-]*")
MAX_ID_CHARS = 200
# The stored run report keeps this many bad lines; the command prints all of them.
REPORTED_PROBLEMS = 100
MAX_DATE_CHARS = 40  # the longest ISO 8601 timestamp with fractions and an offset is 32


def _check_string(value: str) -> str:
    # A lone surrogate (JSON "\ud800") cannot be written as UTF-8 and breaks spaCy and the output;
    # PostgreSQL refuses NUL in text.
    if "\x00" in value:
        raise PydanticCustomError("nul", "holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("surrogate", "holds an unpaired surrogate (\\ud800-\\udfff)") from None
    return value


def _id_from_int(value: object) -> object:
    # Whole-number ids are common in exports; they are kept as their decimal text (bools are not numbers).
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "id_format", "may hold only letters, digits and . _ : / @ # + - and must start with a letter or digit")
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "is empty")
    return _check_string(value)


def _check_url(value: str) -> str:
    _check_string(value)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise PydanticCustomError("url", "is not a valid URL") from None
    if value and (parts.scheme.lower() not in ("http", "https") or not parts.hostname):
        raise PydanticCustomError("url", "must be an http(s) address with a host")
    return value


def _check_date(value: str) -> str:
    # An ISO date keeps `export --since` (a string comparison on the first ten characters) right.
    try:
        return stored_date(value) if value else value
    except ValueError:
        raise PydanticCustomError("date", "must be an ISO 8601 date such as 2026-03-02, 2026-03 or 2026") from None


def read_date(value: object) -> tuple[str | None, str]:
    """Return (the date as stored, "") or, for a value that is no date, (None, what is wrong with it)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, ""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 9999:
        value = str(value)  # a year written as a number, as some exports do
    if isinstance(value, str) and len(value) <= MAX_DATE_CHARS:
        try:
            return stored_date(value), ""
        except ValueError:
            pass
    shown = json.dumps(value)  # ASCII: a stray surrogate or control character cannot break the message
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    return None, f"date {shown} is not an ISO 8601 date (such as 2026-03-02, 2026-03 or 2026)"


RecordId = Annotated[str, StringConstraints(max_length=MAX_ID_CHARS), AfterValidator(_check_id),
                     BeforeValidator(_id_from_int)]
# No length limit of its own: MAX_LINE_BYTES bounds it, the store cuts a stored text to max_text_chars
# at a paragraph (issue 9 item 4), and the scorer analyses a bounded piece of each text.
RecordText = Annotated[str, AfterValidator(_check_text)]
Title = Annotated[str, StringConstraints(max_length=2_000), AfterValidator(_check_string)]
Url = Annotated[str, StringConstraints(max_length=2_000), AfterValidator(_check_url)]
IsoDate = Annotated[str, StringConstraints(max_length=MAX_DATE_CHARS), AfterValidator(_check_date)]
Outlet = Annotated[str, StringConstraints(max_length=200), AfterValidator(_check_string)]


class ArticleRecord(BaseModel):
    """One JSONL line of `radar ingest` and `radar score`: id and text required; title, url, date, outlet optional."""

    # Strict: a number is not a title and an object is not a date. Other keys are ignored (labels, source ...).
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    id: RecordId
    text: RecordText
    title: Title | None = None
    url: Url | None = None
    date: IsoDate | None = None
    outlet: Outlet | None = None


def describe_errors(exc: ValidationError) -> str:
    """Turn a validation error into a short reason such as `date: Input should be a valid string`."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in error["loc"]) or "record"
        parts.append(f"missing {name}" if error["type"] in ("missing", "blank") else f"{name}: {error['msg']}")
    return "; ".join(parts)


def validate_record(number: int, raw: dict | str, notes: list[str] | None = None) -> ArticleRecord | str:
    """Return the line's ArticleRecord, or `line N: reason` when it is not one.

    A date that is not one never refuses the line: the record is kept without it, `line N: ...` is logged as a
    warning (stderr from the command line) and added to notes when given.
    """
    if isinstance(raw, str):
        return raw
    date, problem = read_date(raw.get("date"))
    try:
        record = ArticleRecord.model_validate({**raw, "date": date})
    except ValidationError as exc:
        return f"line {number}: {describe_errors(exc)}"
    if problem:
        note = f"line {number}: {problem}; the article is kept without a date"
        log.warning("%s", note)
        if notes is not None:
            notes.append(note)
    return record


def open_jsonl(path: Path) -> BinaryIO:
    """Open a JSONL file for reading as bytes (each line is decoded on its own)."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}; check the path") from exc


def read_jsonl(path: Path) -> Iterator[tuple[int, dict | str]]:
    """Yield (line number, record) per line of a file; see parse_jsonl_lines."""
    with open_jsonl(path) as handle:
        yield from parse_jsonl_lines(split_lines(handle))


def split_lines(handle: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """Yield the raw lines of a binary stream; a line longer than `limit` bytes yields None and is skipped."""
    while line := handle.readline(limit + 1):
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := handle.readline(limit)) and not rest.endswith(b"\n"):
                pass  # drop the rest of the overlong line without holding it
            yield None
        else:
            yield line


def parse_jsonl_lines(lines: Iterable[bytes | str | None]) -> Iterator[tuple[int, dict | str]]:
    """Yield (line number, record) per non-empty line; a line that is not a JSON object yields `line N: reason`."""
    for number, line in enumerate(lines, 1):
        record = _decode_line(line)
        if record is not None:
            yield number, record if isinstance(record, dict) else f"line {number}: {record}"


def _decode_line(line: bytes | str | None) -> dict | str | None:
    # Returns the object, a reason (str) or None for a blank line.
    if line is None:
        return f"longer than {MAX_LINE_BYTES // 2**20} MiB"
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at position {exc.start})"
    line = line.removeprefix("\ufeff")  # the byte-order mark some editors write
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg})"
    except RecursionError:
        return "not JSON (nested too deeply)"
    except ValueError:  # Python refuses to convert integers with very many digits
        return f"not JSON (a number longer than {sys.get_int_max_str_digits()} digits)"
    return record if isinstance(record, dict) else "not a JSON object"


@dataclass
class IngestReport:
    """Counts of one ingest, with `line N: reason` for every invalid and every conflicting line."""

    new: int = 0
    duplicate: int = 0
    already_stored: int = 0
    invalid: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    undated: list[str] = field(default_factory=list)  # stored, but their date was not one and was left out
    last_line: int = 0

    def bad_lines(self) -> list[str]:
        """Return the invalid and conflicting lines in line order."""
        return list(heapq.merge(self.invalid, self.conflicts, key=lambda text: int(text.split()[1].rstrip(":"))))

    def as_dict(self) -> dict:
        """Return the report as stored with the run: counts and the first bad lines."""
        return {"new": self.new, "duplicate": self.duplicate, "already_stored": self.already_stored,
                "invalid": len(self.invalid), "conflicts": len(self.conflicts), "lines_read": self.last_line,
                "bad_lines": self.bad_lines()[:REPORTED_PROBLEMS], "dates_left_out": len(self.undated),
                "date_notes": self.undated[:REPORTED_PROBLEMS]}


def article_from_record(record: ArticleRecord, source: str = "ingest") -> Article:
    """Build an Article from a validated record."""
    text = record.text.strip()
    url = record.url or ""
    return Article(
        url=url, canonical_url=canonical_url(url) if url else "", title=record.title or "",
        text=text, outlet=record.outlet or "", date=record.date or None,
        language=guess_language(text), method="ingest", source=source, external_id=record.id,
        content_hash=content_hash(text),
    )


def ingest_records(store: Store, records: Iterable[tuple[int, dict | str]], threshold: float,
                   run_id: int | None = None, report: IngestReport | None = None) -> IngestReport:
    """Store each valid record once; invalid and conflicting lines are reported, never stop the others."""
    report = report if report is not None else IngestReport()
    heads = load_heads(store, threshold)
    for number, raw in records:
        report.last_line = number
        record = validate_record(number, raw, report.undated)
        if isinstance(record, str):
            report.invalid.append(record)
        else:
            _ingest_article(store, heads, number, article_from_record(record), report, run_id)
    log.info("ingest: %d new, %d duplicate, %d already stored, %d conflicting, %d invalid, %d dates left out",
             report.new, report.duplicate, report.already_stored, len(report.conflicts), len(report.invalid),
             len(report.undated))
    return report


def _ingest_article(store: Store, heads: ClusterHeads, number: int, article: Article,
                    report: IngestReport, run_id: int | None) -> None:
    same_id = store.find_article(source=article.source, external_id=article.external_id)
    if same_id is not None and store.content_hash_of(same_id) != article.content_hash:
        # The same id with another text is a mistake in the input, not a copy: say so, keep the stored one.
        report.conflicts.append(f"line {number}: id {article.external_id!r} is already stored with a different "
                                "text; give the new text its own id")
    elif same_id is not None or (article.canonical_url and store.find_article(canonical_url=article.canonical_url)):
        report.already_stored += 1
    elif save_article_deduplicated(store, heads, article, run_id=run_id):
        report.new += 1
    else:
        report.duplicate += 1


def ingest_file(store: Store, path: Path, threshold: float) -> IngestReport:
    """Ingest a JSONL file as one recorded run; the run record is finished whatever happens."""
    with open_jsonl(path) as handle:  # a missing file is a usage error, before any run is recorded
        report = IngestReport()
        run_id = store.start_run("ingest")
        status, extra = "interrupted", {}
        try:
            ingest_records(store, parse_jsonl_lines(split_lines(handle)), threshold, run_id, report)
            status = "failed" if report.invalid or report.conflicts else "ok"
        except RadarError as exc:
            status, extra = "failed", {"error": str(exc)}
            raise
        except Exception as exc:
            status, extra = "crashed", {"error": repr(exc)}
            log.debug("ingest run %d crashed", run_id, exc_info=True)
            raise RunCrashed(f"ingest run {run_id} stopped at line {report.last_line} of {path} on an unexpected "
                             f"error ({exc!r}); the lines before it are stored: fix the cause and ingest again") from exc
        finally:  # also on Ctrl-C: the run is never left "running"
            store.finish_run(run_id, status, {**report.as_dict(), **extra})
    return report
