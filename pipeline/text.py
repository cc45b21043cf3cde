"""Text helpers every stage shares: the word tokens signatures and repairs count, and the length cap of a stored text.

They sit below the stages so that the store (which caps what it keeps) and the MinHash signatures (which
shingle words) need nothing from extraction.
"""

from __future__ import annotations

import dataclasses
import re

from pipeline.records import Article

WORD = re.compile(r"\w+")


def words_of(text: str | None) -> list[str]:
    """Return the lower-cased word tokens of a text."""
    return WORD.findall((text or "").lower())


def cap_text(text: str, max_chars: int) -> tuple[str, int | None]:
    """Cut a text longer than max_chars at its last paragraph break; return (text, original length or None)."""
    if len(text) <= max_chars:
        return text, None
    window = text[:max_chars]
    # Whole paragraphs when one ends in the second half of the window; else a sentence, a word, or a hard cut.
    for separator, keep in (("\n", 0), (". ", 1), (" ", 0)):
        cut = window.rfind(separator)
        if cut >= max_chars // 2:
            return window[:cut + keep].rstrip(), len(text)
    return window, len(text)


def cap_article(article: Article, max_chars: int) -> Article:
    """Return the article with its text capped to max_chars, the original length kept in truncated_from."""
    text, original = cap_text(article.text, max_chars)
    if original is None:
        return article
    # content_hash stays the hash of the whole text: two copies of one long story are still one.
    return dataclasses.replace(article, text=text, truncated_from=max(original, article.truncated_from or 0))
