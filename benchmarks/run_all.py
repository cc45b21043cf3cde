"""Run every benchmark and print one JSON report (also written to data/local/bench.json)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_backfill, bench_ingest, bench_learning, bench_nlp, bench_review


def main() -> None:
    """Run the benchmarks in turn and print their figures."""
    results = {"nlp": bench_nlp.main(), "ingest": bench_ingest.main(), "learning": bench_learning.main(),
               "review": bench_review.main(["--articles", "100000"]),
               # the extraction ratio is in "ingest" already, from the same bench_ingest code
               "backfill": bench_backfill.main(["--no-extraction"])}
    out = Path("data/local/bench.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
