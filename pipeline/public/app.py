"""`radar public`: the submission form "Deel een voorbeeld" and the collection's pages, live from the database.

A separate Flask app and process from the review app: its own routes, session key and cookie. It reuses the
review app's security headers and waitress server (pipeline/review) by import. The pages come from the same
function as `radar publish` (pipeline/publish.render_site), so the live site and the static one are the same.
"""

from __future__ import annotations

import logging
import mimetypes
import secrets
import threading
import time
from datetime import datetime, timedelta

from flask import Flask, Response, abort, current_app, request
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.exceptions import HTTPException

from pipeline.codebook import load_codebook
from pipeline.errors import SubmissionRefused
from pipeline.public.publish import collect_examples, render_site, render_template
from pipeline.review.security import SECURITY_HEADERS
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.public.submissions import MAX_EMAIL_CHARS, MAX_NAME_CHARS, MAX_NOTE_CHARS, MAX_URL_CHARS
from pipeline.public.submissions import accept_submission, address_hash, address_key

log = logging.getLogger(__name__)

FORM_PATH = "deel"
HONEYPOT = "website"  # a field people never see and bots fill in
FORM_MAX_AGE = 24 * 3600  # a form older than a day is reloaded
PUBLIC_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}  # pages may be cached, but checked each time


class PublicContext:
    """What the public app's requests share: the store, the codebook, the key and the page cache."""

    def __init__(self, settings: Settings, store: Store):
        self.settings, self.store, self.codebook = settings, store, load_codebook()
        self.key = address_key(settings)
        self._pages: tuple[tuple, dict[str, bytes]] | None = None
        self._lock = threading.Lock()

    def pages(self) -> dict[str, bytes]:
        """Return the collection's pages, rendered again only when reviews, predictions or articles changed."""
        version = self.store.collection_version()
        with self._lock:
            if self._pages is None or self._pages[0] != version:
                examples = collect_examples(self.store, self.codebook)
                self._pages = (version, render_site(examples, self.codebook, form_url=FORM_PATH,
                                                    base_url=self.settings.public_base_url))
            return self._pages[1]


def create_public_app(settings: Settings, store: Store) -> Flask:
    """Build the public app on an open, migrated store."""
    app = Flask(__name__, template_folder="templates", static_folder=None)
    app.config.update(SECRET_KEY=secrets.token_hex(32), SESSION_COOKIE_NAME="radar_public",
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True, MAX_CONTENT_LENGTH=16 * 1024,
                      WTF_CSRF_TIME_LIMIT=FORM_MAX_AGE,
                      # Served on an https address (behind a TLS proxy): the form's cookie never goes over plain HTTP.
                      SESSION_COOKIE_SECURE=(settings.public_base_url or "").lower().startswith("https://"))
    app.extensions["radar_public"] = PublicContext(settings, store)
    CSRFProtect(app)
    app.after_request(_add_headers)
    _register_routes(app)
    _register_errors(app)
    return app


def _ctx() -> PublicContext:
    return current_app.extensions["radar_public"]


def _add_headers(response: Response) -> Response:
    for name, value in PUBLIC_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _html(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def _register_routes(app: Flask) -> None:
    app.add_url_rule("/", "index", lambda: serve_page("index.html"))
    app.add_url_rule(f"/{FORM_PATH}", "form", show_form, methods=["GET"])
    app.add_url_rule(f"/{FORM_PATH}", "submit", submit, methods=["POST"])
    app.add_url_rule("/<path:path>", "page", serve_page)


def serve_page(path: str) -> Response:
    """Serve one page or feed of the collection, the same bytes `radar publish` writes."""
    body = _ctx().pages().get(path)
    if body is None:
        abort(404)
    kind = "application/atom+xml" if path.endswith(".atom") else mimetypes.guess_type(path)[0] or "text/plain"
    return Response(body, content_type=f"{kind}; charset=utf-8")


def _form_signer() -> URLSafeTimedSerializer:
    # create_app always sets SECRET_KEY; without one, signing would fail less clearly inside itsdangerous.
    key = current_app.secret_key
    if key is None:
        raise RuntimeError("the public app has no SECRET_KEY: create it with create_app()")
    return URLSafeTimedSerializer(key, salt="form-issued")


def _form_page(values: dict | None = None, error: str = "", status: int = 200) -> Response:
    # The signed value is a fresh nonce: each form served is good for one post (see _use_form_once).
    issued = _form_signer().dumps(secrets.token_urlsafe(16))
    body = render_template("form.html", root="/", form_url=FORM_PATH, values=values or {}, error=error,
                           issued=issued, csrf_token=generate_csrf(), honeypot=HONEYPOT,
                           limits={"url": MAX_URL_CHARS, "note": MAX_NOTE_CHARS, "name": MAX_NAME_CHARS,
                                   "email": MAX_EMAIL_CHARS})
    return _html(body, status)


def show_form() -> Response:
    """Show the form "Deel een voorbeeld"."""
    return _form_page()


def submit() -> Response:
    """Check a posted example against the abuse rules and queue it for the next run."""
    c, form = _ctx(), request.form
    if form.get(HONEYPOT):
        log.warning("public form: honeypot filled in; nothing stored")
        return _thanks()  # a bot learns nothing from the answer
    values = {k: form.get(k, "") for k in ("url", "note", "name", "email")}
    try:
        nonce, issued = _check_form_age(form.get("issued", ""), c.settings.public_min_seconds)
        _use_form_once(c.store, nonce, issued)
        ip_hash = address_hash(request.remote_addr or "", c.key)
        accept_submission(c.store, c.settings, values, ip_hash)
    except SubmissionRefused as exc:
        log.warning("public form refused: %s", exc.reason)
        return _form_page(values, str(exc), exc.status)
    return _thanks()


def _check_form_age(token: str, min_seconds: float) -> tuple[str, datetime]:
    # The form carries the signed time it was served: posting it sooner than a person can is a script.
    try:
        nonce, issued = _form_signer().loads(
            token, max_age=FORM_MAX_AGE, return_timestamp=True)
    except BadData as exc:
        raise SubmissionRefused("form_stale", "Het formulier is verlopen. Laad de pagina opnieuw.") from exc
    if time.time() - issued.timestamp() < min_seconds:
        raise SubmissionRefused("too_fast", "Dat ging wel erg snel. Kijk het formulier na en verstuur het opnieuw.")
    return str(nonce), issued


def _use_form_once(store: Store, nonce: str, issued: datetime) -> None:
    # A signed form replayed by a script would pass every other check for a day: its nonce is spent on the
    # first post. Kept until the form would be stale anyway; a refused post's page carries a fresh form.
    expires = (issued + timedelta(seconds=FORM_MAX_AGE)).isoformat(timespec="seconds")
    if not store.use_form_nonce(nonce, expires):
        raise SubmissionRefused("form_reused", "Dit formulier is al verstuurd. Laad de pagina opnieuw voor een "
                                               "nieuw voorbeeld.")


def _thanks() -> Response:
    return _html(render_template("thanks.html", root="/", form_url=FORM_PATH))


def _register_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_refused(error: CSRFError):
        log.warning("public form refused without a valid CSRF token: %s", error.description)
        return _error(400, "Het formulier is verlopen of niet van deze site. Laad de pagina opnieuw en probeer "
                           "het nog eens.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {404: "Deze pagina bestaat niet.", 405: "Dat kan hier niet.",
                    413: "Dat is te veel tekst voor dit formulier."}
        code = error.code or 500
        return _error(code, messages.get(code, "Er ging iets mis."))


def _error(code: int, message: str) -> Response:
    return _html(render_template("error.html", root="/", form_url=FORM_PATH, code=code, message=message), code)


def make_public_server(settings: Settings, store: Store, host: str, port: int):
    """Create the waitress server of the public app (the review app's hardened server, by import)."""
    from pipeline.review.app import make_server

    options = {}
    if settings.public_trusted_proxy:
        # waitress takes the reader's address from X-Forwarded-For only when the request comes from this proxy;
        # from anyone else the header is dropped, so a reader cannot pick an address to dodge the rate limit.
        options = {"trusted_proxy": settings.public_trusted_proxy, "trusted_proxy_count": 1,
                   "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"}}
    return make_server(create_public_app(settings, store), host, port, settings, **options)


def serve_public(settings: Settings, store: Store, *, host: str, port: int, announce=print) -> None:
    """Serve the public app with waitress until interrupted (behind a reverse proxy when on the internet)."""
    from pipeline.review.app import run_until_interrupted

    server = make_public_server(settings, store, host, port)
    shown = f"[{host}]" if ":" in host else host
    announce(f"Public site and form: http://{shown}:{server.effective_port}/  (form: /{FORM_PATH}; Ctrl+C stops it)")
    run_until_interrupted(server)
