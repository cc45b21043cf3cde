"""Evidence spans as highlighted HTML: every text segment escaped, only our own tags added."""

from __future__ import annotations

import logging
from itertools import pairwise
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from pipeline.chars import has_forbidden

log = logging.getLogger(__name__)


def safe_href(url: str | None) -> str | None:
    """Return the URL when it is plain http(s), else None, so javascript: and data: never become links."""
    if not url or has_forbidden(url):  # a control character in a link breaks the feed it appears in
        return None
    scheme = urlsplit(url.strip()).scheme.lower()
    return url.strip() if scheme in ("http", "https") else None

KINDS = ("organisation", "participant", "construction", "negative", "sentence")
KIND_TITLES = {"organisation": "organisation", "participant": "participant group",
               "construction": "co-creation construction", "negative": "negative cue", "sentence": "key sentence"}


def evidence_kind(label: str) -> str:
    """Return the highlight kind of an evidence label such as 'participant:bewoners'."""
    kind = label.split(":", 1)[0]
    return kind if kind in KINDS else "sentence"


def valid_spans(text: str, evidence: list[dict]) -> list[dict]:
    """Return the evidence spans whose offsets fall inside the text, dropping the rest."""
    spans = []
    for span in evidence:
        start, end = span.get("start"), span.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
            spans.append({**span, "kind": evidence_kind(str(span.get("label", "")))})
        else:
            log.debug("evidence span %r lies outside the text; not highlighted", span)
    return spans


def highlight_text(text: str, evidence: list[dict]) -> Markup:
    """Return the text as HTML with each evidence span wrapped in a <mark> of its kind."""
    spans = valid_spans(text, evidence)
    # Spans overlap (a sentence holds a participant and a construction): cut at every boundary and
    # give each piece the classes of all spans covering it.
    cuts = sorted({0, len(text)} | {s["start"] for s in spans} | {s["end"] for s in spans})
    parts = []
    for start, end in pairwise(cuts):
        piece = escape(text[start:end])
        covering = [s for s in spans if s["start"] <= start and end <= s["end"]]
        parts.append(_mark(piece, covering) if covering else piece)
    return Markup("").join(parts)


def _mark(piece: Markup, covering: list[dict]) -> Markup:
    kinds = sorted({s["kind"] for s in covering}, key=KINDS.index)
    labels = ", ".join(sorted({str(s.get("label", "")) for s in covering}))
    classes = " ".join(f"ev-{k}" for k in kinds)
    return Markup('<mark class="ev {}" title="{}">{}</mark>').format(classes, labels, piece)


def grouped_evidence(text: str, evidence: list[dict]) -> dict[str, list[dict]]:
    """Return the valid evidence spans grouped by kind, in a fixed kind order."""
    groups: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for span in valid_spans(text, evidence):
        groups[span["kind"]].append(span)
    return {kind: spans for kind, spans in groups.items() if spans}


def best_quote(text: str, evidence: list[dict], limit: int = 300) -> str:
    """Return the strongest key sentence as a quote (at most `limit` characters), else the opening."""
    sentences = [s for s in valid_spans(text, evidence) if s["kind"] == "sentence"]
    if sentences:
        best = max(sentences, key=lambda s: s.get("weight", 0))
        quote = text[best["start"]:best["end"]].strip()
    else:
        quote = text.strip().split("\n", 1)[0]
    return quote if len(quote) <= limit else quote[: limit - 1].rstrip() + "…"
