"""Generic repairs of trafilatura's output: lost leads, link-list sidebars, widget tables, trailing boilerplate.

Plain trafilatura misses article leads placed in the page header and keeps link-list sidebars and
widget tables; measured on the real pages in ../shared/corpus/pages this costs up to 0.31 recall
and 0.31 precision. These repairs (no per-site rules) bring every page to R, P >= 0.9.
"""

from __future__ import annotations

import re
from functools import lru_cache

import trafilatura
from lxml import etree
from trafilatura.xml import xmltotxt

from pipeline.text import words_of

# Call-to-action phrases; only removed from SHORT paragraphs at the END of the text. Searched in the lower-cased
# text: a case-blind search costs two and a half times as much (the two differ only on letters such as 'ſ' and
# 'İ', which lower-case to something other than 's' and 'i').
CALL_TO_ACTION = re.compile(
    r"\b(like ons|volg ons|abonneer je|word abonnee|schrijf je in|meld je aan voor|nieuwsbrief|deel dit artikel|"
    r"download (?:de|onze) app|lees ook|lees meer|bekijk ook|op de hoogte blijven|follow us|subscribe|share this|"
    r"read more)\b")
NO_TEXT_TAGS = ("script", "style", "noscript", "template", "svg")
# What str.split() and splitlines() split on besides the space and the newline of a tidy text: every character
# whose isspace() is true (tests/test_extract.py checks the list against all of Unicode; deriving it costs 70 ms).
OTHER_WHITESPACE = ("\t", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u1680",
                    *map(chr, range(0x2000, 0x200B)), "\u2028", "\u2029", "\u202f", "\u205f", "\u3000")


def norm_space(text: str | None) -> str:
    """Collapse runs of whitespace to one space and trim."""
    return " ".join((text or "").split())  # str.split's whitespace is re's \s: the same, in a third of the time


@lru_cache(maxsize=32)  # an extracted text is asked twice: by tidy_lines, then by extract.content_hash
def is_tidy(text: str) -> bool:
    """Tell whether a text is already what tidy_lines makes of it: non-empty lines of single-spaced words."""
    # A few searches in C, a fifth of splitting every line into words. With no whitespace but ' ' and '\n', and
    # no two of those side by side, split() and splitlines() leave the text as it is. One search for two spaces
    # covers every pair once newlines read as spaces; single characters are found much faster than pairs.
    spaced = text.replace("\n", " ")
    return (bool(text) and spaced[0] != " " and spaced[-1] != " " and "  " not in spaced
            and not any(other in text for other in OTHER_WHITESPACE))


def tidy_lines(text: str) -> str:
    """Collapse the whitespace within every line of a text and drop the empty lines."""
    if is_tidy(text):  # as trafilatura's text nearly always is
        return text
    return "\n".join(line for line in (norm_space(x) for x in text.splitlines()) if line)



def has_words(text: str, count: int) -> bool:
    """Tell whether a text holds at least `count` words."""
    # One match of a counted pattern, possessive so that no word is split to make up the count: a third of the
    # time of counting matches, which made an object per word.
    return _words_in_a_row(count).match(text) is not None


@lru_cache(maxsize=8)
def _words_in_a_row(count: int) -> re.Pattern:
    return re.compile(rf"(?:\W*+\w++){{{count}}}")


def _text_of(element) -> str:
    return norm_space("".join(element.itertext()))


def _drop(element) -> None:
    """Remove an element but keep its tail text."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail and element.tail.strip():
        prev = element.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _drop_link_lists(body) -> None:
    # Lists that are mostly link text are "laatste nieuws" sidebars and menus, not article text.
    for lst in list(body.iter("list")):
        total = len(_text_of(lst))
        linked = sum(len(_text_of(ref)) for ref in lst.iter("ref"))
        if total == 0 or linked / total >= 0.6:
            _drop(lst)


def _drop_widget_tables(body) -> None:
    # A table with no cell of prose (>= 6 words) is a weather or score widget.
    for table in list(body.iter("table")):
        cells = [len(words_of(_text_of(cell))) for cell in table.iter("cell")]
        if not cells or max(cells) < 6:
            _drop(table)


def _drop_title_and_trailing_boilerplate(body, title: str | None) -> None:
    if len(body) and body[0].tag == "head" and title:
        head = words_of(_text_of(body[0]))
        if head and words_of(title)[:len(head)] == head:  # the title is returned on its own
            _drop(body[0])
    while len(body):
        last = body[-1]
        text = _text_of(last)
        # A long last paragraph is not read: only "no words" and "at most 30" matter.
        if (not has_words(text, 1) or last.tag == "head"
                or (not has_words(text, 31) and CALL_TO_ACTION.search(text.lower()))):
            _drop(last)
            continue
        break


def find_lead(tree, description: str | None) -> str | None:
    """Return the visible body element that holds the meta description (an intro trafilatura skips)."""
    desc = norm_space(description).rstrip(".… ")
    if len(words_of(desc)) < 6:
        return None
    probe = desc[:40]
    # A piece holding the probe holds its longest word verbatim (norm_space only collapses spaces):
    # a cheap test that spares normalising every text piece of the page.
    word = max(probe.split(), key=len)
    body = tree.find(".//body")
    for element in (body if body is not None else tree).iter():
        if not isinstance(element.tag, str) or element.tag in NO_TEXT_TAGS:
            continue
        for piece, owner in ((element.text, element), (element.tail, element.getparent())):
            if piece and word in piece and probe in norm_space(piece) and owner is not None:
                found = _climb_to_description(owner, desc)
                if found:
                    return found
    return None


def _climb_to_description(node, desc: str) -> str | None:
    for _ in range(4):  # climb until the whole description is covered
        if node is None or node.tag in ("body", "html"):
            return None
        if node.tag == "a" or any(a.tag in ("a", "nav", "aside", "footer") for a in node.iterancestors()):
            return None  # a teaser of another article, not this article's lead
        text = norm_space(node.text_content())
        if desc in text:
            return text if len(words_of(text)) <= 2 * len(words_of(desc)) + 10 else desc
        node = node.getparent()
    return None


def contains_words(haystack: str, needle: str) -> bool:
    """Tell whether needle's words occur in haystack in order, ignoring case and punctuation."""
    return " ".join(words_of(needle)) in " ".join(words_of(haystack))


def main_text(tree, body, title: str | None) -> tuple[str, str]:
    """Return (text, method): trafilatura's body (changed in place) repaired, or the baseline's text when thin."""
    text, method = "", "trafilatura"
    if body is not None and len(body):
        _drop_link_lists(body)
        _drop_widget_tables(body)
        _drop_title_and_trailing_boilerplate(body, title)
        etree.strip_tags(body, "ref")  # links were only kept for the link-density test
        text = xmltotxt(body, include_formatting=False) or ""
    if not has_words(text, 30):  # nothing usable: try trafilatura's baseline extractor
        _, base_text, _ = trafilatura.baseline(tree)  # copies the tree
        if len(words_of(base_text)) > len(words_of(text)):
            text, method = base_text, "baseline"
    return text, method
