"""Access control and hardening of the review app: binding policy, tokens, host check, headers."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from urllib.parse import urlencode

from flask import Flask, abort, current_app, g, redirect, request, session

from pipeline.errors import ConfigError
from pipeline.review.analysts import MIN_TOKEN_CHARS, check_token_setting, hash_token

log = logging.getLogger(__name__)

# Scripts and styles only from our own static files: no inline script can run, even if escaping failed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
TOKEN_HEADER = "X-Radar-Token"
VIEWER = "viewer"  # session marker of the shared token; a token hash is 64 hex digits, never this


def is_loopback(host: str) -> bool:
    """Tell whether a bind address only accepts connections from this machine."""
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str, analysts_registered: bool = False) -> None:
    """Refuse to serve on a non-loopback address unless a shared token or analysts' own tokens exist."""
    check_token_setting(token)
    if not is_loopback(host) and not token and not analysts_registered:
        raise ConfigError(
            f"refusing to bind the review app to {host} without an access token: anyone on the network "
            "could read and change reviews. Give each analyst a token with `radar analysts add NAME`, "
            "set review_token in the config (or RADAR_REVIEW_TOKEN), or bind 127.0.0.1."
        )


def token_matches(given: str | None, token: str) -> bool:
    """Compare a presented token with the configured one in constant time."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def install_security(app: Flask) -> None:
    """Register the token gate, the host check and the security headers on the app."""
    app.before_request(_authenticate)
    app.before_request(_check_host)
    app.after_request(_add_headers)


def is_token_mode() -> bool:
    """Tell whether the app is served to others: a shared token is set or analysts have their own.

    Checked per request (once), so registering the first analyst locks a running app at once.
    """
    if "radar_token_mode" not in g:
        g.radar_token_mode = bool(current_app.config["RADAR_TOKEN"]) or _store().has_analysts()
    return g.radar_token_mode


def signed_in_analyst() -> dict | None:
    """Return the analyst whose token this request carries; None for the read-only shared token."""
    return g.get("radar_analyst")


def _store():
    return current_app.extensions["radar"].store


def _authenticate():
    # The analyst's identity comes from their credential only, never from a form field or argument.
    if is_public_static(request.endpoint) or not is_token_mode():
        return None
    token, from_query = _presented_token()
    if token is None:
        return _resume_session()
    _accept(token)
    if not from_query:
        return None
    # Log in once: the cookie carries the session, and the token leaves the address bar.
    session.clear()
    analyst = signed_in_analyst()
    # The signed cookie keeps the token's hash, not the token: a new token or a removal ends the session.
    session["auth"] = analyst["token_hash"] if analyst else VIEWER
    rest = {k: v for k, v in request.args.items() if k != "token"}
    return redirect(request.path + ("?" + urlencode(rest) if rest else ""))


def is_public_static(endpoint: str | None) -> bool:
    """Tell whether a request is for the app's own static files (style and script), served without a login.

    The 401 page links review.css: behind the login it could never load, and the page asking for a token
    showed unstyled. Only Flask's `static` endpoint (pipeline/review/static/) is open; no data lives there.
    """
    return endpoint == "static"


def _presented_token() -> tuple[str | None, bool]:
    header = request.headers.get(TOKEN_HEADER)
    if header:
        return header, False
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer ") and authorization[7:].strip():
        return authorization[7:].strip(), False
    if "token" in request.args:
        return request.args["token"], True
    return None, False


def _accept(token: str) -> None:
    if len(token) < MIN_TOKEN_CHARS:
        log.warning("refused %s %s: a %d-character token", request.method, request.path, len(token))
        abort(401, description=f"That access token is too short to be one of ours (tokens have at least "
                               f"{MIN_TOKEN_CHARS} characters). Use the token `radar analysts add` printed.")
    shared = current_app.config["RADAR_TOKEN"]
    if shared and token_matches(token, shared):
        g.radar_analyst = None  # the shared token lets anyone read; it does not say who writes
        return
    analyst = _store().analyst_by_token_hash(hash_token(token))
    if analyst is None:
        log.warning("refused %s %s: unknown or disabled access token", request.method, request.path)
        abort(401)
    g.radar_analyst = analyst


def _resume_session():
    auth = session.get("auth")
    if auth == VIEWER:
        g.radar_analyst = None
        return None
    analyst = _store().analyst_by_token_hash(auth) if auth else None
    if analyst is None:
        # Never logged in, or the analyst was removed or given a new token since: log in again.
        session.pop("auth", None)
        log.warning("refused %s %s: missing or wrong access token", request.method, request.path)
        abort(401)
    g.radar_analyst = analyst
    return None


def _check_host():
    # Without a token the app trusts loopback only; a foreign Host header means DNS rebinding.
    if is_token_mode():
        return None
    hostname = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if hostname not in LOOPBACK_NAMES and hostname != current_app.config["RADAR_BIND_HOST"]:
        abort(400, description="unexpected Host header")
    return None


def _add_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
