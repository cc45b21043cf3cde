"""The review app's construction and its server: Flask app factory, waitress server, the link to open."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import time

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask
from werkzeug.exceptions import HTTPException

from pipeline.codebook import load_codebook
from pipeline.review.analysts import check_token_setting
from pipeline.review.context import MAX_ROW_ID, ReviewContext, RowIdConverter  # noqa: F401  (importable here too)
from pipeline.dates import nl_date
from pipeline.highlight import safe_href
from pipeline.review.queries import flag_threshold
from pipeline.review.readers import install_reader_views
from pipeline.review.security import SECURITY_HEADERS, check_binding, install_security
from pipeline.settings import Settings
from pipeline.review import queue_views, views  # noqa: F401 (their routes register on the blueprint)
from pipeline.review.blueprint import bp
from pipeline.store import Store

log = logging.getLogger(__name__)


def create_app(settings: Settings, store: Store, *, analyst: str = "", host: str | None = None) -> Flask:
    """Build the review app on an open, migrated store."""
    check_token_setting(settings.review_token)
    app = Flask(__name__, template_folder="templates", static_folder="static")
    app.config.update(
        # A fresh key per run unless configured: sessions end with the server, nothing secret is stored.
        SECRET_KEY=secrets.token_hex(32),
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session: analysts leave pages open for hours
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        # Behind a TLS proxy the cookie (the analyst's login) must never travel over plain HTTP; off by default
        # because a browser drops a Secure cookie set over http://, and the app would then never stay logged in.
        SESSION_COOKIE_SECURE=settings.review_https,
        MAX_CONTENT_LENGTH=256 * 1024,
        RADAR_TOKEN=settings.review_token,
        RADAR_BIND_HOST=host or settings.review_host,
    )
    app.url_map.converters["id"] = RowIdConverter
    app.jinja_env.autoescape = True
    app.jinja_env.filters["safe_href"] = safe_href
    app.jinja_env.filters["nl_date"] = nl_date
    app.extensions["radar"] = ReviewContext(store, load_codebook(), analyst or settings.analyst,
                                            flag_threshold(settings.model_dir))
    install_reader_views(app)
    CSRFProtect(app)
    install_security(app)
    _register_errors(app)
    app.register_blueprint(bp)
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError):
        log.warning("refused a request without a valid CSRF token: %s", error.description)
        message = "The form's security token is missing or stale. Nothing was saved: reload the page and try again."
        return render_template("error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {401: "Access token required: open the app with your own token "
                         "(`radar analysts add NAME` prints one) or the link `radar review` printed.",
                    404: "Not found."}
        given = error.description != type(error).description  # abort(..., description=...) says it best
        message = error.description if given or error.code not in messages else messages[error.code]
        return render_template("error.html", code=error.code, message=message), error.code


class SecureErrorTask(ErrorTask):
    """waitress's own error response (malformed request, header too large) with our security headers."""

    def execute(self):
        """Add the security headers, then let waitress write its error response."""
        self.response_headers.extend(SECURITY_HEADERS.items())
        super().execute()


class SecureChannel(HTTPChannel):
    """A waitress connection whose self-made error responses carry the security headers."""

    error_task_class = SecureErrorTask


class ClientCappedChannels:
    """Open a SecureChannel per accepted connection, but close one whose address already holds `cap` of them.

    waitress has a total connection_limit but no per-client one: without this, one client's idle
    sockets fill every slot and nobody else is served until they time out.
    """

    def __init__(self, cap: int, exempt: frozenset[str] = frozenset()):
        self.cap = cap  # 0: no cap
        self.exempt = exempt  # a reverse proxy speaks for many readers from one address
        self.warned_at = 0.0

    def __call__(self, server, conn, addr, adj, map=None):
        """Start the connection's channel, or close the connection when its client is at the cap."""
        client = addr[0] if addr else ""
        if self.cap and client not in self.exempt and connections_of(server, client) >= self.cap:
            self._refuse(conn, client)
            return None
        return SecureChannel(server, conn, addr, adj, map=map)

    def _refuse(self, conn, client: str) -> None:
        conn.close()
        # A client at the cap may retry in a loop: one warning a minute, not one per connection.
        if time.monotonic() - self.warned_at > 60:
            self.warned_at = time.monotonic()
            log.warning("closed connections from %s: it already holds %d (server_connections_per_client)",
                        client, self.cap)


def connections_of(server, client: str) -> int:
    """Count the connections a client address holds open on a waitress server."""
    # Runs in waitress's loop thread, the one thread that opens and closes channels; at most
    # server_connection_limit of them, so a count per accepted connection is cheap.
    return sum(1 for channel in server.active_channels.values() if (channel.addr or ("",))[0] == client)


# How often waitress looks for idle connections. A sweep walks at most server_connection_limit channels,
# so once a second costs nothing and closes an idle one at most a second after server_idle_timeout.
IDLE_SWEEP_SECONDS = 1


def make_server(app: Flask, host: str, port: int, settings: Settings | None = None, **options):
    """Create a waitress server bound to host:port (0 picks a free port); call .run() to serve.

    `settings` gives the connection limits (the shipped defaults when None); `options` are further
    waitress settings (the public app's trusted proxy, which the per-client cap exempts).
    """
    from waitress.server import create_server  # where waitress defines it; its stubs leave out the re-export

    limits = settings or Settings.model_construct()  # the fields' defaults, without reading RADAR_* again
    server = create_server(app, host=host, port=port, threads=4, ident="radar-review",
                           connection_limit=limits.server_connection_limit,
                           channel_timeout=limits.server_idle_timeout, cleanup_interval=IDLE_SWEEP_SECONDS,
                           **options)
    channels = ClientCappedChannels(limits.server_connections_per_client,
                                    frozenset(filter(None, [options.get("trusted_proxy")])))
    # waitress answers malformed requests itself, before any WSGI code runs, and has no setting for
    # those responses' headers nor a per-client connection cap; channel_class is the one hook for both.
    # tests/test_review_app.py and tests/test_serve_limits.py check over raw sockets that it still works.
    for each in [server, *getattr(server, "map", {}).values()]:
        if hasattr(each, "channel_class"):
            each.channel_class = channels
    return server


def review_link(host: str, port: int, token: str) -> str:
    """Return the address an analyst opens, with the token when one is required."""
    host = link_host(host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def link_host(host: str) -> str:
    """Return the name analysts reach a bind address by: this machine's name for 0.0.0.0 or ::, else the address."""
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = not host
    if not wildcard:
        return host
    # 0.0.0.0 is where the server listens, not an address anyone can open; the machine's full name is.
    name = socket.getfqdn()
    return name if name and not name.startswith("localhost") else socket.gethostname()


def serve(settings: Settings, store: Store, *, host: str, port: int, analyst: str = "", announce=print) -> None:
    """Check the binding policy, then serve the review app until interrupted."""
    registered = store.has_analysts()
    check_binding(host, settings.review_token, registered)
    app = create_app(settings, store, analyst=analyst, host=host)
    server = make_server(app, host, port, settings)
    announce(_announcement(settings, store, host, server.effective_port, analyst, registered))
    run_until_interrupted(server)


def run_until_interrupted(server) -> None:
    """Serve until Ctrl+C, then close the server's sockets (the review and the public app alike)."""
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _announcement(settings: Settings, store: Store, host: str, port: int, analyst: str, registered: bool) -> str:
    if not (registered or settings.review_token):
        return (f"Review app for {analyst or settings.analyst or 'any analyst'}: "
                f"{review_link(host, port, '')}  (Ctrl+C stops it)")
    lines = [f"Review app: {review_link(host, port, '')}  (Ctrl+C stops it)",
             f"Each analyst opens {review_link(host, port, 'THEIR_TOKEN')} with the token "
             "`radar analysts add NAME` printed; names come from the tokens"
             + (", not from --analyst or the analyst setting." if analyst else ".")]
    if settings.review_token:
        lines.append("The shared review_token gives read-only access.")
    if not any(not a["disabled"] for a in store.list_analysts()):
        lines.append("No analyst can save decisions yet: add one with `radar analysts add NAME [--lead]`.")
    return "\n".join(lines)
