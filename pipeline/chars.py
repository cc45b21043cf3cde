"""Characters no output may carry: what XML 1.0 forbids and what HTML calls controls or noncharacters.

A title, outlet or lesson with one of them makes the Atom writer refuse the whole feed (lxml raises) and breaks
every page that shows it. The store removes them from what it keeps (articles and review decisions), and the
writers of outside outputs (publish, the Atom feeds, the digest) remove them again from what was stored before.
"""

from __future__ import annotations

import re

# Controls that str.split() reads as whitespace become a space, so the words either side stay apart.
SPACE_LIKE = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"
# XML 1.0 allows tab, newline, carriage return, U+0020–U+D7FF, U+E000–U+FFFD and U+10000–U+10FFFF. HTML also
# forbids the C1 controls (U+007F–U+009F) and the noncharacters U+FDD0–U+FDEF and U+xFFFE, U+xFFFF in every plane.
NONCHARACTERS = "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
FORBIDDEN = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff{NONCHARACTERS}]")


def xml_safe(text: str) -> str:
    """Return the text without the characters XML 1.0 and HTML forbid; whitespace-like controls become spaces."""
    if not FORBIDDEN.search(text):  # nearly every text: one search, no copy
        return text
    return FORBIDDEN.sub(lambda m: " " if m.group() in SPACE_LIKE else "", text)


def has_forbidden(text: str) -> bool:
    """Tell whether a text carries a character XML 1.0 or HTML forbids."""
    return FORBIDDEN.search(text) is not None


def one_line(text: str | None) -> str:
    """Return the text as one line of single-spaced words, without the characters XML 1.0 and HTML forbid."""
    return " ".join(xml_safe(text or "").split())
