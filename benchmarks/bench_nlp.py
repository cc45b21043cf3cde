"""NLP + classification throughput on the real dev texts, against extraction time on as many pages.

Target (issue 3): NLP + classification adds at most half of extraction's time per article.
"""

from __future__ import annotations

import json
import os
import time

import trafilatura

from benchmarks.bench_ingest import real_pages
from pipeline.detect.score import Scorer
from tests.conftest import CORPUS


def dev_records() -> list[dict]:
    """Return the real dev texts as score records."""
    rows = [json.loads(line) for line in (CORPUS / "articles" / "dev.jsonl").open(encoding="utf-8")]
    return [{"id": r["id"], "title": r["title"], "text": r["text"]} for r in rows if r["text"].strip()]


def main() -> dict:
    """Time scoring of the dev texts and trafilatura on the same number of real pages, one core."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    records = dev_records()
    scorer = Scorer.load()
    scorer.score(records[:10])  # warm caches and the lemma table
    started = time.perf_counter()
    scorer.score(records)
    nlp_seconds = time.perf_counter() - started
    pages = real_pages()
    started = time.perf_counter()
    for i in range(len(records)):
        trafilatura.extract(pages[i % len(pages)].decode("utf-8", "replace"), include_comments=False)
    extract_seconds = time.perf_counter() - started
    chars = sum(len(r["text"]) for r in records)
    return {"articles": len(records), "mean_chars": round(chars / len(records)),
            "nlp_and_classification_per_s": round(len(records) / nlp_seconds, 1),
            "trafilatura_extract_per_s": round(len(records) / extract_seconds, 1),
            "nlp_time_over_extraction_time": round(nlp_seconds / extract_seconds, 3), "target_at_most": 0.5}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
