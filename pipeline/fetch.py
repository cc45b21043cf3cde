"""Feeds and pages over HTTP: robots.txt, per-host pacing, retries, size caps, address safety."""

from __future__ import annotations

import ipaddress
import logging
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pipeline.errors import FetchError
from pipeline.records import Response
from pipeline.settings import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)
HTML_TYPES = {"text/html", "application/xhtml+xml", ""}  # "" : many servers send no type; sniffed later
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/xml", "text/xml",
              "application/rdf+xml", "application/feed+json", "text/html", "text/plain", ""}
CHUNK = 64 * 1024
T = TypeVar("T")
R = TypeVar("R")


def host_of(url: str) -> str:
    """Return the host:port a URL points at, lower-cased."""
    return urlsplit(url).netloc.lower()


def is_public_host(host: str) -> bool:
    """Tell whether every address a host name resolves to is a public (global) address."""
    name = urlsplit(f"//{host}").hostname or ""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FetchError("dns_error", f"{name}: {exc}", retryable=True) from exc
    addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    return all(addr.is_global for addr in addresses)


class HostPacer:
    """Keep at least `delay` seconds between two requests to the same host."""

    def __init__(self, delay: float):
        self.delay = delay
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str, delay: float | None = None) -> None:
        """Sleep until the host may be asked again, then book the next slot."""
        gap = self.delay if delay is None else max(self.delay, delay)
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + gap
        if start > now:
            time.sleep(start - now)


class HttpClient:
    """A polite HTTP client: identifies itself, paces per host, retries only what is worth it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pacer = HostPacer(settings.host_delay)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": settings.user_agent, "Accept-Language": "nl,en;q=0.5"})
        retry = Retry(
            total=settings.retries, connect=settings.retries, read=settings.retries, status=settings.retries,
            redirect=0, status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
            backoff_factor=settings.backoff, respect_retry_after_header=True,
            retry_after_max=settings.max_retry_after, raise_on_status=False, raise_on_redirect=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=32, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._robots: dict[str, RobotFileParser | FetchError] = {}
        self._robots_lock = threading.Lock()

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def get(
        self, url: str, *, accept: set[str], headers: dict[str, str] | None = None,
        allow_private: bool = False, check_robots: bool = False,
    ) -> Response:
        """GET a URL, following at most max_redirects redirects, each hop checked for safety."""
        started = time.monotonic()
        current = url
        for hop in range(self.settings.max_redirects + 1):
            self._check_target(current, allow_private, check_robots)
            resp = self._request(current, headers)
            if resp.is_redirect or resp.is_permanent_redirect:
                resp.close()
                current = urljoin(current, resp.headers.get("location", ""))
                continue
            return self._finish(url, current, resp, accept, started, hop)
        raise FetchError("too_many_redirects", f"more than {self.settings.max_redirects} redirects from {url}")

    def _check_target(self, url: str, allow_private: bool, check_robots: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("bad_url", f"not an http(s) URL: {url!r}")
        if not (allow_private or self.settings.allow_private_addresses) and not is_public_host(parts.netloc):
            raise FetchError("private_address", f"{parts.hostname} resolves to a non-public address")
        if check_robots and not self.robots_allow(url, allow_private):
            raise FetchError("robots_disallowed", f"robots.txt of {parts.netloc} disallows {parts.path or '/'}")

    def _request(self, url: str, headers: dict[str, str] | None) -> requests.Response:
        host = host_of(url)
        self.pacer.wait(host, self._crawl_delay(host))
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            return self.session.get(url, headers=headers, timeout=timeout, stream=True, allow_redirects=False)
        except requests.exceptions.Timeout as exc:
            raise FetchError("timeout", str(exc), retryable=True) from exc
        except requests.exceptions.RetryError as exc:
            raise FetchError("retries_exhausted", str(exc), retryable=True) from exc
        except requests.exceptions.ConnectionError as exc:
            raise FetchError("connection_error", str(exc), retryable=True) from exc
        except requests.exceptions.RequestException as exc:
            raise FetchError("http_error", str(exc)) from exc

    def _finish(self, url: str, final: str, resp: requests.Response, accept: set[str], started: float,
                hops: int) -> Response:
        try:
            headers = {k.lower(): v for k, v in resp.headers.items()}
            if resp.status_code == 304:
                return Response(url, final, 304, headers, b"", time.monotonic() - started, hops)
            _raise_for_status(resp)
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media not in accept:
                raise FetchError("unsupported_content_type", f"{media} at {final}", status=resp.status_code)
            body = self._read_capped(resp)
            return Response(url, final, resp.status_code, headers, body, time.monotonic() - started, hops)
        finally:
            resp.close()

    def _read_capped(self, resp: requests.Response) -> bytes:
        cap = self.settings.max_bytes
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FetchError("too_large", f"Content-Length {declared} > {cap} bytes", status=resp.status_code)
        # A slow drip can keep each read under the read timeout forever: bound the whole body too.
        # The clock starts here, not at the request: pacing and Retry-After waits are politeness.
        deadline = time.monotonic() + self.settings.read_timeout * 3
        chunks, size = [], 0
        try:
            for chunk in resp.iter_content(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise FetchError("too_large", f"body exceeds {cap} bytes", status=resp.status_code)
                if time.monotonic() > deadline:
                    raise FetchError("timeout", "body took too long", retryable=True)
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            raise FetchError("timeout" if "timed out" in str(exc) else "read_error", str(exc), retryable=True) from exc
        return b"".join(chunks)

    # -- robots.txt ---------------------------------------------------------
    def robots_allow(self, url: str, allow_private: bool = False) -> bool:
        """Tell whether robots.txt of the URL's host lets our User-Agent fetch it."""
        parser = self._robots_for(url, allow_private)
        if isinstance(parser, FetchError):
            raise parser
        return parser.can_fetch(self.settings.user_agent, url)

    def _robots_for(self, url: str, allow_private: bool) -> RobotFileParser | FetchError:
        parts = urlsplit(url)
        host = parts.netloc.lower()
        with self._robots_lock:
            cached = self._robots.get(host)
        if cached is not None:
            return cached
        parser = self._load_robots(f"{parts.scheme}://{parts.netloc}/robots.txt", allow_private)
        with self._robots_lock:
            self._robots[host] = parser
        return parser

    def _load_robots(self, robots_url: str, allow_private: bool) -> RobotFileParser | FetchError:
        parser = RobotFileParser(robots_url)
        try:
            resp = self.get(robots_url, accept={"text/plain", "text/html", "application/octet-stream", ""}, allow_private=allow_private)
            parser.parse(resp.body.decode("utf-8", errors="replace").splitlines())
        except FetchError as exc:
            if exc.status in (404, 410) or (exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403, 429)):
                parser.allow_all = True  # no robots.txt: everything is allowed (RFC 9309 2.3.1.3)
            elif exc.status in (401, 403):
                parser.disallow_all = True
            else:  # unreachable robots.txt: assume complete disallow for now, retry next run (RFC 9309 2.3.1.4)
                return FetchError("robots_unavailable", f"{robots_url}: {exc}", retryable=True)
        return parser

    def _crawl_delay(self, host: str) -> float | None:
        with self._robots_lock:
            parser = self._robots.get(host)
        if isinstance(parser, RobotFileParser):
            delay = parser.crawl_delay(self.settings.user_agent)
            # Honoured up to max_retry_after: a site asking for minutes per page is read slowly, not never.
            return min(float(delay), self.settings.max_retry_after) if delay else None
        return None


def _raise_for_status(resp: requests.Response) -> None:
    status = resp.status_code
    if status < 400:
        return
    if status in RETRY_STATUSES or status >= 500:
        raise FetchError(f"http_{status}", f"{resp.url}", retryable=True, status=status)
    raise FetchError(f"http_{status}", f"{resp.url}", retryable=False, status=status)


def map_by_host(
    tasks: Iterable[T], url_of: Callable[[T], str], work: Callable[[T], R], workers: int,
) -> Iterator[tuple[T, R | BaseException]]:
    """Run work() on tasks, one host at a time per thread, different hosts concurrently.

    Results are yielded in the caller's thread as they finish, so the caller alone writes the
    store; an exception in one task is yielded as its result and never stops the others.
    """
    by_host: dict[str, list[T]] = {}
    for task in tasks:
        by_host.setdefault(host_of(url_of(task)), []).append(task)
    done: "queue.SimpleQueue[tuple[T, R | BaseException] | None]" = queue.SimpleQueue()
    stop = threading.Event()  # set when the caller stops consuming, so no more pages are fetched for nothing

    def run_host(host_tasks: list[T]) -> None:
        for task in host_tasks:
            if stop.is_set():
                break
            try:
                done.put((task, work(task)))
            except BaseException as exc:  # noqa: BLE001 - reported to the caller, never lost
                done.put((task, exc))
        done.put(None)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fetch") as pool:
        for host_tasks in by_host.values():
            pool.submit(run_host, host_tasks)
        remaining = len(by_host)
        try:
            while remaining:
                result = done.get()
                if result is None:
                    remaining -= 1
                else:
                    yield result
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

