"""The nightly run: numbered stages, counts, a run report and a lock so runs never overlap."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from collections.abc import Iterator
from typing import TypedDict, Unpack

from filelock import FileLock, Timeout
from tqdm import tqdm

from pipeline.ingest.dedupe import ClusterHeads, load_heads, save_article_deduplicated
from pipeline.errors import ExtractError, FetchError, RadarError, RunCrashed, RunLocked
from pipeline.ingest.extract import build_article, reads_as_dutch
from pipeline.text import cap_article
from pipeline.ingest.feeds import load_feed_list, parse_feed
from pipeline.ingest.fetch import FEED_TYPES, HTML_TYPES, HttpClient, map_by_host
from pipeline.records import Article, FeedConfig, FeedItem, Response
from pipeline.settings import Settings
from pipeline.store import Store, open_store

log = logging.getLogger(__name__)

# Policy refusals are final: fetching again would give the same answer.
SKIP_REASONS = {"robots_disallowed", "private_address", "unsupported_content_type", "too_large",
                "too_many_redirects", "bad_url", "duplicate_url", "feed_entities_refused"}


@dataclass
class FeedOutcome:
    """What one feed did in a run."""

    name: str
    status: str  # ok | not_modified | failed
    entries: int = 0
    new: int = 0
    known: int = 0
    error: str = ""
    problem: str = ""


@dataclass
class RunReport:
    """The counts and outcomes of one run, stored in the runs table and printed."""

    run_id: int
    status: str = "running"
    feeds: list[FeedOutcome] = field(default_factory=list)
    articles_new: int = 0
    articles_duplicate: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    scoring: dict = field(default_factory=dict)
    failed_first_try: int = 0  # failures of items never tried before; retries of old failures do not fail a run
    articles_deferred: int = 0  # items left for the next run because the article stage reached its deadline
    submissions: dict[str, int] = field(default_factory=dict)  # readers' submissions by outcome (stored, joined...)
    submissions_purged: int = 0  # submissions whose name, e-mail and address code passed submission_retention
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def feeds_failed(self) -> int:
        """Return how many feeds failed."""
        return sum(f.status == "failed" for f in self.feeds)

    @property
    def articles_failed(self) -> int:
        """Return how many articles failed (to be retried)."""
        return sum(self.failed.values())

    def as_dict(self) -> dict:
        """Return the report as plain JSON-ready data."""
        data = asdict(self)
        data.update(feeds_failed=self.feeds_failed, articles_failed=self.articles_failed)
        return data


@contextmanager
def run_lock(settings: Settings) -> Iterator[None]:
    """Hold the run lock; a second run fails at once with RunLocked."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout as exc:
        raise RunLocked(f"another radar run is in progress (lock {settings.lock_path}); try again later") from exc
    try:
        yield
    finally:
        lock.release()


def run_nightly(settings: Settings) -> RunReport:
    """Fetch feeds, fetch and extract new articles, dedupe and store them; return the report."""
    with run_lock(settings):
        store = open_store(settings)
        try:
            store.close_interrupted_runs()
            report = RunReport(run_id=store.start_run("run"))
            try:
                run_stages(store, report, settings)
            except RadarError:
                store.finish_run(report.run_id, "failed", report.as_dict())
                raise
            except Exception as exc:
                # Every article stored so far stays stored; the run is recorded with what it did.
                log.exception("run %d stopped on an unexpected error", report.run_id)
                store.finish_run(report.run_id, "crashed", {**report.as_dict(), "error": repr(exc)})
                raise RunCrashed(f"run {report.run_id} stopped on an unexpected error: {exc!r}; "
                                 "what it stored is kept, the next run continues") from exc
            report.status = judge_run(report, settings)
            store.finish_run(report.run_id, report.status, report.as_dict())
            return report
        finally:
            store.close()


def run_stages(store: Store, report: RunReport, settings: Settings) -> None:
    """Run the numbered stages in order, timing each."""
    # First: what the public form promises readers must not wait on a feed list or a fetch that fails.
    _timed(report, "0_purge", lambda: purge_submissions(store, report, settings))
    configs = load_feed_list(settings.feeds_file)
    client = HttpClient(settings)
    try:
        _timed(report, "1_feeds", lambda: fetch_feeds(store, client, configs, report, settings))
        _timed(report, "2_articles", lambda: fetch_articles(store, client, report, settings))
    finally:
        client.close()
    _timed(report, "2b_submissions", lambda: fetch_submissions(store, report, settings))
    _timed(report, "3_scoring", lambda: score_new_articles(store, report, settings))


def _timed(report: RunReport, stage: str, func) -> None:
    started = time.monotonic()
    func()
    report.durations[stage] = round(time.monotonic() - started, 3)


def judge_run(report: RunReport, settings: Settings) -> str:
    """Return 'ok' unless the model was refused or more than the allowed share of feeds or articles failed."""
    if report.scoring.get("failed"):
        return "failed"  # nothing new was scored: the analysts' queue is stale until the model is fixed
    feed_share = report.feeds_failed / len(report.feeds) if report.feeds else 0.0
    tried = report.articles_new + report.articles_duplicate + report.failed_first_try
    article_share = report.failed_first_try / tried if tried else 0.0
    return "failed" if max(feed_share, article_share) > settings.max_failed_share else "ok"


# -- stage 1: feeds -----------------------------------------------------------
def fetch_feeds(store: Store, client: HttpClient, configs: list[FeedConfig], report: RunReport,
                settings: Settings) -> None:
    """Fetch every configured feed with a conditional GET and queue its new entries.

    Each answered fetch stores with the feed whether it connected to a private address (see fetch_articles).
    """
    feed_ids = store.sync_feeds(configs)

    def fetch_one(cfg: FeedConfig) -> Response:
        etag, modified = store.feed_validators(feed_ids[cfg.name])
        headers = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", modified)) if v}
        # The operator chose the feed's address: a private one stays allowed. A public feed gets no
        # such allowance, so a redirect from it to an internal address is refused like any other.
        return client.get(cfg.url, accept=FEED_TYPES, headers=headers, trust_private_origin=True)

    for cfg, result in map_by_host(configs, lambda c: c.url, fetch_one, settings.workers):
        outcome = record_feed(store, feed_ids[cfg.name], cfg, result, report.run_id, settings)
        report.feeds.append(outcome)
    log.info("feeds: %d in, %d ok, %d not modified, %d failed", len(configs),
             sum(f.status == "ok" for f in report.feeds), sum(f.status == "not_modified" for f in report.feeds),
             report.feeds_failed)


def record_feed(store: Store, feed_id: int, cfg: FeedConfig, result: Response | BaseException, run_id: int,
                settings: Settings) -> FeedOutcome:
    """Store what one feed fetch gave: new items, not modified, or a failure with its reason."""
    if isinstance(result, BaseException):
        return _feed_failed(store, feed_id, cfg, result, run_id)
    if result.status == 304:
        store.record_fetch(run_id, "feed", cfg.url, "not_modified", status_code=304, duration=result.elapsed)
        store.record_feed_result(feed_id, "not_modified", private_origin=result.private_origin)
        return FeedOutcome(cfg.name, "not_modified")
    try:
        parsed = parse_feed(result.body, result.final_url, result.headers.get("content-type", ""),
                            settings.max_items_per_feed)
    except FetchError as exc:
        return _feed_failed(store, feed_id, cfg, exc, run_id, result)
    new, known = store.add_items(feed_id, parsed.entries, run_id)
    store.record_fetch(run_id, "feed", cfg.url, "ok", status_code=result.status, detail=parsed.problem or None,
                       size=len(result.body), duration=result.elapsed)
    store.record_feed_result(feed_id, "ok", parsed.problem or None, result.headers.get("etag"),
                             result.headers.get("last-modified"), private_origin=result.private_origin)
    return FeedOutcome(cfg.name, "ok", len(parsed.entries), new, known, problem=parsed.problem)


def _feed_failed(store: Store, feed_id: int, cfg: FeedConfig, exc: BaseException, run_id: int,
                 response: Response | None = None) -> FeedOutcome:
    reason = exc.reason if isinstance(exc, FetchError) else "internal_error"  # a short, stable code
    detail = str(exc) if isinstance(exc, FetchError) else repr(exc)
    if not isinstance(exc, FetchError):
        log.error("feed %s: unexpected error\n%s", cfg.name, "".join(traceback.format_exception(exc)))
    store.record_fetch(run_id, "feed", cfg.url, reason, detail=detail,
                       status_code=getattr(exc, "status", None) or (response.status if response else None))
    # A feed that answered with something unreadable still tells which address it came from.
    store.record_feed_result(feed_id, "failed", detail, private_origin=response.private_origin if response else None)
    return FeedOutcome(cfg.name, "failed", error=detail)


# -- stage 2: articles --------------------------------------------------------
def fetch_articles(store: Store, client: HttpClient, report: RunReport, settings: Settings) -> None:
    """Fetch, extract, dedupe and store every due item; failures are recorded and retried later.

    Links of a feed whose last answered fetch connected to a private address may be private too. That
    is stored with the feed (stage 1); a feed that never answered counts as public. A fresh lookup of the
    feed's name is never asked: a rebinding name could answer it differently from the fetch.
    """
    due = store.due_items(settings.max_attempts)
    heads = load_heads(store, settings.near_duplicate_threshold)

    def work(item: FeedItem) -> tuple[Response, Article]:
        allow = bool(item.feed_private)
        response = client.get(item.url, accept=HTML_TYPES, allow_private=allow, check_robots=True)
        article = page_to_article(
            response.body, response.final_url, content_type=response.headers.get("content-type", ""),
            fallback_title=item.title, fallback_text=item.summary, fallback_date=item.published,
            outlet=item.outlet or "", min_chars=settings.min_text_chars, max_chars=settings.max_text_chars,
            summary_truncated_from=item.summary_truncated_from,
        )
        return response, article

    show = settings.progress and sys.stderr.isatty()
    until = time.monotonic() + settings.article_stage_deadline
    done = 0
    with tqdm(total=len(due), desc="articles", unit="art", disable=not show) as bar:
        for item, result in map_by_host(due, lambda i: i.url, work, settings.workers,
                                        until=until, on_expiry=client.stop):
            store_item_result(store, heads, item, result, report)
            done += 1
            bar.update(1)
    # Items without a result keep their status and attempts: the next run takes them up again.
    report.articles_deferred = len(due) - done
    if report.articles_deferred:
        log.warning("article stage reached its deadline of %g s; %d item(s) left for the next run",
                    settings.article_stage_deadline, report.articles_deferred)
    log.info("articles: %d due, %d new, %d duplicate, %d skipped, %d failed, %d deferred", len(due),
             report.articles_new, report.articles_duplicate, sum(report.skipped.values()), report.articles_failed,
             report.articles_deferred)


class BuildOptions(TypedDict, total=False):
    """What page_to_article passes on to extract.build_article besides the page and the minimum length."""

    content_type: str
    fallback_title: str
    fallback_text: str
    fallback_date: str | None
    outlet: str
    tz: str
    known_date: str | None


def page_to_article(body: bytes, url: str, *, min_chars: int, max_chars: int, summary_truncated_from: int | None = None,
                    **build: Unpack[BuildOptions]) -> Article:
    """Turn page bytes into the Article the store gets, as the nightly run and the backfill both do.

    `build` goes to extract.build_article (content_type, fallbacks, outlet, known_date); a feed summary
    used as the text keeps the length the store cut it from.
    """
    article = build_article(body, url, min_chars=min_chars, **build)
    if article.method == "feed_summary" and summary_truncated_from:
        article.truncated_from = summary_truncated_from  # the text is a summary the store cut
    # Capped here as well as in the store, so dedupe never shingles a text the store would cut.
    return cap_article(article, max_chars)


def store_item_result(store: Store, heads: ClusterHeads, item: FeedItem,
                      result: tuple[Response, Article] | BaseException, report: RunReport) -> None:
    """Record one item's outcome: a stored article (maybe a duplicate), a skip or a failure."""
    if isinstance(result, BaseException):
        _item_failed(store, item, result, report)
        return
    response, article = result
    if not reads_as_dutch(article):
        store.mark_item(item.id, "skipped", f"not_dutch: page language {article.language!r}")
        _count(report.skipped, "not_dutch")
        return
    if store.find_article(canonical_url=article.canonical_url):
        store.mark_item(item.id, "skipped", "duplicate_url: redirects to an article already stored")
        _count(report.skipped, "duplicate_url")
        return
    if save_article_deduplicated(store, heads, article, run_id=report.run_id, item_id=item.id, response=response):
        report.articles_new += 1
    else:
        report.articles_duplicate += 1


def _item_failed(store: Store, item: FeedItem, exc: BaseException, report: RunReport) -> None:
    if isinstance(exc, FetchError):
        reason = exc.reason
        if reason in SKIP_REASONS:
            status, bucket = "skipped", report.skipped
        elif exc.status is not None and 400 <= exc.status < 500 and not exc.retryable:
            status, bucket = "gone", report.skipped  # a 4xx is final: the page is not there for us
        else:
            status, bucket = "failed", report.failed
    elif isinstance(exc, ExtractError):
        reason, status, bucket = exc.reason, "failed", report.failed
    else:
        reason, status, bucket = "internal_error", "failed", report.failed
        log.error("item %s: unexpected error\n%s", item.url, "".join(traceback.format_exception(exc)))
    store.mark_item(item.id, status, f"{reason}: {exc}")
    _count(bucket, reason)
    if bucket is report.failed and not item.attempts:
        report.failed_first_try += 1


def _count(bucket: dict[str, int], reason: str) -> None:
    bucket[reason] = bucket.get(reason, 0) + 1


def fetch_submissions(store: Store, report: RunReport, settings: Settings) -> None:
    """Fetch the readers' submissions with the same fetch, extraction, language check and dedupe (submissions.py)."""
    from pipeline.public.submissions import process_submissions

    report.submissions = process_submissions(store, settings, report.run_id)


def purge_submissions(store: Store, report: RunReport, settings: Settings) -> None:
    """Wipe the personal fields of submissions older than submission_retention, as the public form promises."""
    from pipeline.public.submissions import purge_expired_personal

    report.submissions_purged = purge_expired_personal(store, settings)


# -- stage 3: scoring ---------------------------------------------------------
def score_new_articles(store: Store, report: RunReport, settings: Settings) -> None:
    """Score and flag every article the current model has not scored; without a model, say so.

    A model that is there but refused (changed, untrusted types, another codebook) fails the stage
    and the run, after the feed and article stages have stored their work.
    """
    from pipeline.errors import ModelError, ModelMissing
    from pipeline.detect.score import Scorer, score_stored_articles
    from pipeline.detect.train import retrain_if_due

    try:
        retrained = retrain_if_due(settings, store)  # a kept model has a new version: everything is re-scored
    except (RadarError, ValueError) as exc:  # a failed retrain keeps the current model and the run going
        log.warning("retrain failed: %s", exc)
        retrained = {"retrain": f"failed: {exc}"}
    try:
        scorer = Scorer.load(settings.model_dir)
    except ModelMissing as exc:
        log.warning("scoring skipped: %s", exc)
        report.scoring = {"skipped": str(exc)}
        return
    except ModelError as exc:
        log.error("scoring failed: %s", exc)
        report.scoring = {"failed": str(exc)}
        return
    report.scoring = {"model_version": scorer.model.version, **retrained,
                      **score_stored_articles(store, scorer, report.run_id)}
    # The queue lists stories (near-duplicate clusters), so the report counts them beside the articles.
    report.scoring["flagged_stories"] = store.flagged_counts(report.run_id)[0]
    # What the queue holds now, readers' submissions included (they are queued whatever their score).
    report.scoring["queued_stories"], report.scoring["submitted_stories"] = store.queued_counts()


def summarise(report: RunReport) -> str:
    """Return a short human summary of a run report."""
    lines = [f"Run {report.run_id}: {report.status.upper()}"]
    counts = Counter(f.status for f in report.feeds)
    lines.append(f"Feeds: {len(report.feeds)} ({counts['ok']} ok, {counts['not_modified']} not modified, "
                 f"{counts['failed']} failed)")
    for feed in report.feeds:
        if feed.status == "failed":
            lines.append(f"  FAILED {feed.name}: {feed.error}")
        elif feed.problem:
            lines.append(f"  used despite a problem {feed.name}: {feed.problem}")
    lines.append(f"Articles: {report.articles_new} new, {report.articles_duplicate} duplicate, "
                 f"{sum(report.skipped.values())} skipped, {report.articles_failed} failed")
    if report.articles_deferred:
        lines.append(f"  left for the next run (article stage deadline reached): {report.articles_deferred}")
    for label, bucket in (("skipped", report.skipped), ("failed", report.failed)):
        for reason, n in sorted(bucket.items()):
            lines.append(f"  {label} {reason}: {n}")
    if report.submissions:
        lines.append("Submissions: " + ", ".join(f"{n} {k}" for k, n in sorted(report.submissions.items())))
    lines.append(f"Submissions purged (name, e-mail, address code past retention): {report.submissions_purged}")
    if report.scoring.get("failed"):
        lines.append(f"Scoring: FAILED ({report.scoring['failed']})")
    elif report.scoring.get("skipped"):
        lines.append(f"Scoring: skipped ({report.scoring['skipped']})")
    elif report.scoring:
        flagged = flagged_phrase(report.scoring.get("flagged_stories", 0), report.scoring["flagged"])
        lines.append(f"Scoring: {report.scoring['scored']} scored, {flagged} for review, "
                     f"{report.scoring.get('score_failed', 0)} failed (model {report.scoring['model_version']})")
        if "queued_stories" in report.scoring:
            queued, sent_in = report.scoring["queued_stories"], report.scoring["submitted_stories"]
            lines.append(f"Queue: {queued} {'story' if queued == 1 else 'stories'} in all, "
                         f"{sent_in} of them sent in by readers")
    lines.append("Durations: " + ", ".join(f"{k} {v:.1f}s" for k, v in report.durations.items()))
    return "\n".join(lines)


def flagged_phrase(stories: int, articles: int) -> str:
    """Say how many stories and articles were flagged, as the review queue says it ('13 stories flagged (14 articles)')."""
    return (f"{stories} {'story' if stories == 1 else 'stories'} flagged "
            f"({articles} {'article' if articles == 1 else 'articles'})")
