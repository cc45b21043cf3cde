"""Near-duplicate detection measured on real DPG wire copy in ../shared/corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import insert, select

from pipeline.ingest.dedupe import NUM_PERM, NearDuplicateIndex, minhash_of, shingles, signature_bytes, signature_from_bytes
from pipeline.ingest.jsonl import ingest_records
from pipeline.records import Article
from pipeline.store.migrations import RENSA_SIGNATURES_SINCE, SCHEMA_VERSION
from pipeline.store.schema import signature_bands
from pipeline.settings import Settings
from pipeline.store import Store
from tests.conftest import CORPUS, corpus_articles
from tests.test_queue_store import database_url  # noqa: F401  (a SQLite file, or a fresh PostgreSQL database)
from tests.test_store_postgres import postgres_url  # noqa: F401  (the throw-away PostgreSQL cluster fixture)


def exact_jaccard(a: str, b: str) -> float:
    """Return the true Jaccard similarity of two texts' word-trigram sets."""
    sa, sb = set(shingles(a)), set(shingles(b))
    return len(sa & sb) / len(sa | sb)


@pytest.fixture(scope="module")
def corpus_rows():
    path = CORPUS / "articles" / "dev.jsonl"
    if not path.exists():
        pytest.skip("shared corpus missing")
    return [json.loads(line) for line in path.open(encoding="utf-8")]


@pytest.fixture(scope="module")
def ingested(corpus_rows, tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('dedupe') / 'radar.db'}")
    store.migrate()
    records = ((n, {"id": r["id"], "title": r["title"], "text": r["text"], "outlet": r["outlet"]})
               for n, r in enumerate(corpus_rows, 1))
    report = ingest_records(store, records, Settings().near_duplicate_threshold)
    yield store, report
    store.close()


def _similar_pairs(rows: list[dict], floor: float) -> list[tuple[str, str, float]]:
    sigs = [(r["id"], r["text"], minhash_of(r["text"])) for r in rows]
    sigs = [s for s in sigs if s[2] is not None]
    values = np.array([s[2].hashvalues for s in sigs])
    pairs = []
    for i in range(len(sigs)):  # the estimate preselects; the exact Jaccard decides
        estimates = (values[i + 1:] == values[i]).mean(axis=1)
        for j in np.nonzero(estimates >= floor - 0.1)[0]:
            other = sigs[i + 1 + j]
            pairs.append((sigs[i][0], other[0], exact_jaccard(sigs[i][1], other[1])))
    return pairs


def test_every_clustered_pair_is_really_one_story(ingested, corpus_rows):
    store, _ = ingested
    text = {a.id: a.text for a in store.articles()}
    members = [a for a in store.articles() if a.canonical_id is not None]
    assert members, "the real corpus holds republished wire copy; none was clustered"
    for member in members:
        # Measured on this corpus: distinct stories stay below 0.3, rewritten wire copy is 0.4-1.0.
        assert exact_jaccard(text[member.id], text[member.canonical_id]) >= 0.35


def test_clearly_republished_copy_is_clustered(ingested, corpus_rows):
    store, report = ingested
    by_external = {a.external_id: a for a in store.articles()}
    strong = [(a, b, j) for a, b, j in _similar_pairs(corpus_rows, 0.6) if j >= 0.6]
    assert len(strong) >= 20
    for a, b, _ in strong:
        head_a = by_external[a].canonical_id or by_external[a].id
        head_b = by_external[b].canonical_id or by_external[b].id
        assert head_a == head_b, f"{a} and {b} are one story but not one cluster"
    empty = sum(not r["text"].strip() for r in corpus_rows)  # the corpus has texts whose body is missing
    assert report.new + report.duplicate == len(corpus_rows) - empty
    assert len(report.invalid) == empty and all("missing text" in line for line in report.invalid)


def test_reingest_adds_nothing(ingested, corpus_rows):
    store, _ = ingested
    before = store.counts()["articles"]
    records = ((n, {"id": r["id"], "title": r["title"], "text": r["text"]}) for n, r in enumerate(corpus_rows))
    again = ingest_records(store, records, 0.5)
    assert again.already_stored + len(again.invalid) == len(corpus_rows) and store.counts()["articles"] == before


def test_signature_round_trip_and_short_texts():
    sig = minhash_of("De gemeente gaat samen met bewoners een park ontwerpen aan de rand van de stad. " * 5)
    assert sig is not None and signature_from_bytes(signature_bytes(sig)).jaccard(sig) == 1.0
    assert minhash_of("Te kort om te vergelijken.") is None


def test_index_returns_best_head_above_threshold():
    base = " ".join(f"woord{i}" for i in range(200))
    index = NearDuplicateIndex(0.5)
    index.add(1, minhash_of(base))
    index.add(2, minhash_of(" ".join(f"ander{i}" for i in range(200))))
    match = index.best_match(minhash_of(base + " extra zin aan het eind"))
    assert match is not None and match[0] == 1 and match[1] > 0.9
    assert index.best_match(minhash_of(" ".join(f"derde{i}" for i in range(200)))) is None


def test_a_signature_is_the_same_in_another_process_so_stored_ones_stay_comparable():
    text = " ".join(f"woord{i % 97} zin{i % 13}" for i in range(200))
    code = ("import sys; from pipeline.ingest.dedupe import minhash_of, signature_bytes; "
            "sys.stdout.write(signature_bytes(minhash_of(sys.argv[1])).hex())")
    other = subprocess.run([sys.executable, "-c", code, text], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert bytes.fromhex(other.stdout) == signature_bytes(minhash_of(text))
    other_text = " ".join(f"ander{i % 89} woord{i % 11}" for i in range(200))
    assert signature_bytes(minhash_of(other_text)) != signature_bytes(minhash_of(text))


def test_the_estimate_follows_the_true_jaccard_of_real_texts():
    texts = [art["text"] for art in corpus_articles(min_chars=1500)][:20]
    for a, b in zip(texts, texts[1:], strict=False):
        half = b[:len(b) // 2]
        mixed = a + " " + half  # a and half of b: a true Jaccard well between 0 and 1
        assert abs(minhash_of(a).jaccard(minhash_of(mixed)) - exact_jaccard(a, mixed)) < 0.15


def test_the_index_finds_the_candidates_datasketchs_lsh_finds():
    from datasketch import MinHashLSH

    from pipeline.ingest.dedupe import lsh_params

    texts = [art["text"] for art in corpus_articles(min_chars=800)][:150]
    sigs = [s for s in (minhash_of(t) for t in texts) if s is not None]
    # Near copies of the first 20 are indexed too, so that band values hold several heads.
    heads = sigs[:100] + [s for s in (minhash_of(t[: len(t) * 4 // 5]) for t in texts[:20]) if s is not None]
    ours, theirs = NearDuplicateIndex(0.5), MinHashLSH(num_perm=128, params=lsh_params(0.5))
    for number, sig in enumerate(heads):
        ours.add(number, sig)
        theirs.insert(number, sig)
    queries = sigs[100:] + [minhash_of(t[: len(t) * 2 // 3]) for t in texts[:40]]  # new texts and near copies
    found = [ours.candidates(q) for q in queries if q is not None]
    assert found == [set(theirs.query(q)) for q in queries if q is not None]
    assert sum(bool(f) for f in found) >= 20  # near copies met their heads: the comparison is not of empty sets
    assert sum(len(f) >= 2 for f in found) >= 5  # and band values holding two heads


# -- schema 12: MinHash signatures from rensa ------------------------------------------------------------------
def sha1_signature(text: str) -> bytes:
    """Return the signature the releases before schema 12 stored: datasketch's SHA-1 MinHash of word trigrams."""
    from datasketch import MinHash

    sig = MinHash(num_perm=NUM_PERM)
    sig.update_batch([s.encode("utf-8") for s in set(shingles(text))])
    return signature_bytes(sig)


def test_an_upgrade_re_signs_stored_articles_so_a_rewritten_copy_still_joins_its_story(database_url, monkeypatch):  # noqa: F811
    import pipeline.store.base as store_module  # the migrating code reads SCHEMA_VERSION there

    store = Store(database_url)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", RENSA_SIGNATURES_SINCE - 1)
    store.migrate()
    monkeypatch.undo()
    texts = [art["text"] for art in corpus_articles(min_chars=1500)][:3] + [" ".join(["kort"] * 45)]
    ids = [store.save_article(Article(url=f"https://x.test/{i}", canonical_url=f"https://x.test/{i}", title=f"T{i}",
                                      text=text, content_hash=f"h{i}"), run_id=None, minhash=sha1_signature(text))
           for i, text in enumerate(texts)]
    with store.engine.begin() as conn:  # a band key the backfill stored from the old signature
        conn.execute(insert(signature_bands).values(band_key=7, article_id=ids[0]))
    assert store.migrate() == SCHEMA_VERSION
    stored = dict(store.signatures_of_canonicals())
    assert stored == {i: signature_bytes(minhash_of(t)) for i, t in zip(ids, texts, strict=True) if minhash_of(t)}
    with store.engine.connect() as conn:
        assert conn.execute(select(signature_bands)).all() == []  # the backfill refills them from the new ones
    index = NearDuplicateIndex.from_signatures(store.signatures_of_canonicals(), 0.5)
    rewritten = texts[1].replace(". ", ", en. ", 3) + " Een zin die het persbureau er nog aan toevoegde."
    assert index.best_match(minhash_of(rewritten))[0] == ids[1]
    store.close()
