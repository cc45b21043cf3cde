"""Agreement between analysts: Cohen's kappa per pair and the disagreements still to settle (rules in labels.py)."""

from __future__ import annotations

from itertools import combinations

from pipeline.labels import disagreements, kappa  # noqa: F401  (the agreement page's API, decided in labels.py)

ASPECTS = ("decision", "sector", "type")


def pair_agreement(decisions: dict[int, dict[str, dict]]) -> list[dict]:
    """Return, for every pair of analysts, kappa and counts for decision, sector and type."""
    analysts = sorted({name for per in decisions.values() for name in per})
    return [_pair(decisions, a, b) for a, b in combinations(analysts, 2) if _shared(decisions, a, b)]


def _shared(decisions: dict[int, dict[str, dict]], a: str, b: str) -> list[tuple[dict, dict]]:
    return [(per[a], per[b]) for _id, per in sorted(decisions.items()) if a in per and b in per]


def _pair(decisions: dict[int, dict[str, dict]], a: str, b: str) -> dict:
    both = _shared(decisions, a, b)
    # Sector and type exist only for positives, so they are compared where both analysts said yes.
    positives = [(x, y) for x, y in both if x["cocreation"] and y["cocreation"]]
    result = {"pair": (a, b), "n": len(both), "n_positive": len(positives)}
    result["decision"] = _aspect(both, "cocreation")
    result["sector"] = _aspect(positives, "sector")
    result["type"] = _aspect(positives, "type")
    return result


def _aspect(rows: list[tuple[dict, dict]], key: str) -> dict:
    first = [x[key] for x, _ in rows]
    second = [y[key] for _, y in rows]
    agreed = sum(p == q for p, q in zip(first, second, strict=True))
    return {"kappa": kappa(first, second), "agreement": agreed / len(rows) if rows else None, "n": len(rows)}
