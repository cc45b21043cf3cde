"""A real HTTP server on 127.0.0.1 (threads) that serves scripted responses and records requests."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable, Iterable


@dataclass
class Reply:
    """One scripted response; `stream` yields the body in chunks without a Content-Length.

    `raw` yields the whole response as bytes, status line and headers included, for answers
    no well-behaved server gives (headers dripped byte by byte).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream: Callable[[], Iterable[bytes]] | None = None
    raw: Callable[[], Iterable[bytes]] | None = None


@dataclass
class Route:
    """Replies for one path: the next one is used per request, the last one repeats."""

    replies: list[Reply]
    hits: int = 0

    def next_reply(self) -> Reply:
        """Return the reply for this request and count it."""
        reply = self.replies[min(self.hits, len(self.replies) - 1)]
        self.hits += 1
        return reply


class ScriptedServer:
    """Serve Routes on a loopback address and a free port; `requests` logs (path, headers) of every request."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str], float]] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.scheme = "https" if tls else "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """Return the port the server listens on."""
        return self.httpd.server_address[1]

    @property
    def base(self) -> str:
        """Return SCHEME://HOST:PORT."""
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def url(self, path: str) -> str:
        """Return the absolute URL of a path on this server."""
        return self.base + path

    def add(self, path: str, *replies: Reply) -> None:
        """Script the replies of a path."""
        self.routes[path] = Route(list(replies))

    def page(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8", **kw) -> None:
        """Script a single 200 reply with the given body."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.add(path, Reply(200, data, {"Content-Type": content_type, **kw.pop("headers", {})}, **kw))

    def hits(self, path: str) -> int:
        """Return how many requests a path received."""
        return self.routes[path].hits if path in self.routes else 0

    def start(self) -> ScriptedServer:
        """Start serving in a daemon thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, each response waits ~40 ms
            # for a delayed ACK, which would make every test and benchmark measure that instead.
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with server._lock:
                    server.requests.append((self.path, dict(self.headers), time.monotonic()))
                    route = server.routes.get(self.path)
                    reply = route.next_reply() if route else Reply(404, b"not found", {"Content-Type": "text/plain"})
                if reply.delay:
                    time.sleep(reply.delay)
                # The client may give up (size cap, timeout): that is what some tests want.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    self._send(reply)

            def _send(self, reply: Reply) -> None:
                if reply.raw is not None:
                    for chunk in reply.raw():
                        self.wfile.write(chunk)
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.stream is not None:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in reply.stream():
                        self.wfile.write(chunk)
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        return Handler


def drip(data: bytes, interval: float, limit: int | None = None) -> Callable[[], Iterable[bytes]]:
    """Return a stream that sends `data` one byte per `interval` seconds, then up to `limit` bytes of filler."""
    def chunks() -> Iterable[bytes]:
        for byte in data:
            time.sleep(interval)
            yield bytes([byte])
        for _ in range(limit or 0):  # the client should have hung up by now
            time.sleep(interval)
            yield b" "
    return chunks
