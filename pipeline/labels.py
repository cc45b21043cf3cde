"""Final labels from review events, in one pure place: agreement, disputes, settles, clusters, provenance, kappa.

Every reader of review outcomes (the review app, its agreement page, `radar export`, `load_dataset`, training)
asks this module, so "what is the final label of this article" has one answer. Nothing here touches the database.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from itertools import combinations

from pipeline.records import FinalLabel, ReviewEvent

Decisions = Mapping[str, ReviewEvent]  # analyst -> their current decision on one article


def cluster_id_of(article_id: int, canonical_id: int | None) -> int:
    """Return the cluster id of an article: its canonical member's id, its own when it heads its cluster."""
    return canonical_id or article_id


def label_key(event: ReviewEvent | FinalLabel) -> tuple:
    """Return what two analysts must share to agree: decision, sector and type."""
    return event.cocreation, event.sector, event.type


def current_decisions(events: Iterable[ReviewEvent]) -> dict[str, ReviewEvent]:
    """Return each analyst's current decision from one article's events: their newest non-settle event.

    An undo back to "not reviewed" (no decision) removes the analyst.
    """
    newest: dict[str, ReviewEvent] = {}
    for event in sorted(events, key=lambda e: e.id):
        if event.action != "settle":
            newest[event.analyst] = event
    return {name: e for name, e in sorted(newest.items()) if e.cocreation is not None}


def newest_settle(events: Iterable[ReviewEvent]) -> ReviewEvent | None:
    """Return the settle in force among one article's events: the newest settle event, None when there is none.

    A lead's undo of a settle is itself a settle event restoring what was in force before it; when that was
    nothing, it carries no decision, and the article is not settled.
    """
    settles = [e for e in events if e.action == "settle"]
    newest = max(settles, key=lambda e: e.id) if settles else None
    return newest if newest is not None and newest.cocreation is not None else None


def required_reviews(setting: int | None, registered_analysts: int) -> int:
    """Return how many agreeing analysts make a label final: the setting, else 2 once a team is registered, else 1.

    One analyst's yes must not reach the public site before the second reviewer looked (Argilla's and Label
    Studio's "minimum submitted"): with more than one registered analyst the default is double review.
    """
    if setting:
        return max(1, setting)
    return 2 if registered_analysts > 1 else 1


def is_disputed(decisions: Decisions, settled: bool = False) -> bool:
    """Tell whether analysts gave different labels to one article and no settle has fixed its final label.

    A settled article is done: it has a final label, so the queue's "disputed" filter and the counts leave it out.
    """
    return not settled and len({label_key(e) for e in decisions.values()}) > 1


def final_label(article_id: int, decisions: Decisions, settle: ReviewEvent | None,
                min_reviews: int = 1) -> FinalLabel | None:
    """Return the final label of one article: the settle in force, else the decision min_reviews analysts share.

    An article fewer analysts decided, or whose analysts disagree, and that nobody settled has no final label.
    """
    rows = sorted(decisions.values(), key=lambda e: e.id)
    if settle is None and (len(rows) < max(1, min_reviews) or is_disputed(decisions)):
        return None
    event = settle or rows[-1]
    settled = settle is not None
    names = {e.analyst for e in rows} | ({settle.analyst} if settle is not None else set())
    written = [*rows, settle] if settle is not None else rows
    return FinalLabel(article_id=article_id, event=event, label_source="settled" if settled else "agreed",
                      analysts=", ".join(sorted(names)), settled_by=settle.analyst if settle is not None else "",
                      reviewed_at=max([e.created_at for e in rows] + [event.created_at]),
                      # Publishing what one analyst asked to keep private cannot be undone: any one mark counts.
                      marked_private=any(bool(e.private) for e in [*rows, event]),
                      lesson=kept_lesson(rows, settle), note=joined_notes(written), quote=kept_quote(rows, settle))


def kept_lesson(decisions: list[ReviewEvent], settle: ReviewEvent | None) -> str:
    """Return the lesson a final label keeps: the settling lead's, else the first analyst's who wrote one.

    A second analyst who agrees without writing a lesson must not wipe out the first one's.
    """
    if settle is not None and settle.lesson:
        return settle.lesson
    return next((e.lesson for e in sorted(decisions, key=lambda e: e.id) if e.lesson), "")


def kept_quote(decisions: list[ReviewEvent], settle: ReviewEvent | None) -> str:
    """Return the quote a final label keeps: the settling lead's choice, else the first analyst's who chose one."""
    if settle is not None and settle.quote:
        return settle.quote
    return next((e.quote for e in sorted(decisions, key=lambda e: e.id) if e.quote), "")


def joined_notes(events: Iterable[ReviewEvent]) -> str:
    """Return every non-empty note of the events, oldest first, each after its author's name ("ann: ... | bob: ...")."""
    return " | ".join(f"{e.analyst}: {e.note}" for e in sorted(events, key=lambda e: e.id) if e.note)


def final_labels(current: Iterable[ReviewEvent], settles: Iterable[ReviewEvent],
                 min_reviews: int = 1) -> dict[int, FinalLabel]:
    """Return the final label per article from every current decision and every settle event."""
    by_article: dict[int, dict[str, ReviewEvent]] = {}
    for event in current:
        by_article.setdefault(event.article_id, {})[event.analyst] = event
    settles_by_article: dict[int, list[ReviewEvent]] = {}
    for event in settles:
        settles_by_article.setdefault(event.article_id, []).append(event)
    result = {}
    for article_id in sorted(set(by_article) | set(settles_by_article)):
        label = final_label(article_id, by_article.get(article_id, {}),
                            newest_settle(settles_by_article.get(article_id, [])), min_reviews)
        if label is not None:
            result[article_id] = label
    return result


def may_leave_the_tool(label: FinalLabel | None) -> bool:
    """Tell whether an article may be shown outside the tool: a final yes that no analyst marked private.

    The one rule for everything outsiders read: the digest (every format), `radar publish`, its Atom feeds
    and `radar public`. Exports are for the team and carry the private mark as a column instead.
    """
    return label is not None and bool(label.cocreation) and not label.private


def label_for_member(labels: Mapping[int, FinalLabel], article_id: int,
                     canonical_id: int | None) -> tuple[FinalLabel | None, bool]:
    """Return a cluster's final label for one of its articles, and whether it came from the cluster's head.

    A near-duplicate cluster is reviewed once, on its canonical article; every copy carries that label.
    """
    cluster_id = cluster_id_of(article_id, canonical_id)
    label = labels.get(cluster_id)
    has_label = label is not None and label.cocreation is not None
    return label, has_label and article_id != cluster_id


def cluster_flagged(flags: Iterable[bool]) -> bool:
    """Tell whether a cluster is flagged: it is when any copy is (a wire copy may score higher in one paper)."""
    return any(flags)


def disagreements(decisions: Mapping[int, Decisions], settled: set[int]) -> list[dict]:
    """Return the articles whose analysts gave different labels, unsettled ones first."""
    found = [{"article_id": article_id, "settled": article_id in settled,
              "decisions": [per[name] for name in sorted(per)]}
             for article_id, per in sorted(decisions.items()) if len(per) >= 2 and is_disputed(per)]
    return sorted(found, key=lambda d: (d["settled"], d["article_id"]))


def kappa(first: list, second: list) -> float | None:
    """Return Cohen's kappa of two label lists, None when it is undefined (no items, no variation)."""
    from sklearn.metrics import cohen_kappa_score  # lazy: the review app's other pages need no sklearn

    if not first:
        return None
    with warnings.catch_warnings():
        # sklearn warns and returns nan when both analysts used a single label throughout.
        warnings.simplefilter("ignore")
        value = cohen_kappa_score([str(x) for x in first], [str(x) for x in second])
    return None if math.isnan(value) else float(value)


AGREEMENT_ASPECTS = ("decision", "sector", "type")


def pair_agreement(decisions: Mapping[int, Decisions]) -> list[dict]:
    """Return, for every pair of analysts, kappa and raw agreement for decision, sector and type.

    The one definition the review app's agreement page and notebook 3 share: the decision is compared over
    every article both analysts decided; sector and type only over articles both called co-creation,
    because a "no" carries neither.
    """
    analysts = sorted({name for per in decisions.values() for name in per})
    return [_pair(decisions, a, b) for a, b in combinations(analysts, 2) if _shared(decisions, a, b)]


def _shared(decisions: Mapping[int, Decisions], a: str, b: str) -> list[tuple[ReviewEvent, ReviewEvent]]:
    return [(per[a], per[b]) for _id, per in sorted(decisions.items()) if a in per and b in per]


def _pair(decisions: Mapping[int, Decisions], a: str, b: str) -> dict:
    both = _shared(decisions, a, b)
    positives = [(x, y) for x, y in both if x.cocreation and y.cocreation]
    return {"pair": (a, b), "n": len(both), "n_positive": len(positives),
            "decision": _aspect(both, "cocreation"), "sector": _aspect(positives, "sector"),
            "type": _aspect(positives, "type")}


def _aspect(rows: list[tuple[ReviewEvent, ReviewEvent]], key: str) -> dict:
    first = [getattr(x, key) for x, _ in rows]
    second = [getattr(y, key) for _, y in rows]
    agreed = sum(p == q for p, q in zip(first, second, strict=True))
    return {"kappa": kappa(first, second), "agreement": agreed / len(rows) if rows else None, "n": len(rows)}
