"""Access control and hardening of the review app: binding policy, token, host check, headers."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from urllib.parse import urlencode

from flask import Flask, abort, current_app, redirect, request, session

from pipeline.errors import ConfigError

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


def is_loopback(host: str) -> bool:
    """Tell whether a bind address only accepts connections from this machine."""
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str) -> None:
    """Refuse to serve on a non-loopback address unless an access token is configured."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to bind the review app to {host} without an access token: anyone on the network "
            "could read and change reviews. Set review_token in the config (or RADAR_REVIEW_TOKEN), "
            "or bind 127.0.0.1."
        )


def token_matches(given: str | None, token: str) -> bool:
    """Compare a presented token with the configured one in constant time."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def install_security(app: Flask) -> None:
    """Register the token gate, the host check and the security headers on the app."""
    app.before_request(_require_token)
    app.before_request(_check_host)
    app.after_request(_add_headers)


def _require_token():
    token = current_app.config["RADAR_TOKEN"]
    if not token or session.get("token_ok"):
        return None
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token_matches(request.headers.get(TOKEN_HEADER), token) or token_matches(bearer, token):
        return None
    if token_matches(request.args.get("token"), token):
        # Log in once: the cookie carries the session, and the token leaves the address bar.
        session["token_ok"] = True
        rest = {k: v for k, v in request.args.items() if k != "token"}
        return redirect(request.path + ("?" + urlencode(rest) if rest else ""))
    log.warning("refused %s %s: missing or wrong access token", request.method, request.path)
    abort(401)


def _check_host():
    # Without a token the app trusts loopback only; a foreign Host header means DNS rebinding.
    if current_app.config["RADAR_TOKEN"]:
        return None
    hostname = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if hostname not in LOOPBACK_NAMES and hostname != current_app.config["RADAR_BIND_HOST"]:
        abort(400, description="unexpected Host header")
    return None


def _add_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
