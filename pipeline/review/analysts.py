"""Analysts' own credentials and roles: token issue and check, and who may settle a dispute."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Iterable, Mapping

from pipeline.errors import ConfigError
from pipeline.records import ReviewEvent
from pipeline.store import Store

MIN_TOKEN_CHARS = 20
TOKEN_BYTES = 32  # 256 random bits, 43 URL-safe characters


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored.

    A slow password hash (bcrypt, scrypt) exists to stop guessing of low-entropy passwords. These
    tokens are 256 random bits from `secrets`, so guessing is hopeless however fast the hash, and a
    plain SHA-256 lets the server find the analyst by an indexed lookup of the digest. Looking up the
    digest leaks, at most, timing about the digest, which says nothing useful about any token.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """Return a fresh random token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def clean_name(name: str) -> str:
    """Return an analyst name with runs of white space collapsed; refuse an empty or odd one."""
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > 100 or any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise ConfigError(f"analyst name {name!r} is not usable: give 1-100 printable characters")
    return cleaned


def add_analyst(store: Store, name: str, *, lead: bool = False) -> str:
    """Register an analyst and return their token, which is never stored and cannot be shown again."""
    token = new_token()
    store.add_analyst(clean_name(name), hash_token(token), is_lead=lead)
    return token


def rotate_token(store: Store, name: str) -> str:
    """Give an analyst a new token (the old one stops working) and return it."""
    token = new_token()
    if not store.replace_analyst_token(clean_name(name), hash_token(token)):
        raise ConfigError(f"there is no analyst {name!r}: see `radar analysts list`")
    return token


def check_token_setting(token: str) -> None:
    """Refuse a configured shared token that is too short to resist guessing."""
    if token and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"review_token is {len(token)} characters; use at least {MIN_TOKEN_CHARS}, for example the "
            "output of: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def settle_refusal(analyst: dict | None, token_mode: bool, decisions: Mapping[str, ReviewEvent],
                   history: Iterable[ReviewEvent], article_id: int) -> tuple[int, str] | None:
    """Return (status, reason) when this analyst may not settle the article now, else None.

    Without tokens (one person on 127.0.0.1) anyone may settle; served to others, only a lead who
    did not decide the article themselves may, so nobody is judge in their own dispute.
    """
    if token_mode:
        if not (analyst and analyst["is_lead"]):
            return 403, "Only a lead analyst may settle a dispute. Ask a lead (radar analysts add NAME --lead)."
        if any(e.analyst == analyst["name"] and e.action == "decide" for e in history):
            return 403, f"You reviewed #{article_id} yourself, so you cannot settle its dispute: ask another lead."
    if len({(r.cocreation, r.sector, r.type) for r in decisions.values()}) < 2:
        return 400, f"#{article_id} is not disputed: analysts who reviewed it agree, so there is nothing to settle."
    return None
