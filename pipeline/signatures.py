"""MinHash signatures of article texts: made here, compared by dedupe, stored (and re-signed) by the store.

A module of its own so the store can re-sign stored articles (schema 12) without importing dedupe, which works
on the store: neither imports the other.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import rensa
from datasketch import MinHash

from pipeline.text import words_of


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
