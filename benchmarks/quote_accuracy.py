"""How often the quote shown outside the tool (best_quote) shows the gold evidence of dev and dev2 positives.

Each positive's text is scored with the shipped model as `radar score` does (Scorer), its quote is taken
with `best_quote`, and compared with the annotator's verbatim `evidence`. A hit is the exact sentence (the
quote lies inside the gold evidence or the gold evidence inside the quote, whitespace aside) or a token
overlap of at least 0.5: half of the gold evidence's word tokens stand in the quote. The baseline quotes
the text's first sentence, which is what a reader sees first and what the old quote mostly showed.

Note that the shipped model was trained on these texts, so its key passages are in-sample; the figure
measures how well the quote is chosen from the evidence, not how well the detector generalises.

    python -m benchmarks.quote_accuracy
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pipeline.detect.nlp import analyse
from pipeline.detect.score import Scorer
from pipeline.highlight import best_quote
from pipeline.text import words_of
from tests.conftest import CORPUS

PARTS = ("dev", "dev2")
MIN_OVERLAP = 0.5


def read_jsonl(path: Path) -> list[dict]:
    """Return the JSON objects of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gold_positives(corpus: Path = CORPUS, parts: tuple[str, ...] = PARTS) -> list[dict]:
    """Return the positive texts that carry a gold evidence quote, with that quote under `gold`."""
    records = []
    for part in parts:
        labels = {lab["id"]: lab for lab in read_jsonl(corpus / "labels" / f"{part}.jsonl")}
        for article in read_jsonl(corpus / "articles" / f"{part}.jsonl"):
            label = labels.get(article["id"])
            if label and label.get("cocreation") and (label.get("evidence") or "").strip():
                records.append({"id": article["id"], "title": article.get("title") or "",
                                "text": article["text"], "gold": label["evidence"]})
    return records


def shows_gold(quote: str, gold: str) -> bool:
    """Tell whether a quote shows the gold evidence: the exact sentence, or half its word tokens."""
    quote_flat, gold_flat = " ".join(quote.rstrip("…").split()), " ".join(gold.split())
    if quote_flat and (quote_flat in gold_flat or gold_flat in quote_flat):
        return True
    gold_words = set(words_of(gold))
    return bool(gold_words) and len(gold_words & set(words_of(quote))) / len(gold_words) >= MIN_OVERLAP


def first_sentences(records: list[dict]) -> list[str]:
    """Return each text's first non-blank sentence, as the Dutch pipeline splits it."""
    firsts = []
    for record, analysis in zip(records, analyse([("", r["text"]) for r in records]), strict=True):
        spans = [record["text"][s.start:s.end].strip() for s in analysis.sentences]
        firsts.append(next((s for s in spans if s), ""))
    return firsts


def hit_rate(quotes: list[str], records: list[dict]) -> tuple[int, float]:
    """Return the number of quotes that show their gold evidence and that number's share."""
    hits = sum(shows_gold(q, r["gold"]) for q, r in zip(quotes, records, strict=True))
    return hits, hits / max(1, len(records))


def model_quotes(records: list[dict], choose: Callable[[str, list[dict]], str] = best_quote) -> list[str]:
    """Return the quote `choose` takes from each record's evidence as the shipped model scores it."""
    scores = Scorer.load().score([{k: r[k] for k in ("id", "title", "text")} for r in records])
    return [choose(r["text"], s["evidence"]) for r, s in zip(records, scores, strict=True)]


def main() -> dict:
    """Measure the quote and the first-sentence baseline; return and print the figures."""
    records = gold_positives()
    hits, rate = hit_rate(model_quotes(records), records)
    base_hits, base_rate = hit_rate(first_sentences(records), records)
    result = {"positives": len(records), "hits": hits, "rate": round(rate, 3),
              "baseline_first_sentence_hits": base_hits, "baseline_first_sentence_rate": round(base_rate, 3)}
    print(f"quote shows the gold evidence: {hits} of {len(records)} positives ({rate:.1%}); "
          f"first-sentence baseline: {base_hits} ({base_rate:.1%})")
    return result


if __name__ == "__main__":
    main()
