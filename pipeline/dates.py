"""Dates as Dutch readers write and type them: dd-mm-jjjj on screens and in forms, ISO in the store."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.errors import ConfigError

NL_DATE = re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})")
# ISO 8601 reduced precision: a bare year or a year and month, as news datasets often give a date.
REDUCED_DATE = re.compile(r"(\d{4})(?:-(\d{2}))?")
EXTENDED_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # the form whose first ten characters sort and compare as text


def reduced_date(iso: str | None) -> tuple[int, int | None] | None:
    """Return (year, month or None) of a bare ISO year ('2019') or year-month ('2019-05'); None for anything else."""
    match = REDUCED_DATE.fullmatch((iso or "").strip())
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2)) if match.group(2) else None
    return (year, month) if year >= 1 and (month is None or 1 <= month <= 12) else None


def stored_date(text: str) -> str:
    """Return an ISO 8601 date, timestamp, year or year-month as the store keeps it; ValueError when it is none.

    A year or year-month is kept as given, never widened to a day it does not name. Basic and week forms
    ('20190503', '2019-W18-5') are written out as yyyy-mm-dd, so every stored date compares as text.
    """
    text = text.strip()
    if reduced_date(text) is not None:
        return text
    if REDUCED_DATE.fullmatch(text):
        raise ValueError(f"{text!r} is not a year or a month")
    parsed = datetime.fromisoformat(text)
    if EXTENDED_DATE.match(text):
        return text
    return parsed.date().isoformat() if len(text) <= 10 else parsed.isoformat()


def period_start(iso: str) -> str:
    """Return the first day of a bare year or year-month ('2019-05' -> '2019-05-01'); any other text unchanged.

    Filters such as `export --since` compare this: a story dated only '2019' counts from 1 January, as pandas
    reads it in load_dataset.
    """
    reduced = reduced_date(iso)
    if reduced is None:
        return iso
    year, month = reduced
    return f"{year:04d}-{month or 1:02d}-01"


def nl_date(iso: str | None) -> str:
    """Return an ISO date or timestamp as dd-mm-jjjj ('05-03-2026'), a year-month as mm-jjjj, a year as jjjj.

    '' when there is none or it is unreadable.
    """
    parts = date_parts(iso)
    if parts is None:
        return ""
    year, month, day = parts
    if day is not None:
        return f"{day:02d}-{month:02d}-{year}"
    return f"{month:02d}-{year}" if month else str(year)


def date_parts(iso: str | None) -> tuple[int, int | None, int | None] | None:
    """Return (year, month, day) of an ISO date or timestamp, with None for what a bare year or month leaves out.

    None when there is no date or it is unreadable: screens and the digest show it by what it names, no more.
    """
    reduced = reduced_date(iso)
    if reduced is not None:
        return reduced[0], reduced[1], None
    try:
        day = date.fromisoformat((iso or "")[:10])
    except ValueError:
        return None
    return day.year, day.month, day.day


def parse_nl_date(text: str | None) -> str | None:
    """Return the ISO date of a typed dd-mm-jjjj (an ISO date is accepted too); None for an empty field."""
    text = (text or "").strip()
    if not text:
        return None
    match = NL_DATE.fullmatch(text)
    try:
        if match:
            return date(int(match.group(3)), int(match.group(2)), int(match.group(1))).isoformat()
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ConfigError(f"{text!r} is not a date: type it as dd-mm-jjjj, for example 05-03-2026") from None


def nl_datetime(iso: str | None) -> str:
    """Return an ISO timestamp as Dutch readers write it, in Dutch time: '05-03-2026 10:30'; a bare date as nl_date."""
    text = (iso or "").strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return nl_date(text)
    if len(text) <= 10:  # a date without a time
        return nl_date(text)
    if moment.tzinfo is None:  # the store writes UTC; a naive stamp is one of those
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(_dutch_time())
    return f"{local.day:02d}-{local.month:02d}-{local.year} {local.hour:02d}:{local.minute:02d}"


def _dutch_time():
    # The analysts work in the Netherlands: times in Amsterdam time (summer time included). Without the system's
    # time zone data the times stay UTC rather than failing the page.
    try:
        return ZoneInfo("Europe/Amsterdam")
    except ZoneInfoNotFoundError:
        return UTC
