"""Exact and near-duplicate detection: one wire story republished by several outlets is one cluster."""

from __future__ import annotations

import logging
import re

import numpy as np
from datasketch import MinHash, MinHashLSH

log = logging.getLogger(__name__)

NUM_PERM = 128
SHINGLE_WORDS = 3
# Below this many words a text is a teaser or a summary; MinHash on it is too noisy to cluster.
MIN_WORDS = 40


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[bytes]:
    """Return the set of word n-grams of a text, lower-cased, punctuation ignored."""
    words = re.findall(r"\w+", text.lower())
    if len(words) < size:
        return {" ".join(words).encode("utf-8")} if words else set()
    return {" ".join(words[i:i + size]).encode("utf-8") for i in range(len(words) - size + 1)}


def minhash_of(text: str) -> MinHash | None:
    """Return the MinHash signature of a text, or None when it is too short to compare."""
    if len(re.findall(r"\w+", text)) < MIN_WORDS:
        return None
    sig = MinHash(num_perm=NUM_PERM)
    sig.update_batch(list(shingles(text)))
    return sig


def signature_bytes(sig: MinHash) -> bytes:
    """Serialise a signature for the store (little-endian uint64)."""
    return sig.hashvalues.astype("<u8").tobytes()


def signature_from_bytes(blob: bytes) -> MinHash:
    """Rebuild a signature serialised by signature_bytes."""
    return MinHash(num_perm=NUM_PERM, hashvalues=np.frombuffer(blob, dtype="<u8").astype(np.uint64))


class NearDuplicateIndex:
    """An LSH index of cluster heads; a query returns the most similar head above the threshold."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        # LSH finds candidates a little below the threshold; the exact estimate decides.
        self.lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=NUM_PERM)
        self.signatures: dict[int, MinHash] = {}

    def add(self, article_id: int, sig: MinHash) -> None:
        """Index an article as the head of its own cluster."""
        if article_id in self.signatures:
            return
        self.lsh.insert(article_id, sig)
        self.signatures[article_id] = sig

    def best_match(self, sig: MinHash) -> tuple[int, float] | None:
        """Return (article id, estimated Jaccard) of the closest indexed head, if close enough."""
        scored = [(key, sig.jaccard(self.signatures[key])) for key in self.lsh.query(sig)]
        scored = [pair for pair in scored if pair[1] >= self.threshold]
        return max(scored, key=lambda pair: (pair[1], -pair[0])) if scored else None

    @classmethod
    def from_signatures(cls, rows: list[tuple[int, bytes]], threshold: float) -> "NearDuplicateIndex":
        """Build the index from stored (article id, signature bytes) rows."""
        index = cls(threshold)
        for article_id, blob in rows:
            index.add(article_id, signature_from_bytes(blob))
        return index


def find_duplicate(store, index: NearDuplicateIndex, article) -> tuple[tuple[int, str, float] | None, MinHash | None]:
    """Return ((canonical id, 'exact' | 'near', similarity) or None, signature) for a new article.

    Exact copies (same normalised text) join the cluster of the stored copy; near copies join the
    most similar cluster head above the threshold.
    """
    sig = minhash_of(article.text)
    same = store.find_article(content_hash=article.content_hash)
    if same is not None:
        return (store.canonical_of(same), "exact", 1.0), sig
    if sig is not None:
        match = index.best_match(sig)
        if match is not None:
            return (match[0], "near", round(match[1], 3)), sig
    return None, sig


def save_deduplicated(store, index: NearDuplicateIndex, article, **save_kwargs) -> bool:
    """Store an article with its duplicate link and signature; return True when it heads a new cluster."""
    duplicate, sig = find_duplicate(store, index, article)
    article_id = store.save_article(article, duplicate=duplicate,
                                    minhash=signature_bytes(sig) if sig is not None else None, **save_kwargs)
    if duplicate is None and sig is not None:
        index.add(article_id, sig)
    return duplicate is None
