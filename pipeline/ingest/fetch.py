"""Feeds and pages over HTTP: robots.txt, per-host pacing, retries, size caps, address safety."""

from __future__ import annotations

import ipaddress
import logging
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from pipeline.errors import FetchError
from pipeline.records import Response
from pipeline.settings import Settings
from pipeline.ingest.transport import PinnedAdapter, RequestDeadline, describe_connection_error, retry_class_for

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


def read_target(url: str) -> tuple[str, str, int | None]:
    """Return (scheme, host, port) of an http(s) URL as the HTTP library will read it.

    urllib.parse and urllib3 disagree on some URLs (`http://127.0.0.1:1\\@public/` is public to
    one and loopback to the other); such a URL is refused instead of guessing which one connects.
    """
    try:
        ours, theirs = urlsplit(url), parse_url(url)
        same = (ours.scheme.lower(), _normalise_host(ours.hostname or ""), ours.port) == (
            (theirs.scheme or "").lower(), (theirs.host or "").strip("[]").lower(), theirs.port)
    except (ValueError, LocationParseError) as exc:
        raise FetchError("bad_url", f"unreadable URL {url!r}: {exc}") from exc
    if theirs.scheme not in ("http", "https") or not theirs.host:
        raise FetchError("bad_url", f"not an http(s) URL: {url!r}")
    if not same:
        raise FetchError("ambiguous_url", f"{url!r} reads as different hosts to different parsers; fix the link")
    return theirs.scheme, theirs.host.strip("[]"), theirs.port


def _normalise_host(name: str) -> str:
    # The same IDNA and case rules urllib3 applies, so that only real disagreements differ.
    if not name:
        return ""
    return (parse_url(f"//[{name}]" if ":" in name else f"//{name}").host or "").strip("[]").lower()


def resolve_addresses(name: str) -> list[str]:
    """Return every address a host name resolves to, in the resolver's order (numeric names resolve to themselves)."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("dns_error", f"name not found ({name})", retryable=True) from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # str: typeshed also allows AF_PACKET's int


# IPv6 ranges that carry an IPv4 address in their last 32 bits (RFC 4291 IPv4-compatible, RFC 6052 NAT64): a
# translator or a dual stack delivers them to that IPv4 address, so they are as private as it is. Python 3.11's
# is_global counts both as global, and the local-use NAT64 range of RFC 8215 too, which IANA lists as not
# globally reachable (where its IPv4 part sits depends on the operator's prefix length).
IPV4_IN_LAST_32_BITS = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))
LOCAL_USE_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def is_public_address(address: str) -> bool:
    """Tell whether an IP address is a public (global) one, and so is any IPv4 address it carries."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if not ip.is_global or ip in LOCAL_USE_NAT64:
        return False
    return all(v4.is_global for v4 in _embedded_ipv4(ip))


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    embedded = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    if any(ip in network for network in IPV4_IN_LAST_32_BITS):
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return embedded


def is_public_host(host: str) -> bool:
    """Tell whether every address a host name resolves to is a public (global) address."""
    name = urlsplit(f"//{host}").hostname or ""
    return _all_public(resolve_addresses(name))


def _all_public(addresses: Iterable[str]) -> bool:
    return all(is_public_address(address) for address in addresses)


class HostPacer:
    """Keep at least `delay` seconds between two requests to the same host."""

    def __init__(self, delay: float, stopped: threading.Event | None = None):
        self.delay = delay
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopped = stopped or threading.Event()  # set: waits end at once (the stage is over)

    def wait(self, host: str, delay: float | None = None) -> None:
        """Sleep until the host may be asked again, then book the next slot."""
        gap = self.delay if delay is None else max(self.delay, delay)
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + gap
        if start > now:
            self._stopped.wait(start - now)


class HttpClient:
    """A polite HTTP client: identifies itself, paces per host, retries only what is worth it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._stopped = threading.Event()
        self.pacer = HostPacer(settings.host_delay, self._stopped)
        self.session = requests.Session()
        # No proxies from the environment: through a proxy the address check would mean nothing.
        self.session.trust_env = False
        self.session.headers.update({"User-Agent": settings.user_agent, "Accept-Language": "nl,en;q=0.5"})
        retry = retry_class_for(self._stopped)(
            total=settings.retries, connect=settings.retries, read=settings.retries, status=settings.retries,
            redirect=0, status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
            backoff_factor=settings.backoff, respect_retry_after_header=True,
            # urllib3 annotates int but only compares it with seconds, so a fractional setting works as such.
            retry_after_max=settings.max_retry_after,  # type: ignore[arg-type]
            raise_on_status=False, raise_on_redirect=False,
        )
        adapter = PinnedAdapter(max_retries=retry, pool_connections=32, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._robots: dict[str, RobotFileParser | FetchError] = {}
        self._robots_lock = threading.Lock()
        self._active: set[RequestDeadline] = set()
        self._active_lock = threading.Lock()

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def stop(self) -> None:
        """End every request in flight now and refuse new ones (a stage ran out of time)."""
        self._stopped.set()
        with self._active_lock:
            active = list(self._active)
        for deadline in active:
            deadline.expire()

    def get(
        self, url: str, *, accept: set[str], headers: dict[str, str] | None = None,
        allow_private: bool = False, check_robots: bool = False, trust_private_origin: bool = False,
    ) -> Response:
        """GET a URL, following at most max_redirects redirects, each hop checked for safety.

        With trust_private_origin, a URL whose own host is private (an intranet feed the operator
        configured) may stay on private addresses. That is decided on the addresses the first hop
        connects to, never on a lookup of its own that a rebinding name could answer differently.
        """
        started = time.monotonic()
        current, private_origin = url, False
        for hop in range(self.settings.max_redirects + 1):
            name, addresses = self._resolve_target(current)
            if hop == 0 and trust_private_origin and not _all_public(addresses):
                private_origin = allow_private = True
            self._check_target(current, name, addresses, allow_private, check_robots)
            location, response = self._hop(current, addresses, headers, accept)
            if response is None:
                current = urljoin(current, location)
                continue
            response.url, response.redirects, response.private_origin = url, hop, private_origin
            response.elapsed = time.monotonic() - started
            return response
        raise FetchError("too_many_redirects", f"more than {self.settings.max_redirects} redirects from {url}")

    @staticmethod
    def _resolve_target(url: str) -> tuple[str, tuple[str, ...]]:
        """Return the host name of a URL, read as urllib3 reads it, and the addresses it resolves to."""
        _, name, _ = read_target(url)
        return name, tuple(resolve_addresses(name))

    def _check_target(self, url: str, name: str, addresses: tuple[str, ...], allow_private: bool,
                      check_robots: bool) -> None:
        """Raise FetchError unless the URL may be fetched from these addresses."""
        if not (allow_private or self.settings.allow_private_addresses or _all_public(addresses)):
            raise FetchError("private_address", f"{name} resolves to a non-public address")
        if check_robots and not self.robots_allow(url, allow_private):
            raise FetchError("robots_disallowed", f"robots.txt of {host_of(url)} disallows {urlsplit(url).path or '/'}")

    def _hop(self, url: str, addresses: tuple[str, ...], headers: dict[str, str] | None,
             accept: set[str]) -> tuple[str, Response | None]:
        """Make one request within the request deadline; return (redirect location, None) or ("", response)."""
        host = host_of(url)
        self.pacer.wait(host, self._crawl_delay(host))  # politeness waits come before the deadline starts
        if self._stopped.is_set():
            raise FetchError("stopped", "the stage ran out of time; tried again next run", retryable=True)
        resp = None
        deadline = RequestDeadline(self.settings.request_deadline)
        with self._active_lock:
            self._active.add(deadline)
        try:
            with deadline:  # left before the response is closed, so a late cut never hits a pooled connection
                resp = self._request(url, addresses, headers, deadline)
                if resp.is_redirect or resp.is_permanent_redirect:
                    return resp.headers.get("location", ""), None
                return "", self._finish(url, resp, accept, deadline)
        finally:
            with self._active_lock:
                self._active.discard(deadline)
            if resp is not None:
                resp.close()

    def _request(self, url: str, addresses: tuple[str, ...], headers: dict[str, str] | None,
                 deadline: RequestDeadline) -> requests.Response:
        prepared = self.session.prepare_request(requests.Request("GET", url, headers=headers))
        # Read by PinnedAdapter: connect to what was checked. requests has no field for it, hence the ignore.
        prepared.pinned_addresses = addresses  # type: ignore[attr-defined]
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            return self.session.send(prepared, timeout=timeout, stream=True, allow_redirects=False)
        except requests.exceptions.RequestException as exc:
            raise _request_error(exc, deadline, urlsplit(url).netloc) from exc

    def _finish(self, url: str, resp: requests.Response, accept: set[str], deadline: RequestDeadline) -> Response:
        headers = {k.lower(): v for k, v in resp.headers.items()}
        if resp.status_code == 304:
            return Response(url, url, 304, headers, b"", 0.0)
        _raise_for_status(resp, url)
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in accept:
            raise FetchError("unsupported_content_type", f"{media} at {url}", status=resp.status_code)
        body = self._read_capped(resp, deadline)
        return Response(url, url, resp.status_code, headers, body, 0.0)

    def _read_capped(self, resp: requests.Response, deadline: RequestDeadline) -> bytes:
        cap = self.settings.max_bytes
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise FetchError("too_large", f"Content-Length {declared} > {cap} bytes", status=resp.status_code)
        chunks, size = [], 0
        try:
            for chunk in resp.iter_content(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise FetchError("too_large", f"body exceeds {cap} bytes", status=resp.status_code)
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            if deadline.expired:
                raise _deadline_error(deadline) from exc
            words = describe_connection_error(exc)
            raise FetchError("timeout" if words == "timed out" else "read_error", f"{words} while reading the answer",
                             retryable=True) from exc
        if deadline.expired:  # a cut socket ends a body without a length as if it were complete
            raise _deadline_error(deadline)
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
                # typeshed leaves out allow_all and disallow_all, which RobotFileParser.read() sets the same way.
                parser.allow_all = True  # type: ignore[attr-defined]  # no robots.txt: all allowed (RFC 9309 2.3.1.3)
            elif exc.status in (401, 403):
                parser.disallow_all = True  # type: ignore[attr-defined]
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


def _raise_for_status(resp: requests.Response, url: str) -> None:
    status = resp.status_code
    if status < 400:
        return
    if status in RETRY_STATUSES or status >= 500:
        raise FetchError(f"http_{status}", url, retryable=True, status=status)
    raise FetchError(f"http_{status}", url, retryable=False, status=status)


def _deadline_error(deadline: RequestDeadline) -> FetchError:
    return FetchError("timeout", f"no complete answer within the request deadline of {deadline.seconds:g} s",
                      retryable=True)


def _request_error(exc: requests.exceptions.RequestException, deadline: RequestDeadline, where: str) -> FetchError:
    """Return the FetchError for a failed request; a cut by the deadline is a timeout whatever it looked like.

    The detail is a few words and the address (`connection refused (127.0.0.1:8765)`), never requests' nested
    reprs: it is the one line a run report and `radar status` give the failure.
    """
    if deadline.expired:
        return _deadline_error(deadline)
    words = describe_connection_error(exc)
    detail = f"{words} ({where})"
    # A read time-out after the last retry reaches us as a ConnectionError (urllib3's MaxRetryError): a time-out.
    if isinstance(exc, requests.exceptions.Timeout) or words == "timed out":
        return FetchError("timeout", detail, retryable=True)
    if isinstance(exc, requests.exceptions.RetryError):
        return FetchError("retries_exhausted", detail, retryable=True)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return FetchError("connection_error", detail, retryable=True)
    return FetchError("http_error", detail)


def map_by_host(
    tasks: Iterable[T], url_of: Callable[[T], str], work: Callable[[T], R], workers: int,
    until: float | None = None, on_expiry: Callable[[], None] | None = None,
) -> Iterator[tuple[T, R | BaseException]]:
    """Run work() on tasks, one host at a time per thread, different hosts concurrently.

    Results are yielded in the caller's thread as they finish, so the caller alone writes the
    store; an exception in one task is yielded as its result and never stops the others.
    At `until` (time.monotonic()) no more results are yielded: on_expiry() is called to cut the
    work in flight, and tasks without a result are left to the caller (they stay as they were).
    """
    by_host: dict[str, list[T]] = {}
    for task in tasks:
        by_host.setdefault(host_of(url_of(task)), []).append(task)
    done: queue.SimpleQueue[tuple[T, R | BaseException] | None] = queue.SimpleQueue()
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
                left = None if until is None else until - time.monotonic()
                try:
                    if left is not None and left <= 0:
                        raise queue.Empty  # checked first: a busy queue must not carry the stage past its end
                    result = done.get(timeout=left)
                except queue.Empty:
                    log.warning("stage deadline reached with %d host(s) still busy; the rest waits", remaining)
                    stop.set()
                    if on_expiry is not None:
                        on_expiry()
                    return
                if result is None:
                    remaining -= 1
                else:
                    yield result
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

