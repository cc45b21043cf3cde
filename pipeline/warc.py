"""Reading WARC files (plain and gzip) record by record with warcio: pages to extract, or a skip reason.

Nothing here loads a whole file: records are streamed, and a body is read up to a cap. A partition is a
range of record offsets, so a large file is shared by several workers and a rerun resumes at an offset.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from pipeline.errors import ConfigError
from pipeline.fetch import HTML_TYPES


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
    (headers only; bodies are skipped by the reader without being kept).
    """
    if os.path.getsize(path) <= target_bytes:
        return [(0, None)]
    starts = [0]
    with open(path, "rb") as stream:
        iterator = ArchiveIterator(stream, no_record_parse=True)
        for _record in _guarded(iterator, path):
            offset = iterator.get_record_offset()
            if offset - starts[-1] >= target_bytes:
                starts.append(offset)
    return [(start, end) for start, end in zip(starts, [*starts[1:], None], strict=True)]


def iter_records(path: str, start: int, end: int | None,
                 keep: RecordFilter) -> Iterator[tuple[int, WarcPage | str]]:
    """Yield (record offset, kept page or skip reason) for the records starting in [start, end)."""
    with open(path, "rb") as stream:
        stream.seek(start)
        iterator = ArchiveIterator(stream)
        for record in _guarded(iterator, path):
            outcome = read_record(record, keep)  # first: warcio knows a record's offset once it is read through
            offset = iterator.get_record_offset()
            if end is not None and offset >= end:
                return
            yield offset, outcome


def _guarded(iterator: ArchiveIterator, path: str) -> Iterator:
    # A truncated, damaged or foreign file is the operator's to fix; say which file, in the package's own
    # error. warcio raises assorted errors on malformed records (a response without a target URI gives an
    # AttributeError), so each of them means "not a readable WARC file" here.
    try:
        yield from iterator
    except (ArchiveLoadFailed, AttributeError, ValueError, EOFError, zlib.error, OSError) as exc:
        raise ConfigError(f"{path} is not a readable WARC file ({type(exc).__name__}: {exc}); "
                          "check the file, or leave it out") from exc


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
