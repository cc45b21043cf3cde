"""Serve the bundled, fictional demo news site (data/demo/site) over HTTP.

`make demo` and the test-suite use this server instead of the real web: it
hosts four invented outlets with RSS/Atom feeds, article pages with realistic
boilerplate, one broken feed and one page that always fails with HTTP 500.
Stdlib only, so it starts in any environment without extra installs.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import threading
from email.utils import formatdate, parsedate_to_datetime
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "data" / "demo" / "site"

# Content files write absolute links as {{BASE}}/...; the real host and port
# are only known once the server is bound (tests use port 0).
BASE_PLACEHOLDER = b"{{BASE}}"
TEMPLATED_SUFFIXES = {".html", ".xml", ".txt"}

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}
RSS_TYPE = "application/rss+xml"
ATOM_TYPE = "application/atom+xml"

# Scripted failure: this article is listed in the Kanaalzone feed, but its page
# always answers 500 so the fetch stage can be tested on a server error. It is
# also listed as failing_pages in data/demo/expected.json; keep both in sync.
FAILING_PATHS = frozenset({"/kanaalzone/2026/03/19/live-grote-brand-in-loods-aan-de-haven/"})

ERROR_PAGE = (
    "<!doctype html>\n<html lang=\"nl\"><head><meta charset=\"utf-8\">"
    "<title>{code} {phrase}</title></head><body><h1>{code} {phrase}</h1>"
    "<p>{message}</p></body></html>\n"
)


def guess_content_type(path: Path, body: bytes) -> str:
    """Return the Content-Type header value for a served file."""
    if path.suffix == ".xml":
        # Sniff rather than rely on file names: Atom feeds have a <feed> root.
        head = body[:1024]
        return ATOM_TYPE if b"<feed" in head and b"2005/Atom" in head else RSS_TYPE
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")


def resolve_file(root: Path, url_path: str) -> Path | None:
    """Map a URL path to a file under root, or None when nothing may be served."""
    relative = unquote(url_path).lstrip("/")
    try:
        candidate = (root / relative).resolve()
    except (OSError, ValueError):  # e.g. an encoded NUL byte in the path
        return None
    # Refuse anything that escapes the site root (../ tricks, symlinks).
    if candidate != root and root not in candidate.parents:
        return None
    if candidate.is_dir():
        # Directories serve their index.html; there are no directory listings.
        candidate = candidate / "index.html"
    return candidate if candidate.is_file() else None


def render_file(path: Path, base_url: str) -> bytes:
    """Read a site file and fill in the {{BASE}} placeholder where templated."""
    body = path.read_bytes()
    if path.suffix in TEMPLATED_SUFFIXES:
        body = body.replace(BASE_PLACEHOLDER, base_url.encode("ascii"))
    return body


def is_not_modified(headers, etag: str, mtime: float) -> bool:
    """Tell whether the request's conditional headers match the current file."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        # If-None-Match wins over If-Modified-Since (RFC 9110, 13.2.2).
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return etag in tags or "*" in tags
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since:
        try:
            return parsedate_to_datetime(if_modified_since).timestamp() >= int(mtime)
        except (TypeError, ValueError):
            return False
    return False


class DemoSiteHandler(BaseHTTPRequestHandler):
    """Answer GET and HEAD requests from the demo site folder."""

    server_version = "CocreatieRadarDemo/1.0"
    # Headers and body are separate writes; without this each reply waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def __init__(self, *args, root: Path, base_url: str, verbose: bool, **kwargs):
        self.root = root
        self.base_url = base_url
        self.verbose = verbose
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 (name fixed by http.server)
        """Serve a file, a scripted error, or a 404."""
        self.respond(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        """Serve the headers of a GET without its body."""
        self.respond(send_body=False)

    def respond(self, send_body: bool) -> None:
        """Route one request to the right kind of answer."""
        url_path = urlsplit(self.path).path or "/"
        if url_path in FAILING_PATHS:
            message = "Er ging iets mis. Probeer het later opnieuw."
            self.send_error_page(HTTPStatus.INTERNAL_SERVER_ERROR, message, send_body)
            return
        path = resolve_file(self.root, url_path)
        if path is None:
            self.send_error_page(HTTPStatus.NOT_FOUND, "Deze pagina bestaat niet (meer).", send_body)
            return
        self.send_file(path, send_body)

    def send_file(self, path: Path, send_body: bool) -> None:
        """Send a site file with validators so clients can make conditional requests."""
        body = render_file(path, self.base_url)
        mtime = path.stat().st_mtime
        etag = f'"{hashlib.sha1(body).hexdigest()[:16]}"'
        if is_not_modified(self.headers, etag, mtime):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", guess_content_type(path, body))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", formatdate(mtime, usegmt=True))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def send_error_page(self, status: HTTPStatus, message: str, send_body: bool) -> None:
        """Send a small Dutch HTML error page with the given status."""
        body = ERROR_PAGE.format(code=status.value, phrase=status.phrase, message=message).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature from base class)
        """Log requests only in verbose mode; tests and `make demo` stay quiet."""
        if self.verbose:
            super().log_message(format, *args)


def make_demo_server(
    host: str, port: int, root: Path, verbose: bool = False
) -> tuple[ThreadingHTTPServer, str]:
    """Bind a demo-site server without starting it and return it with its base URL."""
    root = root.resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"demo site folder not found: {root} (pass root= or run from the repository)")
    handler = partial(DemoSiteHandler, root=root, verbose=verbose)
    # The handler needs the base URL, which is only known after binding (port 0).
    server = ThreadingHTTPServer((host, port), partial(handler, base_url=""))
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    bound_host = str(bound_host)  # an AF_INET server's host is text; typeshed also allows AF_UNIX's bytes
    # A wildcard bind address is not something a client can connect to.
    link_host = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
    base_url = f"http://{link_host}:{bound_port}"
    server.RequestHandlerClass = partial(handler, base_url=base_url)
    return server, base_url


def start_demo_site(
    host: str = "127.0.0.1", port: int = 0, root: Path | None = None, verbose: bool = False
) -> tuple[ThreadingHTTPServer, str]:
    """Serve the demo site from a daemon thread; stop it with server.shutdown()."""
    server, base_url = make_demo_server(host, port, root or DEFAULT_ROOT, verbose)
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    return server, base_url


def raise_keyboard_interrupt(signum, frame) -> None:
    """Turn a termination signal into the KeyboardInterrupt that main() handles."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Serve the demo site in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Serve the fictional Cocreatie Radar demo news site.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 for any free one (default: 8765)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="site folder (default: data/demo/site)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server, base_url = make_demo_server(args.host, args.port, args.root, args.verbose)
    print(f"Demo site: {base_url}/  (feeds listed in data/demo/feeds.toml; Ctrl-C to stop)", flush=True)
    # `make demo` and test harnesses stop the server with SIGTERM: exit as cleanly as on Ctrl-C.
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
