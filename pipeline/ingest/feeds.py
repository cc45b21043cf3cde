"""The feed list (feeds.toml) and parsing of RSS/Atom documents into entries."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from time import strftime

import feedparser
from feedparser.encodings import convert_to_utf8

from pipeline.errors import ConfigError, FetchError
from pipeline.ingest.extract import canonical_url
from pipeline.records import FeedConfig, FeedEntry, ParsedFeed
from pipeline.settings import read_toml

log = logging.getLogger(__name__)

# Feeds never need their own DTD. feedparser keeps "safe" entity declarations found at the start of
# any line before the first element and expands them in both its parsers, so one declared entity
# referenced a million times grows a 5 MB feed to hundreds of MB. Any entity declaration, and any
# DOCTYPE with an internal subset ("[" before its end, quoted ids skipped), is refused anywhere.
DTD_DANGER = re.compile(rb"""<!ENTITY|<!DOCTYPE(?:[^>\["']|"[^"]*"|'[^']*')*\[""", re.IGNORECASE)
REQUIRED_FIELDS = ("name", "url", "outlet")


def load_feed_list(path: Path) -> list[FeedConfig]:
    """Read and check the feed list; names must be unique."""
    data = read_toml(path, "feed list", "; set feeds_file in the config")
    configs = [_feed_config(raw, path) for raw in data.get("feeds", [])]
    names = [c.name for c in configs]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise ConfigError(f"feed list {path} names these feeds more than once: {', '.join(doubles)}")
    return configs


def _feed_config(raw: dict, path: Path) -> FeedConfig:
    missing = [key for key in REQUIRED_FIELDS if not raw.get(key)]
    if missing:
        raise ConfigError(f"a feed in {path} lacks {', '.join(missing)}: {raw}")
    return FeedConfig(
        name=raw["name"], url=raw["url"], outlet=raw["outlet"],
        language=raw.get("language", "nl"), tags=tuple(raw.get("tags", ())),
    )


def parse_feed(body: bytes, base_url: str, content_type: str = "", limit: int = 500) -> ParsedFeed:
    """Parse an RSS/Atom document; a malformed one that still yields entries is used."""
    headers = {"content-location": base_url, "content-type": content_type or "application/xml"}
    refuse_dtd(body, headers)
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True)
    problem = f"{type(parsed.bozo_exception).__name__}: {parsed.bozo_exception}" if parsed.bozo else ""
    entries = [e for e in (_entry(raw) for raw in parsed.entries[:limit]) if e is not None]
    if not entries:
        raise FetchError("feed_unparseable" if parsed.bozo else "feed_empty", problem or "no entries with a link")
    return ParsedFeed(entries=entries, title=parsed.feed.get("title", ""), problem=problem)


def refuse_dtd(body: bytes, headers: dict[str, str]) -> None:
    """Raise FetchError when a feed declares entities or an internal DTD subset, in whatever encoding."""
    # Decoded exactly as feedparser will decode it (BOM, HTTP charset, XML declaration, UTF-16/32,
    # EBCDIC), so the check reads the characters the parser reads, not the raw bytes.
    text = convert_to_utf8(dict(headers), body, {})
    found = DTD_DANGER.search(text)
    if found:
        entity = found.group(0).upper().startswith(b"<!ENTITY")
        kind = "an entity declaration" if entity else "a DOCTYPE with an internal subset"
        raise FetchError("feed_entities_refused", f"the feed contains {kind} at offset {found.start()} "
                         "(possible entity-expansion bomb); ask the publisher for a feed without a DTD")


def _entry(raw: feedparser.FeedParserDict) -> FeedEntry | None:
    link = raw.get("link") or _guid_link(raw)
    if not link:
        return None
    published = raw.get("published_parsed") or raw.get("updated_parsed")
    return FeedEntry(
        url=link,
        canonical_url=canonical_url(link),
        title=raw.get("title", "").strip(),
        summary=_strip_tags(raw.get("summary", "")),
        published=strftime("%Y-%m-%dT%H:%M:%S+00:00", published) if published else None,
        author=raw.get("author", ""),
        categories=tuple(t.get("term", "") for t in raw.get("tags", []) if t.get("term")),
    )


def _guid_link(raw: feedparser.FeedParserDict) -> str:
    guid = raw.get("id", "")
    return guid if guid.startswith(("http://", "https://")) else ""


def _strip_tags(html: str) -> str:
    # feedparser already sanitised the summary; what is left is harmless inline markup.
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
