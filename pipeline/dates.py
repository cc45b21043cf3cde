"""Dates as Dutch readers write and type them: dd-mm-jjjj on screens and in forms, ISO in the store."""

from __future__ import annotations

import re
from datetime import date

from pipeline.errors import ConfigError

NL_DATE = re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})")


def nl_date(iso: str | None) -> str:
    """Return an ISO date or timestamp as dd-mm-jjjj ('05-03-2026'); '' when there is none or it is unreadable."""
    try:
        day = date.fromisoformat((iso or "")[:10])
    except ValueError:
        return ""
    return f"{day.day:02d}-{day.month:02d}-{day.year}"


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
