"""The review app's blueprint and what every screen of it asks: the review context and the analyst.

The article screens (views) and the queue's actions (queue_views) both register their routes on this one
blueprint; keeping it here, below both, means neither module imports the other.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, session

from pipeline.review.context import ReviewContext
from pipeline.review.security import is_token_mode, signed_in_analyst

bp = Blueprint("review", __name__)


def ctx() -> ReviewContext:
    """Return the app's review context."""
    return current_app.extensions["radar"]


def current_analyst() -> str:
    """Return the analyst: from the credential when served to others, else this browser's typed name."""
    if is_token_mode():
        analyst = signed_in_analyst()
        return analyst["name"] if analyst else ""
    return session.get("analyst") or ctx().default_analyst


def is_local_path(target: str) -> bool:
    """Tell whether a redirect target stays on this site (no scheme, no host, no control characters).

    Browsers drop tabs and newlines from URLs, so "/\t/evil.example" would become "//evil.example":
    an open redirect that lets a crafted link send the analyst elsewhere.
    """
    if not target.startswith("/") or any(ord(ch) < 32 or ch == "\\" for ch in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and not target.startswith("//")
