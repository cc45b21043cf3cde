"""Blind double review, one rule for every screen and download: others' decisions only after deciding, or to a lead.

An analyst sees another analyst's decision, sector, type, note, lesson or time on an article only once they
decided it themselves. A lead sees them too when settling (the settle screen, the list of disagreements) and,
while reviewing, only after switching "show others" on. Every page and download that shows review events asks
here: tests/test_review_blind.py requests every route of the app as a non-lead who decided nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from flask import session

from pipeline.review.blueprint import current_analyst
from pipeline.review.security import is_token_mode, signed_in_analyst

SHOW_OTHERS = "show_others"  # session key of a lead's "show others' decisions" switch


def is_lead() -> bool:
    """Tell whether the analyst is a lead: from the credential when served to others, else anyone (one person)."""
    if is_token_mode():
        analyst = signed_in_analyst()
        return bool(analyst and analyst["is_lead"])
    return True


def shows_others() -> bool:
    """Tell whether a lead switched on others' decisions before deciding (blind review is the default)."""
    return bool(session.get(SHOW_OTHERS)) and is_lead()


def others_visible(per_article: Mapping, *, settling: bool = False) -> bool:
    """Tell whether the analyst may see others' decisions on one article: after deciding it, or as a lead.

    A lead sees them when settling, or while reviewing once they switched "show others" on.
    """
    if current_analyst() in per_article:
        return True
    return is_lead() and (settling or shows_others())


def visible_decisions(per_article: Mapping | None, *, settling: bool = False) -> dict:
    """Return the decisions on one article this analyst may see: only their own until they decided it."""
    per_article = per_article or {}
    if others_visible(per_article, settling=settling):
        return dict(per_article)
    return {name: r for name, r in per_article.items() if name == current_analyst()}


def visible_events(events: Iterable, per_article: Mapping, *, settling: bool = False) -> list:
    """Return the review events of one article this analyst may see (their own only, until they decided it)."""
    events = list(events)
    if others_visible(per_article, settling=settling):
        return events
    return [e for e in events if e.analyst == current_analyst()]


def blind_rows(rows: Iterable[dict], decisions: Mapping[int, Mapping], review_columns: Iterable[str]) -> Iterator[dict]:
    """Yield export rows with the analysts' columns emptied on clusters whose others' labels this analyst may not see."""
    review_columns = tuple(review_columns)
    for row in rows:
        if others_visible(decisions.get(row["cluster_id"], {})):
            yield row
        else:
            yield {**row, **dict.fromkeys(review_columns)}


def visible_clusters(decisions: Mapping[int, Mapping], cluster_ids: Iterable[int], *,
                     settling: bool = False) -> set[int]:
    """Return the clusters among cluster_ids whose others' labels this analyst may see (see others_visible)."""
    return {i for i in cluster_ids if others_visible(decisions.get(i, {}), settling=settling)}
