"""The review app's construction and its server: Flask app factory, waitress server, the link to open."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask
from werkzeug.exceptions import HTTPException

from pipeline.codebook import load_codebook
from pipeline.review.analysts import check_token_setting
from pipeline.review.context import MAX_ROW_ID, ReviewContext, RowIdConverter  # noqa: F401  (importable here too)
from pipeline.dates import nl_date
from pipeline.review.highlight import safe_href
from pipeline.review.queries import flag_threshold
from pipeline.review.readers import install_reader_views
from pipeline.review.security import SECURITY_HEADERS, check_binding, install_security
from pipeline.settings import Settings
from pipeline.review.views import bp
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
        message = error.description if given else messages.get(error.code, error.description)
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


def make_server(app: Flask, host: str, port: int, **options):
    """Create a waitress server bound to host:port (0 picks a free port); call .run() to serve.

    `options` are further waitress settings (the public app's trusted proxy).
    """
    from waitress import create_server

    server = create_server(app, host=host, port=port, threads=4, ident="radar-review", **options)
    # waitress answers malformed requests itself, before any WSGI code runs, and has no setting for
    # those responses' headers; its channel_class and error_task_class attributes are the only hook.
    # tests/test_review_app.py checks over a raw socket that this still works after an upgrade.
    for each in [server, *getattr(server, "map", {}).values()]:
        if hasattr(each, "channel_class"):
            each.channel_class = SecureChannel
    return server


def review_link(host: str, port: int, token: str) -> str:
    """Return the address an analyst opens, with the token when one is required."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(settings: Settings, store: Store, *, host: str, port: int, analyst: str = "", announce=print) -> None:
    """Check the binding policy, then serve the review app until interrupted."""
    registered = store.has_analysts()
    check_binding(host, settings.review_token, registered)
    app = create_app(settings, store, analyst=analyst, host=host)
    server = make_server(app, host, port)
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
