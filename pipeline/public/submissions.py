"""Readers' submissions: the public form's rules, and the nightly run's stage that fetches what readers sent.

A submission is queued by `radar public` and fetched by the next `radar run`, not by a worker in the public
app: the run already holds the lock, the polite per-host pacing, robots.txt, dedupe and scoring, so a reader's
link takes exactly the path of a feed's link, and the public process never makes an outbound request (a
submission cannot make it fetch anything while the reader waits). The cost is a delay until the next run.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import time
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.ingest.dedupe import ClusterHeads, load_heads, save_article_deduplicated
from pipeline.errors import ExtractError, FetchError, SubmissionRefused
from pipeline.ingest.extract import build_article, canonical_url, reads_as_dutch
from pipeline.text import cap_article
from pipeline.ingest.fetch import HTML_TYPES, HttpClient, is_public_address, map_by_host, read_target
from pipeline.records import Submission
from pipeline.settings import Settings
from pipeline.store import Store

log = logging.getLogger(__name__)

MAX_URL_CHARS = 2000
MAX_NOTE_CHARS = 1000
MAX_NAME_CHARS = 100
MAX_EMAIL_CHARS = 254
RATE_WINDOW = timedelta(hours=1)
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


# -- the form's rules -------------------------------------------------------------------------------------------
def clean_text(text: str | None, limit: int, *, lines: bool = False) -> str:
    """Return a reader's text without control characters (newlines kept when `lines`), trimmed and capped."""
    keep = "\n" if lines else ""
    cleaned = "".join(ch for ch in (text or "").replace("\r\n", "\n") if ch in keep
                      or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    return cleaned.strip()[:limit]


def check_url(raw: str | None, *, allow_loopback: bool = False) -> str:
    """Return the submitted URL when it may be queued: http(s), not too long, no credentials, no private host."""
    url = (raw or "").strip()
    if not url:
        raise SubmissionRefused("url_missing", "Vul het adres (URL) van het artikel in.")
    if len(url) > MAX_URL_CHARS:
        raise SubmissionRefused("url_too_long", f"Dat adres is langer dan {MAX_URL_CHARS} tekens.")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise SubmissionRefused("bad_url", "Een adres bevat geen spaties of onzichtbare tekens.")
    try:
        _scheme, host, _port = read_target(url)
    except FetchError as exc:
        raise SubmissionRefused("bad_url", "Geef een volledig webadres dat begint met http:// of https://.") from exc
    if urlsplit(url).username is not None:
        raise SubmissionRefused("bad_url", "Een adres met een gebruikersnaam of wachtwoord nemen we niet aan.")
    if _is_private_name(host) and not (allow_loopback and _is_loopback_name(host)):
        raise SubmissionRefused("private_address", "Dat adres is niet openbaar op internet.")
    return url


def _is_private_name(host: str) -> bool:
    # Only what the address says by itself; names are resolved, and checked again, when the run fetches them.
    name = host.lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        return not ipaddress.ip_address(name).is_global
    except ValueError:
        return "." not in name  # a bare intranet name


def _is_loopback_name(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_email(raw: str | None) -> str:
    """Return an optional e-mail address, refusing one that cannot be an address."""
    email = clean_text(raw, MAX_EMAIL_CHARS + 1)
    if not email:
        return ""
    local, _, domain = email.rpartition("@")
    if len(email) > MAX_EMAIL_CHARS or not local or "." not in domain or any(ch.isspace() for ch in email):
        raise SubmissionRefused("bad_email", "Dat e-mailadres klopt niet; laat het leeg als je het niet wilt geven.")
    return email


def address_key(settings: Settings) -> bytes:
    """Return the secret key of the address hashes, made once per data folder (readable by its owner only)."""
    path = Path(settings.data_dir) / "public-address.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        return path.read_bytes()


def address_hash(address: str, key: bytes) -> str:
    """Return a keyed hash of a reader's IP address: enough to count, not to recover the address."""
    return hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()


def check_rate(store: Store, settings: Settings, ip_hash: str, now: datetime | None = None) -> None:
    """Refuse a submission when this address, or everyone together, sent too many in the last hour."""
    since = ((now or datetime.now(UTC)) - RATE_WINDOW).isoformat(timespec="seconds")
    if store.count_submissions_since(since, ip_hash) >= settings.public_rate_per_ip:
        raise SubmissionRefused("rate_ip", "Je hebt het afgelopen uur al veel voorbeelden gestuurd. "
                                           "Probeer het later nog eens.", status=429)
    if store.count_submissions_since(since) >= settings.public_rate_global:
        raise SubmissionRefused("rate_global", "Er komen nu erg veel inzendingen binnen. "
                                               "Probeer het over een uur nog eens.", status=429)


def accept_submission(store: Store, settings: Settings, form: dict, ip_hash: str) -> int:
    """Check a posted form and queue it for the next run; return the submission id."""
    url = check_url(form.get("url"), allow_loopback=settings.submission_allow_loopback)
    email = check_email(form.get("email"))
    check_rate(store, settings, ip_hash)
    note = clean_text(form.get("note"), MAX_NOTE_CHARS, lines=True)
    name = clean_text(form.get("name"), MAX_NAME_CHARS)
    submission_id = store.add_submission(url, note, name, email, ip_hash)
    log.info("submission %d queued", submission_id)
    return submission_id


# -- the run's stage: fetch what readers sent -------------------------------------------------------------------
class SubmissionClient(HttpClient):
    """The run's polite client with the submissions' own rule: private addresses are refused, whatever the settings.

    Every hop (redirects and robots.txt too) is checked on the addresses it connects to. Only the test-only
    `submission_allow_loopback` lets loopback through; nothing lets a private network address through.
    """

    def __init__(self, settings: Settings):
        super().__init__(settings.model_copy(update={"allow_private_addresses": False}))
        self.allow_loopback = settings.submission_allow_loopback

    def _check_target(self, url: str, name: str, addresses: tuple[str, ...], allow_private: bool,
                      check_robots: bool) -> None:
        if not all(self._allowed(address) for address in addresses):
            raise FetchError("private_address", f"{name} resolves to a non-public address")
        super()._check_target(url, name, addresses, True, check_robots)

    def _allowed(self, address: str) -> bool:
        plain = address.split("%")[0]
        return is_public_address(plain) or (self.allow_loopback and ipaddress.ip_address(plain).is_loopback)


def retention_cutoff(settings: Settings, now: datetime | None = None) -> str:
    """Return the ISO time before which a submission's personal fields are past `submission_retention`."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.submission_retention)
    return cutoff.isoformat(timespec="seconds")  # the form of submissions.created_at, so the two compare as text


def purge_expired_personal(store: Store, settings: Settings, now: datetime | None = None) -> int:
    """Wipe name, e-mail and address code of submissions past the retention the form promises; return how many."""
    count = store.purge_submission_personal(retention_cutoff(settings, now))
    log.info("submissions: personal fields wiped from %d older than %d days", count, settings.submission_retention)
    return count


def process_submissions(store: Store, settings: Settings, run_id: int | None) -> dict[str, int]:
    """Fetch, extract, check, dedupe and store every due submission; return the count per outcome."""
    counts: dict[str, int] = {}
    to_fetch = []
    for submission in store.due_submissions(settings.max_attempts):
        existing = store.find_article(canonical_url=canonical_url(submission.url))
        if existing is not None:  # already stored: the note joins it, nothing is fetched or duplicated
            store.finish_submission(submission.id, "joined", "", existing)
            _count(counts, "joined")
        else:
            to_fetch.append(submission)
    if to_fetch:
        _fetch_submissions(store, settings, run_id, to_fetch, counts)
    log.info("submissions: %s", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none due")
    return counts


def _fetch_submissions(store: Store, settings: Settings, run_id: int | None, due: list[Submission],
                       counts: dict[str, int]) -> None:
    heads = load_heads(store, settings.near_duplicate_threshold)
    client = SubmissionClient(settings)

    def work(submission: Submission):
        response = client.get(submission.url, accept=HTML_TYPES, check_robots=True)
        article = build_article(response.body, response.final_url, content_type=response.headers.get("content-type", ""),
                                min_chars=settings.min_text_chars)
        return response, cap_article(article, settings.max_text_chars)

    until = time.monotonic() + settings.article_stage_deadline  # the article stage's limit, for this stage too
    try:
        for submission, result in map_by_host(due, lambda s: s.url, work, settings.workers, until=until,
                                              on_expiry=client.stop):
            _count(counts, record_submission(store, heads, submission, result, run_id))
    finally:
        client.close()


def record_submission(store: Store, heads: ClusterHeads, submission: Submission, result,
                      run_id: int | None) -> str:
    """Store one fetched submission as an article (or join the one stored), or record why not; return the outcome."""
    if isinstance(result, BaseException):
        return _submission_failed(store, submission, result)
    response, article = result
    if not reads_as_dutch(article):
        store.finish_submission(submission.id, "refused", f"not_dutch: page language {article.language!r}")
        return "refused"
    existing = store.find_article(canonical_url=article.canonical_url)  # a redirect to a stored article
    if existing is None:
        host = urlsplit(article.url).hostname or ""
        article = replace(article, origin="submission", provenance=str(submission.id), source="submission",
                          outlet=article.sitename or host.removeprefix("www."))
        item_id = store.submission_item(response.final_url, article.canonical_url, article.title)
        save_article_deduplicated(store, heads, article, run_id=run_id, item_id=item_id, response=response)
        existing = store.find_article(canonical_url=article.canonical_url)
        store.finish_submission(submission.id, "stored", "", existing)
        return "stored"
    store.finish_submission(submission.id, "joined", "", existing)
    return "joined"


def _submission_failed(store: Store, submission: Submission, exc: BaseException) -> str:
    # What fetching again would change (time-outs, 5xx, a deadline) is retried next run; the rest is final.
    if isinstance(exc, FetchError):
        status, reason = ("failed" if exc.retryable else "refused"), str(exc)  # the message starts with its code
    elif isinstance(exc, ExtractError):
        status, reason = "refused", str(exc)
    else:
        log.error("submission %d: unexpected error %r", submission.id, exc)
        status, reason = "failed", f"internal_error: {exc!r}"
    store.finish_submission(submission.id, status, reason)
    return status


def _count(bucket: dict[str, int], key: str) -> None:
    bucket[key] = bucket.get(key, 0) + 1
