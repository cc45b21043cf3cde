"""The connection layer under the HTTP client: connect only to checked addresses, within a wall-clock deadline.

requests resolves a host name again when it connects, so a name checked as public could point at
127.0.0.1 a moment later (DNS rebinding). Here the pool of a host is given the addresses that were
checked, and its connections connect to those; Host, SNI and the certificate check keep the name.
A slow drip stays under every socket timeout, so each request also has a deadline that shuts its
socket down when it passes, whether the request is connecting, waiting for headers or reading.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import threading
import time
from collections import namedtuple
from typing import TYPE_CHECKING

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError, ResponseError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.poolmanager import PoolKey, _default_key_normalizer
from urllib3.util.retry import Retry

_local = threading.local()  # the deadline of the request this thread is making


class RequestDeadline:
    """A wall-clock limit on one request; when it passes, the request's socket is shut down."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._conns: list[_PinnedMixin] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True
        self._started = time.monotonic()
        self._previous: RequestDeadline | None = None

    def __enter__(self) -> RequestDeadline:
        self._previous = getattr(_local, "deadline", None)
        _local.deadline = self
        self._started = time.monotonic()
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        _local.deadline = self._previous
        with self._lock:
            self._conns.clear()

    def remaining(self) -> float:
        """Return the seconds left, never below zero."""
        return max(0.0, self.seconds - (time.monotonic() - self._started))

    def watch(self, conn: _PinnedMixin) -> None:
        """Make a connection this request's own, so the deadline can cut it."""
        with self._lock:
            conn._radar_deadline = self  # a pooled connection belongs to the request using it now
            self._conns.append(conn)
            if self.expired:
                _shut_down(conn)

    def expire(self) -> None:
        """End the request now: mark it expired and shut down the socket it reads from."""
        with self._lock:
            self.expired = True
            for conn in self._conns:
                if conn._radar_deadline is self:
                    _shut_down(conn)


def _shut_down(conn: _PinnedMixin) -> None:
    # http.client forgets conn.sock once a "Connection: close" answer has started; its body is
    # still read from that socket, so the connection remembers the last one it had.
    sock = conn.last_sock
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed
        # The plain socket method, also for an SSLSocket: it cuts the file descriptor, which wakes a
        # recv blocked in another thread; SSLSocket.shutdown would first drop its TLS state.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def current_deadline() -> RequestDeadline | None:
    """Return the deadline of the request this thread is making, if any."""
    return getattr(_local, "deadline", None)


class InterruptibleRetry(Retry):
    """urllib3's retries, whose waits end early when the stage stops or the request deadline passes."""

    stopped: threading.Event = threading.Event()  # a client uses a subclass with its own event (retry_class_for)

    def sleep(self, response=None) -> None:
        """Wait before the next attempt: Retry-After if the server sent one, else the back-off."""
        wait = self.get_retry_after(response) if (self.respect_retry_after_header and response) else None
        wait = wait or self.get_backoff_time()
        deadline = current_deadline()
        if deadline is not None and wait >= deadline.remaining():
            # The next attempt would start after the deadline: wait until it, then end the request.
            self.stopped.wait(deadline.remaining())
            deadline.expire()
        elif wait > 0:
            self.stopped.wait(wait)


def retry_class_for(stopped: threading.Event) -> type[InterruptibleRetry]:
    """Return an InterruptibleRetry class whose waits end when `stopped` is set."""
    # Retry.new() copies a retry as type(self)(**params): the event lives on the class to survive it.
    return type("ClientRetry", (InterruptibleRetry,), {"stopped": stopped})


if TYPE_CHECKING:
    _ConnectionBase = HTTPConnection  # what the mixin is mixed into: mypy checks its super() calls against it
else:
    _ConnectionBase = object


class _PinnedMixin(_ConnectionBase):
    """Connect to the pinned addresses, in order, instead of resolving the host name again."""

    _radar_deadline: RequestDeadline | None = None  # the deadline of the request using the connection now
    last_sock: socket.socket | None = None

    def __init__(self, *args, pinned: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        if not pinned:
            raise ValueError("a pinned connection needs the checked addresses")
        self.pinned = pinned

    @property
    def sock(self):
        """Return the connection's socket (http.client's attribute, kept as a property here)."""
        return self.__dict__.get("_sock")

    @sock.setter
    def sock(self, value) -> None:
        self.__dict__["_sock"] = value
        if value is not None:
            self.last_sock = value

    def _new_conn(self) -> socket.socket:
        deadline = current_deadline()
        if deadline is not None:
            deadline.watch(self)
            if deadline.expired:
                raise ConnectTimeoutError(self, f"request deadline of {deadline.seconds} s passed")
            if isinstance(self.timeout, (int, float)):
                self.timeout = min(self.timeout, max(deadline.remaining(), 0.01))
        error: ConnectTimeoutError | None = None
        name = self._dns_host
        try:
            for address in self.pinned:
                # urllib3 connects to _dns_host; `host` (derived from it) names the server for Host,
                # SNI and the certificate check, so the name is put back as soon as the socket exists.
                self._dns_host = address
                try:
                    return super()._new_conn()
                except ConnectTimeoutError as exc:  # NewConnectionError included: try the next address
                    error = exc
        finally:
            self._dns_host = name
        if error is None:  # cannot happen: __init__ refuses an empty `pinned`
            raise ConnectTimeoutError(self, "no checked address to connect to")
        raise error

    def request(self, *args, **kwargs):
        deadline = current_deadline()
        if deadline is not None:
            deadline.watch(self)  # a kept-alive connection is cut by this request's deadline too
        return super().request(*args, **kwargs)


class PinnedHTTPConnection(_PinnedMixin, HTTPConnection):
    """An HTTP connection to checked addresses."""


class PinnedHTTPSConnection(_PinnedMixin, HTTPSConnection):
    """An HTTPS connection to checked addresses; SNI and the certificate still name the host."""


class PinnedHTTPConnectionPool(HTTPConnectionPool):
    """A pool of HTTP connections to the checked addresses of one host."""

    ConnectionCls = PinnedHTTPConnection


class PinnedHTTPSConnectionPool(HTTPSConnectionPool):
    """A pool of HTTPS connections to the checked addresses of one host."""

    ConnectionCls = PinnedHTTPSConnection


# A pool per (host, checked addresses): when a name's addresses change, its connections do too.
# The fields are urllib3's own plus ours, computed: mypy reads only literal field lists, so it cannot type this
# (nor see below that it has every field of PoolKey, which is all _default_key_normalizer needs).
PinnedPoolKey = namedtuple("PinnedPoolKey", PoolKey._fields + ("key_pinned",))  # type: ignore[misc]
POOL_CLASSES = {"http": PinnedHTTPConnectionPool, "https": PinnedHTTPSConnectionPool}


class PinnedAdapter(HTTPAdapter):
    """A transport adapter whose connections go to `request.pinned_addresses` only."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        """Create the pool manager with pinned pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES
        self.poolmanager.key_fn_by_scheme = {
            scheme: functools.partial(_default_key_normalizer, PinnedPoolKey)  # type: ignore[arg-type]
            for scheme in POOL_CLASSES}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        """Add the request's checked addresses to its pool key."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pinned = getattr(request, "pinned_addresses", None)
        if not pinned:
            # Never fall back to resolving the name: that is the hole this adapter closes.
            raise ValueError(f"request to {request.url} has no checked addresses")
        pool_kwargs["pinned"] = tuple(pinned)
        return host_params, pool_kwargs

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        """Refuse proxies: through one, the proxy resolves names and the address check means nothing."""
        raise ValueError("radar connects directly; a proxy would bypass its address check")


# -- why a connection failed, in a few words ------------------------------------------------------------------
# requests wraps urllib3's MaxRetryError, which wraps NewConnectionError, which wraps the socket's OSError: their
# texts, nested, run to several hundred characters of reprs. The run report gives each failure one line, so the
# cause is looked up in the chain and said in words; the first match wins (a timeout inside a refused retry is a
# timeout).
CONNECTION_WORDS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((NameResolutionError, socket.gaierror), "name not found"),
    ((ConnectionRefusedError,), "connection refused"),
    ((TimeoutError, Urllib3Timeout), "timed out"),  # socket.timeout is TimeoutError since Python 3.10
    ((ConnectionResetError,), "connection reset"),
)


def describe_connection_error(exc: BaseException) -> str:
    """Say in a few words on one line why a request failed: connection refused, timed out, name not found, ..."""
    chain = list(_error_chain(exc))
    # urllib3 2 derives NewConnectionError from ConnectTimeoutError: by its class alone every failed connect
    # would read as a time-out, so it is only looked through, at the OSError it wraps.
    causes = [error for error in chain if not isinstance(error, NewConnectionError)]
    for kinds, words in CONNECTION_WORDS:
        if any(isinstance(error, kinds) for error in causes):
            return words
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"certificate check failed: {_one_line(error.verify_message or error.reason or 'not valid')}"
        if isinstance(error, ResponseError):  # urllib3's own short text: "too many 503 error responses"
            return _one_line(str(error))
    innermost = chain[-1]
    if isinstance(innermost, OSError) and innermost.strerror:  # "no route to host", "network is unreachable"
        return _one_line(innermost.strerror).lower()
    return type(innermost).__name__  # the innermost error's name (BadStatusLine, SSLError ...) says enough


def _error_chain(exc: BaseException):
    """Yield the error, then what it wraps: exception arguments, urllib3's `reason`, causes and contexts."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        error = todo.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        wrapped = [*error.args, getattr(error, "reason", None), error.__cause__, error.__context__]
        todo.extend(item for item in wrapped if isinstance(item, BaseException))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]
