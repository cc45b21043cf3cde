"""Reading WARC files (plain and gzip) record by record with warcio: pages to extract, or a skip reason.

Nothing here loads a whole file: records are streamed, and a body is read up to a cap. A partition is a
range of record offsets, so a large file is shared by several workers and a rerun resumes at an offset.
Damage (garbage bytes, a cut record) is reported where it starts, and reading resumes at the next record
start after it: the next `WARC/1.` header of a plain file, the next gzip member of a .warc.gz.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from warcio.archiveiterator import WARCIterator
from warcio.exceptions import ArchiveLoadFailed

from pipeline.errors import ConfigError
from pipeline.ingest.fetch import HTML_TYPES


# warcio raises assorted errors on malformed records (a response without a target URI gives an AttributeError),
# so each of them means "the file is damaged here".
READ_ERRORS = (ArchiveLoadFailed, AttributeError, ValueError, EOFError, zlib.error, OSError)
# Where a record can begin: a plain record's version line, a gzip member's magic and deflate method (a .warc.gz
# holds one record per member, so after damage the next member is the next record).
RECORD_STARTS = (b"WARC/1.", b"\x1f\x8b\x08")
RESYNC_CHUNK = 1024 * 1024  # bytes read at a time while looking for the next record after damage
REASON_CHARS = 100  # warcio's message in a damage reason is cut to this: one line of a summary


@dataclass(frozen=True)
class Damage:
    """Where a file stopped reading as WARC, why (one line), and the next record start after it (None: none)."""

    offset: int
    reason: str
    resumed_at: int | None


@dataclass(frozen=True)
class WarcPage:
    """An HTTP 200 HTML response kept by the filters, with its body."""

    record_id: str
    url: str
    warc_date: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class RecordFilter:
    """Which responses to keep: hosts (None: all), WARC-Date range, largest body read."""

    hosts: frozenset[str] | None = None
    since: date | None = None
    until: date | None = None
    max_bytes: int = 5_000_000


def record_ranges(path: str, target_bytes: int) -> list[tuple[int, int | None]]:
    """Cut a file into record ranges of about target_bytes each: [(start offset, end offset or None)].

    A file no larger than target_bytes is one range; a larger one is scanned once for record offsets
    (headers only; bodies are skipped by the reader without being kept). The scan reads past damage as
    the partitions do, so every range starts at a record they read.
    """
    if os.path.getsize(path) <= target_bytes:
        return [(0, None)]
    starts = [0]
    for offset, outcome in read_records(path, 0, None, _read_nothing):
        if not isinstance(outcome, Damage) and offset - starts[-1] >= target_bytes:
            starts.append(offset)
    return [(start, end) for start, end in zip(starts, [*starts[1:], None], strict=True)]


def _read_nothing(_record) -> None:
    # Planning wants offsets only: the reader skips each body unread.
    return None


def iter_records(path: str, start: int, end: int | None,
                 keep: RecordFilter) -> Iterator[tuple[int, WarcPage | str | Damage]]:
    """Yield (record offset, kept page or skip reason) for the records starting in [start, end), and
    (offset, Damage) where the file is damaged (reading resumes at the damage's resumed_at)."""
    return read_records(path, start, end, lambda record: read_record(record, keep))


def read_records(path: str, start: int, end: int | None, read: Callable) -> Iterator[tuple[int, Any]]:
    """Yield (offset, read(record)) for the records starting in [start, end), and (offset, Damage) at damage.

    After damage, reading resumes at the next record start found after it (in the range), so one bad block
    costs only itself. A file with no readable record at all is a ConfigError: it is not a WARC file.
    """
    with open(path, "rb") as stream:
        offset: int | None = start
        while offset is not None and (end is None or offset < end):
            damage = yield from _read_until_damage(stream, offset, end, read)
            if damage is None:
                return
            if damage.offset == 0 and damage.resumed_at is None:
                raise ConfigError(f"{path} is not a readable WARC file ({damage.reason}); "
                                  "check the file, or leave it out")
            yield damage.offset, damage
            offset = damage.resumed_at


def _read_until_damage(stream: BinaryIO, start: int, end: int | None, read: Callable):
    # The records from `start` to the range's end or the file's end (returns None), or to the first damage
    # (returns it). warcio's iterator stops for good at the first error, so each stretch gets its own.
    stream.seek(start)
    iterator = _QuietWarcIterator(stream)
    records = iter(iterator)
    while True:
        try:
            record = next(records, None)
            if record is None:
                return None
            outcome = read(record)  # first: warcio knows a record's offset once it is read through
            offset = iterator.get_record_offset()
        except READ_ERRORS as exc:
            # iterator.offset is still the start of the record that failed (warcio moves it once one is read).
            return damage_at(stream, iterator.offset, unreadable_reason(exc), end)
        if end is not None and offset >= end:
            return None
        if iterator.err_count:  # no blank line after the record: its Content-Length is wrong (cut or overlong)
            return damage_at(stream, offset, "a record whose Content-Length does not match where it ends", end)
        if _ended_inside(record):
            damage = damage_at(stream, offset, "a cut record: the next record starts inside its length", end)
            if damage.resumed_at is not None:  # else a download cut in its last record: a skip, as before
                return damage
        yield offset, outcome


class _QuietWarcIterator(WARCIterator):
    # warcio writes a three-line warning to stderr when a record is not followed by blank lines (a wrong
    # Content-Length); here the record is reported as damage instead, once, by the caller. err_count still counts.
    INC_RECORD = ""


def _ended_inside(record) -> bool:
    # Read through, a record's stream has bytes left to read only when the file ended first.
    return getattr(record.raw_stream, "limit", 0) > 0


def damage_at(stream: BinaryIO, offset: int, reason: str, end: int | None) -> Damage:
    """Return the damage at offset, with the next record start after it (before end) to resume at."""
    return Damage(offset=offset, reason=reason, resumed_at=next_record_start(stream, offset + 1, end))


def next_record_start(stream: BinaryIO, start: int, end: int | None) -> int | None:
    """Return the first offset at or after start (before end) where warcio reads a WARC record, or None."""
    for candidate in _candidate_starts(stream, start, end):
        if _reads_as_record(stream, candidate):
            return candidate
    return None


def _candidate_starts(stream: BinaryIO, start: int, end: int | None) -> Iterator[int]:
    # Every place a plain record's version line or a gzip member could begin, in file order: a cheap
    # bytes.find over the raw file, each hit then checked by warcio itself. Chunks overlap by the longest
    # pattern less one, so a start cut by a chunk boundary is still found.
    limit = end if end is not None else os.fstat(stream.fileno()).st_size
    overlap = max(len(pattern) for pattern in RECORD_STARTS) - 1
    position = start
    while position < limit:
        stream.seek(position)
        size = min(RESYNC_CHUNK, limit - position)
        chunk = stream.read(size + overlap)
        yield from sorted(position + i for pattern in RECORD_STARTS for i in _find_all(chunk, pattern) if i < size)
        position += size


def _find_all(chunk: bytes, pattern: bytes) -> Iterator[int]:
    at = chunk.find(pattern)
    while at >= 0:
        yield at
        at = chunk.find(pattern, at + 1)


def _reads_as_record(stream: BinaryIO, offset: int) -> bool:
    # A record start is where warcio parses a WARC record with an id: the text "WARC/1.0" inside a page, or
    # gzip magic inside a compressed body, is not one.
    stream.seek(offset)
    try:
        record = next(iter(_QuietWarcIterator(stream)), None)
    except READ_ERRORS:
        return False
    return record is not None and bool(record.rec_headers.get_header("WARC-Record-ID"))


def unreadable_reason(exc: BaseException) -> str:
    """Return warcio's error as a one-line reason (its message quotes the damaged bytes, escaped here)."""
    return f"unreadable record ({type(exc).__name__}: {short_ascii(str(exc))})"


def short_ascii(text: str, limit: int = REASON_CHARS) -> str:
    """Return text as one line of printable ASCII of at most `limit` characters."""
    line = " ".join(text.split()).encode("unicode_escape").decode("ascii")
    return line if len(line) <= limit else line[:limit - 3] + "..."


def read_record(record, keep: RecordFilter) -> WarcPage | str:
    """Return the record's page when it is a kept HTTP 200 HTML response, else the reason it is skipped."""
    reason = skip_reason(record, keep)
    if reason:
        return reason
    body = record.content_stream().read(keep.max_bytes + 1)  # bounded: the rest is skipped, never held
    if len(body) > keep.max_bytes:
        return "too_large"
    if getattr(record.raw_stream, "limit", 0) > 0:  # the file ended inside the record: a cut download
        return "truncated"
    headers = record.rec_headers
    return WarcPage(record_id=headers.get_header("WARC-Record-ID") or "", url=headers.get_header("WARC-Target-URI"),
                    warc_date=headers.get_header("WARC-Date") or "",
                    content_type=record.http_headers.get_header("Content-Type") or "", body=body)


def skip_reason(record, keep: RecordFilter) -> str:
    """Return why a record is not an article to extract ('' when it is), from its headers only."""
    if record.rec_type != "response" or record.http_headers is None:
        return "not_response"
    if record.http_headers.get_statuscode() != "200":
        return "not_200"
    media = (record.http_headers.get_header("Content-Type") or "").split(";")[0].strip().lower()
    if media not in HTML_TYPES:
        return "not_html"
    url = record.rec_headers.get_header("WARC-Target-URI") or ""
    if not url.startswith(("http://", "https://")):
        return "bad_url"
    if keep.hosts is not None and not host_listed(url, keep.hosts):
        return "host_not_listed"
    day = (record.rec_headers.get_header("WARC-Date") or "")[:10]
    if (keep.since and day < keep.since.isoformat()) or (keep.until and day > keep.until.isoformat()):
        return "outside_dates"
    return ""


def host_listed(url: str, hosts: frozenset[str]) -> bool:
    """Tell whether the URL's host is one of the listed hosts or a subdomain of one."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    parts = host.split(".")
    return any(".".join(parts[i:]) in hosts for i in range(len(parts) - 1))
