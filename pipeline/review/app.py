"""The review app's construction and its server: Flask app factory, waitress server, the link to open."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from pipeline.codebook import Codebook, load_codebook
from pipeline.review.queries import flag_threshold
from pipeline.review.security import check_binding, install_security
from pipeline.settings import Settings
from pipeline.store import Store

log = logging.getLogger(__name__)


@dataclass
class ReviewContext:
    """What every request needs: the store, the codebook, the default analyst and the flag threshold."""

    store: Store
    codebook: Codebook
    default_analyst: str
    threshold: float


def create_app(settings: Settings, store: Store, *, analyst: str = "", host: str | None = None) -> Flask:
    """Build the review app on an open, migrated store."""
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
    app.jinja_env.autoescape = True
    app.jinja_env.filters["safe_href"] = safe_href
    app.extensions["radar"] = ReviewContext(store, load_codebook(), analyst or settings.analyst,
                                            flag_threshold(settings.model_dir))
    CSRFProtect(app)
    install_security(app)
    _register_errors(app)
    from pipeline.review.views import bp  # views import the app's helpers; keep the import one-way

    app.register_blueprint(bp)
    return app


def safe_href(url: str | None) -> str | None:
    """Return the URL when it is plain http(s), else None, so javascript: and data: never become links."""
    if not url:
        return None
    scheme = urlsplit(url.strip()).scheme.lower()
    return url.strip() if scheme in ("http", "https") else None


def _register_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError):
        log.warning("refused a request without a valid CSRF token: %s", error.description)
        message = "The form's security token is missing or stale. Nothing was saved: reload the page and try again."
        return render_template("error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {401: "Access token required: open the link that `radar review` printed.",
                    404: "Not found."}
        message = messages.get(error.code, error.description)
        return render_template("error.html", code=error.code, message=message), error.code


def make_server(app: Flask, host: str, port: int):
    """Create a waitress server bound to host:port (0 picks a free port); call .run() to serve."""
    from waitress import create_server

    return create_server(app, host=host, port=port, threads=4, ident="radar-review")


def review_link(host: str, port: int, token: str) -> str:
    """Return the address an analyst opens, with the token when one is required."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(settings: Settings, store: Store, *, host: str, port: int, analyst: str = "", announce=print) -> None:
    """Check the binding policy, then serve the review app until interrupted."""
    check_binding(host, settings.review_token)
    app = create_app(settings, store, analyst=analyst, host=host)
    server = make_server(app, host, port)
    announce(f"Review app for {analyst or settings.analyst or 'any analyst'}: "
             f"{review_link(host, server.effective_port, settings.review_token)}  (Ctrl+C stops it)")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
