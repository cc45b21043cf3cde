"""Dataclasses that the stages pass on to each other."""

from __future__ import annotations

from dataclasses import dataclass, field

# Default cap of a stored text or summary (Settings.max_text_chars); the store cuts longer ones.
MAX_TEXT_CHARS = 200_000


@dataclass(frozen=True)
class FeedConfig:
    """One feed from the feed list."""

    name: str
    url: str
    outlet: str
    language: str = "nl"
    tags: tuple[str, ...] = ()


@dataclass
class FeedEntry:
    """One item of a parsed feed, before its page is fetched."""

    url: str
    canonical_url: str
    title: str = ""
    summary: str = ""
    published: str | None = None
    author: str = ""
    categories: tuple[str, ...] = ()


@dataclass
class ParsedFeed:
    """What a feed document yielded, with the problem feedparser saw, if any."""

    entries: list[FeedEntry]
    title: str = ""
    problem: str = ""


@dataclass
class Response:
    """A finished HTTP response whose body was read within the size cap."""

    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    redirects: int = 0
    private_origin: bool = False  # the URL's own host was private and trusted to stay private

    @property
    def content_type(self) -> str:
        """Return the media type without parameters, lower-cased."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class Article:
    """A cleaned article ready for the store."""

    url: str
    canonical_url: str
    title: str
    text: str
    outlet: str = ""
    author: str = ""
    date: str | None = None
    sitename: str = ""
    categories: tuple[str, ...] = ()
    language: str = ""
    method: str = ""
    source: str = "feed"
    external_id: str | None = None
    content_hash: str = ""
    extra: dict = field(default_factory=dict)
    truncated_from: int | None = None  # length of the text before it was cut to the cap
