"""Dataclasses that the stages pass on to each other."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from pipeline.dates import parse_nl_date, period_start
from pipeline.errors import ConfigError

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
    origin: str = ""  # feed | ingest | submission | backfill; empty: "feed" from a feed, else "ingest"
    provenance: str = ""  # a submission id or WARC record id, where the origin has one


# -- records the store returns ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed as the store queued it: the thing the article stage fetches ("item" means only this)."""

    id: int
    canonical_url: str
    url: str
    feed_id: int | None
    title: str
    summary: str
    summary_truncated_from: int | None
    published: str | None
    author: str
    categories: tuple[str, ...]
    first_run_id: int | None
    status: str
    attempts: int
    last_error: str | None
    updated_at: str | None
    outlet: str | None = None
    feed_url: str | None = None
    language: str | None = None
    # The feed's last answered fetch connected to a private address (None: never answered): only then may
    # this item's link be private too.
    feed_private: bool | None = None


@dataclass(frozen=True)
class StoredArticle:
    """An article as stored, with the canonical member of its duplicate cluster (None when it heads its own)."""

    id: int
    item_id: int | None
    source: str
    external_id: str | None
    url: str | None
    canonical_url: str | None
    outlet: str
    title: str
    author: str
    published: str | None
    sitename: str
    categories: tuple[str, ...]
    language: str
    text: str
    text_truncated_from: int | None
    content_hash: str
    method: str
    run_id: int | None
    created_at: str
    origin: str = "feed"
    provenance: str = ""
    canonical_id: int | None = None
    duplicate_kind: str | None = None

    @property
    def cluster_id(self) -> int:
        """Return the id of the cluster this article belongs to (its canonical member's id)."""
        return self.canonical_id or self.id

    @property
    def date(self) -> str:
        """Return the publication date, else the storage date, as sortable text (a bare year or month: its first day)."""
        # export --since compares the first ten characters: '2019' must count from 2019-01-01, not before it.
        return period_start(self.published) if self.published else self.created_at or ""


@dataclass(frozen=True)
class ArticleMeta:
    """The few fields of an article a list shows (no text)."""

    id: int
    url: str | None
    outlet: str
    title: str
    published: str | None
    created_at: str


@dataclass(frozen=True)
class Prediction:
    """One model's scores for one article, JSON fields decoded."""

    id: int
    article_id: int
    run_id: int | None
    model_version: str
    codebook_version: str
    cocreation_score: float
    rule_score: float
    flagged: bool
    sector: str | None
    sector_scores: dict
    type: str | None
    type_scores: dict
    evidence: list
    created_at: str


@dataclass(frozen=True)
class ReviewEvent:
    """One append-only review event: decide, undo or settle; `previous` decoded."""

    id: int
    article_id: int
    analyst: str
    action: str
    cocreation: int | None
    sector: str | None
    type: str | None
    borderline: int
    note: str
    previous: dict
    undoes_id: int | None
    model_version: str | None
    codebook_version: str
    created_at: str
    lesson: str = ""  # "Wat we ervan leren", shown with the example in the public collection
    private: int = 0  # 1: never published, whatever the label
    quote: str = ""  # the sentence of the text the analyst chose to quote; '' leaves the choice to the model


@dataclass(frozen=True)
class FinalLabel:
    """The settled label of an article with its provenance: the event that fixed it and who took part."""

    article_id: int
    event: ReviewEvent  # the settle event, else the newest of the agreeing decisions
    label_source: str  # settled | agreed
    analysts: str  # everyone who decided or settled it, comma-separated, sorted
    settled_by: str
    reviewed_at: str
    marked_private: bool = False  # an analyst who took part marked it private: one is enough to keep it unpublished
    lesson: str = ""  # the settling lead's lesson, else the first one an analyst wrote (labels.kept_lesson)
    note: str = ""  # every note of the analysts who took part, with their names (labels.joined_notes)
    quote: str = ""  # the settling lead's chosen quote, else the first an analyst chose (labels.kept_quote)

    # The label itself is the deciding event's; these read it through the final label (final.cocreation).
    cocreation = property(lambda self: self.event.cocreation)
    sector = property(lambda self: self.event.sector)
    type = property(lambda self: self.event.type)
    borderline = property(lambda self: self.event.borderline)
    action = property(lambda self: self.event.action)
    analyst = property(lambda self: self.event.analyst)
    created_at = property(lambda self: self.event.created_at)
    model_version = property(lambda self: self.event.model_version)
    codebook_version = property(lambda self: self.event.codebook_version)
    previous = property(lambda self: self.event.previous)
    private = property(lambda self: self.marked_private or bool(self.event.private))


@dataclass
class Cluster:
    """A near-duplicate cluster, reviewed once through its canonical article."""

    canonical_id: int
    head: ArticleMeta
    members: list[ArticleMeta] = field(default_factory=list)  # the other articles, not the head
    prediction: Prediction | None = None  # of the head; of the first member with one when the head has none
    flagged: bool = False
    score: float = 0.0

    @property
    def date(self) -> str:
        """Return the publication date (or storage date) as sortable text."""
        return self.head.published or self.head.created_at or ""


QUEUE_STATUSES = ("todo", "mine", "skipped", "disputed", "all")
QUEUE_ORIGINS = ("submission",)  # "": every queued cluster; "submission": only those a reader submitted
QUEUE_ORDERS = ("score", "uncertain", "newest")
MAX_SEARCH_CHARS = 200  # a search longer than this is cut: nobody types more, and it bounds the query


@dataclass
class QueueFilters:
    """What the analyst asked the queue to show, carried through every link so nobody loses their place."""

    sector: str = ""
    type: str = ""
    outlet: str = ""
    date_from: str = ""  # ISO dates; typed as dd-mm-jjjj (pipeline/dates.py)
    date_to: str = ""
    status: str = "todo"
    order: str = "score"
    search: str = ""  # words that the title or text must contain (the store's full-text index)
    origin: str = ""

    @classmethod
    def from_args(cls, args) -> QueueFilters:
        """Read the filters from request arguments, ignoring unknown values and unreadable dates."""
        status = args.get("status", "todo")
        order = args.get("order", "score")
        return cls(sector=args.get("sector", ""), type=args.get("type", ""), outlet=args.get("outlet", ""),
                   date_from=_iso_or_empty(args.get("date_from", "")), date_to=_iso_or_empty(args.get("date_to", "")),
                   status=status if status in QUEUE_STATUSES else "todo",
                   order=order if order in QUEUE_ORDERS else "score",
                   search=" ".join(args.get("search", "").split())[:MAX_SEARCH_CHARS],
                   origin=args.get("origin", "") if args.get("origin", "") in QUEUE_ORIGINS else "")

    def as_args(self) -> dict[str, str]:
        """Return the non-default filters as URL arguments."""
        defaults = QueueFilters()
        return {k: v for k, v in self.__dict__.items() if v and v != getattr(defaults, k)}


def date_problems(args) -> list[str]:
    """Return a message per date argument that is not a date (from_args leaves such a date out)."""
    problems = []
    for name, shown in (("date_from", "From"), ("date_to", "To")):
        try:
            parse_nl_date(args.get(name, ""))
        except ConfigError as exc:
            problems.append(f"{shown}: {exc}. That date filter is left out.")
    return problems


def _iso_or_empty(text: str) -> str:
    try:
        return parse_nl_date(text) or ""
    except ConfigError:
        return ""


@dataclass(frozen=True)
class QueueMarks:
    """The marks of a page of queue rows: the clusters a reader sent in and those the analyst parked."""

    submitted: frozenset[int] = frozenset()
    skipped: frozenset[int] = frozenset()

    def is_submitted(self, cluster_id: int) -> bool:
        """Tell whether a reader submitted this cluster of the page (its "ingezonden" mark)."""
        return cluster_id in self.submitted


@dataclass(frozen=True)
class QueuePlace:
    """Where one cluster stands in the filtered queue: its neighbours and its position."""

    prev_id: int | None
    next_id: int | None
    position: str


@dataclass(frozen=True)
class ScoreRecord:
    """One article's public score record (a `radar score` line), typed from model output to JSON or store."""

    id: object
    cocreation_score: float
    flagged: bool
    sector: str | None
    sector_scores: dict
    type: str | None
    type_scores: dict
    sector_confident: bool
    type_confident: bool
    evidence: list
    rule_score: float
    model_version: str
    codebook_version: str

    def public(self) -> dict:
        """Return the record as the public JSON object, fields in their documented order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def prediction_row(self) -> dict:
        """Return the store's predictions row; an unsure sector or type is stored as no suggestion.

        A wrong prefill anchors the analyst, so only confident labels reach the review form; the
        probabilities stay visible beside it.
        """
        return {"article_id": self.id, "model_version": self.model_version, "codebook_version": self.codebook_version,
                "cocreation_score": self.cocreation_score, "rule_score": self.rule_score, "flagged": self.flagged,
                "sector": self.sector if self.sector_confident else None, "sector_scores": self.sector_scores,
                "type": self.type if self.type_confident else None, "type_scores": self.type_scores,
                "evidence": self.evidence}


@dataclass(frozen=True)
class Submission:
    """One example a reader sent through the public form, as stored; name and e-mail are never published."""

    id: int
    url: str
    note: str
    name: str
    email: str
    ip_hash: str
    created_at: str
    status: str
    reason: str
    attempts: int
    article_id: int | None
    processed_at: str | None
