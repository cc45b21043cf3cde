"""Per-page extraction figures on the real gold pages: token recall, precision, date; ours vs plain trafilatura."""

from __future__ import annotations

import json

import trafilatura

from pipeline.ingest.extract import build_article
from tests.conftest import CORPUS
from tests.test_extract import token_recall_precision


def main() -> list[dict]:
    """Return one row per gold page with both extractors' figures."""
    rows = []
    for gold in json.loads((CORPUS / "pages" / "gold.json").read_text(encoding="utf-8")):
        html = (CORPUS / "pages" / gold["file"]).read_bytes()
        url = gold["url"] if gold["url"] not in (None, "None") else None
        plain = trafilatura.extract(html.decode("utf-8", "replace"), include_comments=False) or ""
        ours = build_article(html, url or "http://example.invalid/", tz=gold["timezone"], min_chars=0)
        pr, pp = token_recall_precision(gold["expected_text"], plain)
        r, p = token_recall_precision(gold["expected_text"], ours.text)
        expected = gold["expected_date_local"] if gold["expected_date_local"] not in (None, "None") else None
        rows.append({"page": gold["file"][:48], "plain_R": round(pr, 2), "plain_P": round(pp, 2), "R": round(r, 2),
                     "P": round(p, 2), "date": (ours.date or "")[:10], "gold_date": (expected or "none")[:10],
                     "method": ours.method})
    return rows


if __name__ == "__main__":
    print("| page | trafilatura R | P | radar R | P | date | gold date | method |\n|---|---|---|---|---|---|---|---|")
    for row in main():
        print(f"| {row['page']} | {row['plain_R']} | {row['plain_P']} | {row['R']} | {row['P']} | {row['date']} | "
              f"{row['gold_date']} | {row['method']} |")
