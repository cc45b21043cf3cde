"""Exact and near-duplicate detection: one wire story republished by several outlets is one cluster."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from datasketch import MinHash, MinHashLSH

from pipeline.records import Article
# The signatures live in their own module (the store re-signs with them); re-exported for dedupe's callers.
from pipeline.signatures import (  # noqa: F401
    MIN_WORDS, NUM_PERM, SHINGLE_WORDS, SIGNATURE_SEED, minhash_of, shingles, signature_bytes, signature_from_bytes,
)

if TYPE_CHECKING:  # the store imports nothing from here; the hint only
    from pipeline.store import Store

log = logging.getLogger(__name__)


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
    """An LSH index of cluster heads; a query returns the most similar head above the threshold.

    datasketch works out the banding (lsh_params); a head is a candidate when one band of its signature
    equals the query's. Held as one dict per band: MinHashLSH's per-band numpy slicing and storage layers
    cost a tenth of trafilatura's whole extraction time per short page, for the same candidates.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.bands, self.rows = lsh_params(threshold)
        # A band value maps to its one head, or to a tuple of heads: most values have one, and a bare int is
        # neither allocated per head nor tracked by the garbage collector as a list is.
        self.buckets: list[dict[bytes, int | tuple[int, ...]]] = [{} for _ in range(self.bands)]
        self.signatures: dict[int, MinHash] = {}
        self._last_bands: tuple[MinHash | None, list[bytes]] = (None, [])

    def _band_values(self, sig: MinHash) -> list[bytes]:
        last, values = self._last_bands  # a query, then the add of the same new head: worked out once
        if last is sig:  # (a signature is never changed once made)
            return values
        raw, width = signature_bytes(sig), 8 * self.rows
        values = [raw[band * width:(band + 1) * width] for band in range(self.bands)]
        self._last_bands = (sig, values)
        return values

    def add(self, article_id: int, sig: MinHash) -> None:
        """Index an article as the head of its own cluster."""
        if article_id in self.signatures:
            return
        for bucket, value in zip(self.buckets, self._band_values(sig), strict=True):
            held = bucket.get(value)
            bucket[value] = article_id if held is None else (*_heads(held), article_id)
        self.signatures[article_id] = sig

    def candidates(self, sig: MinHash) -> set[int]:
        """Return the heads that share at least one band with a signature."""
        return {head for bucket, value in zip(self.buckets, self._band_values(sig), strict=True)
                if value in bucket for head in _heads(bucket[value])}

    def best_match(self, sig: MinHash) -> tuple[int, float] | None:
        """Return (article id, estimated Jaccard) of the closest indexed head, if close enough."""
        scored = [(key, sig.jaccard(self.signatures[key])) for key in self.candidates(sig)]
        scored = [pair for pair in scored if pair[1] >= self.threshold]
        return max(scored, key=lambda pair: (pair[1], -pair[0])) if scored else None

    @classmethod
    def from_signatures(cls, rows: list[tuple[int, bytes]], threshold: float) -> NearDuplicateIndex:
        """Build the index from stored (article id, signature bytes) rows."""
        index = cls(threshold)
        for article_id, blob in rows:
            index.add(article_id, signature_from_bytes(blob))
        return index


def _heads(held: int | tuple[int, ...]) -> tuple[int, ...]:
    return held if isinstance(held, tuple) else (held,)


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


def save_deduplicated(store: Store, index: NearDuplicateIndex, article: Article, **save_kwargs) -> bool:
    """Decide the article's cluster, let the store save it, index a new head; return True for a new cluster."""
    decision = decide_duplicate(article, store.cluster_of_content(article.content_hash), index)
    sig = decision.signature
    article_id = store.save_article(article, duplicate=decision.duplicate,
                                    minhash=signature_bytes(sig) if sig is not None else None, **save_kwargs)
    if decision.heads_new_cluster and sig is not None:
        index.add(article_id, sig)
    return decision.heads_new_cluster


# -- cluster heads shared with other writers (a backfill on PostgreSQL) -------------------------------------
def band_keys(sig, threshold: float) -> list[int]:
    """Return one signed 64-bit key per LSH band of a signature (band number included), for the store's index."""
    bands, rows = lsh_params(threshold)  # the bands NearDuplicateIndex uses
    keys = []
    for band in range(bands):
        chunk = sig.hashvalues[band * rows:(band + 1) * rows].astype("<u8").tobytes()
        digest = hashlib.blake2b(band.to_bytes(2, "little") + chunk, digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys


@dataclass
class ClusterHeads:
    """The near-duplicate index of the cluster heads, and the newest head it holds (to catch up on others')."""

    index: NearDuplicateIndex
    threshold: float
    newest: int = 0


def load_heads(store: Store, threshold: float) -> ClusterHeads:
    """Index the stored cluster heads, as the article stage starts."""
    rows = store.signatures_of_canonicals()
    return ClusterHeads(NearDuplicateIndex.from_signatures(rows, threshold), threshold,
                        max((article_id for article_id, _ in rows), default=0))


def catch_up_heads(store: Store, heads: ClusterHeads) -> None:
    """Index the heads stored since (a backfill's), and store the LSH band keys of those without (ours)."""
    unbanded = {}
    for article_id, blob, banded in store.heads_after(heads.newest):
        sig = signature_from_bytes(blob)
        heads.index.add(article_id, sig)
        if not banded:  # a backfill worker finds a head by its band keys, not in this run's memory
            unbanded[article_id] = band_keys(sig, heads.threshold)
        heads.newest = max(heads.newest, article_id)
    if unbanded:
        store.save_bands(unbanded)


def save_article_deduplicated(store: Store, heads: ClusterHeads, article: Article, **save: object) -> bool:
    """Dedupe and store an article under the backfill writers' lock; return True when it heads a new cluster."""
    # On PostgreSQL a backfill may be storing the same wire story right now: with the lock held, the heads it
    # stored are indexed before deciding, and a new head gets its band keys before the lock is released.
    with store.writers_lock() as shared:
        if shared:
            catch_up_heads(store, heads)
        new = save_deduplicated(store, heads.index, article, **save)
        if shared and new:
            catch_up_heads(store, heads)
    return new
