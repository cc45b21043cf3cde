"""Exact and near-duplicate detection: one wire story republished by several outlets is one cluster."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import rensa
from datasketch import MinHash, MinHashLSH

from pipeline.records import Article
from pipeline.repairs import words_of

if TYPE_CHECKING:  # the store imports nothing from here; the hint only
    from pipeline.store import Store

log = logging.getLogger(__name__)

NUM_PERM = 128
SHINGLE_WORDS = 3
# Below this many words a text is a teaser or a summary; MinHash on it is too noisy to cluster.
MIN_WORDS = 40
# Stored signatures are comparable only when made by the same rensa algorithm with the same seed: the
# version is pinned in pyproject.toml, and schema 12 re-signed the articles that the SHA-1 signatures had.
SIGNATURE_SEED = 20240501


def shingles(text: str, size: int = SHINGLE_WORDS) -> list[str]:
    """Return the word n-grams of a text, lower-cased, punctuation ignored (repeats kept: MinHash ignores them)."""
    return _shingles_of(words_of(text), size)


def _shingles_of(words: list[str], size: int) -> list[str]:
    if len(words) < size:
        return [" ".join(words)] if words else []
    return list(map(" ".join, zip(*(words[i:] for i in range(size)), strict=False)))  # n-grams, no Python loop


@lru_cache(maxsize=1)
def _permutations():
    # datasketch draws the same seeded permutations on every construction; our signatures come from rensa,
    # so these are only the shape a MinHash object needs, drawn once instead of per signature.
    return MinHash(num_perm=NUM_PERM).permutations


def minhash_of(text: str) -> MinHash | None:
    """Return the MinHash signature of a text, or None when it is too short to compare."""
    words = words_of(text)
    if len(words) < MIN_WORDS:
        return None
    # rensa hashes and permutes in Rust: five times faster than datasketch's per-shingle SHA-1 in Python,
    # which was a third of the extraction + dedupe time on short pages. datasketch keeps the LSH index
    # and the Jaccard estimate, so only the signature values come from rensa.
    sketch = rensa.RMinHash(NUM_PERM, SIGNATURE_SEED)
    sketch.update(_shingles_of(words, SHINGLE_WORDS))
    return _as_minhash(np.asarray(sketch.digest(), dtype=np.uint64))


def _as_minhash(values: np.ndarray) -> MinHash:
    return MinHash(num_perm=NUM_PERM, hashvalues=values, permutations=_permutations())


def signature_bytes(sig: MinHash) -> bytes:
    """Serialise a signature for the store (little-endian uint64)."""
    return sig.hashvalues.astype("<u8").tobytes()


def signature_from_bytes(blob: bytes) -> MinHash:
    """Rebuild a signature serialised by signature_bytes."""
    return _as_minhash(np.frombuffer(blob, dtype="<u8").astype(np.uint64))


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
