"""Exact and near-duplicate detection: one wire story republished by several outlets is one cluster."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from datasketch import MinHash, MinHashLSH

from pipeline.records import Article

if TYPE_CHECKING:  # the store imports nothing from here; the hint only
    from pipeline.store import Store

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


@lru_cache(maxsize=1)
def _permutations():
    # MinHash draws the same seeded permutations on every construction, about a third of its cost on
    # short pages; drawn once, the signatures are identical.
    return MinHash(num_perm=NUM_PERM).permutations


def minhash_of(text: str) -> MinHash | None:
    """Return the MinHash signature of a text, or None when it is too short to compare."""
    if len(re.findall(r"\w+", text)) < MIN_WORDS:
        return None
    sig = MinHash(num_perm=NUM_PERM, permutations=_permutations())
    sig.update_batch(list(shingles(text)))
    return sig


def signature_bytes(sig: MinHash) -> bytes:
    """Serialise a signature for the store (little-endian uint64)."""
    return sig.hashvalues.astype("<u8").tobytes()


def signature_from_bytes(blob: bytes) -> MinHash:
    """Rebuild a signature serialised by signature_bytes."""
    return MinHash(num_perm=NUM_PERM, hashvalues=np.frombuffer(blob, dtype="<u8").astype(np.uint64))


@lru_cache(maxsize=8)
def lsh_params(threshold: float) -> tuple[int, int]:
    """Return MinHashLSH's (bands, rows per band) for the index of this threshold, worked out once.

    LSH finds candidates a little below the threshold; the exact estimate decides. Working the
    parameters out is a numerical optimisation that costs more than a query: the backfill builds
    one small index per article.
    """
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=NUM_PERM)
    return lsh.b, lsh.r


class NearDuplicateIndex:
    """An LSH index of cluster heads; a query returns the most similar head above the threshold."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.lsh = MinHashLSH(num_perm=NUM_PERM, params=lsh_params(threshold))
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
    def from_signatures(cls, rows: list[tuple[int, bytes]], threshold: float) -> NearDuplicateIndex:
        """Build the index from stored (article id, signature bytes) rows."""
        index = cls(threshold)
        for article_id, blob in rows:
            index.add(article_id, signature_from_bytes(blob))
        return index


@dataclass(frozen=True)
class DedupeDecision:
    """Where a new article belongs: (canonical id, 'exact' | 'near', similarity) of its cluster, or a new cluster."""

    duplicate: tuple[int, str, float] | None
    signature: MinHash | None

    @property
    def heads_new_cluster(self) -> bool:
        """Tell whether the article starts a cluster of its own."""
        return self.duplicate is None


def decide_duplicate(article: Article, exact_cluster: int | None, index: NearDuplicateIndex) -> DedupeDecision:
    """Decide an article's identity and cluster from the candidates; pure: nothing is read or written.

    `exact_cluster` is the cluster of a stored article with the same normalised text (found by content hash),
    `index` holds the cluster heads' signatures. Exact copies join that cluster; near copies join the most
    similar head above the threshold; anything else heads a new cluster.
    """
    sig = minhash_of(article.text)
    if exact_cluster is not None:
        return DedupeDecision((exact_cluster, "exact", 1.0), sig)
    match = index.best_match(sig) if sig is not None else None
    if match is not None:
        return DedupeDecision((match[0], "near", round(match[1], 3)), sig)
    return DedupeDecision(None, sig)


def find_duplicate(store: Store, index: NearDuplicateIndex,
                   article: Article) -> tuple[tuple[int, str, float] | None, MinHash | None]:
    """Return ((canonical id, 'exact' | 'near', similarity) or None, signature) for a new article."""
    decision = decide_duplicate(article, store.cluster_of_content(article.content_hash), index)
    return decision.duplicate, decision.signature


def save_deduplicated(store: Store, index: NearDuplicateIndex, article: Article, **save_kwargs) -> bool:
    """Decide the article's cluster, let the store save it, index a new head; return True for a new cluster."""
    decision = decide_duplicate(article, store.cluster_of_content(article.content_hash), index)
    sig = decision.signature
    article_id = store.save_article(article, duplicate=decision.duplicate,
                                    minhash=signature_bytes(sig) if sig is not None else None, **save_kwargs)
    if decision.heads_new_cluster and sig is not None:
        index.add(article_id, sig)
    return decision.heads_new_cluster
