"""Ingest benchmarks: extraction + dedupe throughput, and a nightly run of 50 feeds x 100 items.

Figures are ratios against a baseline measured in the same run (trafilatura.extract alone on the
same pages), because the machines are noisy. Run with `make bench`.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trafilatura

from pipeline.ingest.dedupe import NearDuplicateIndex, minhash_of
from pipeline.ingest.extract import build_article
from tests.conftest import CORPUS, article_html, corpus_articles, rss
from tests.httpserver import ScriptedServer

RADAR = str(Path(sys.executable).parent / "radar")


def real_pages() -> list[bytes]:
    """Return the real pages of ../shared/corpus/pages (articles and home pages)."""
    return [p.read_bytes() for p in sorted((CORPUS / "pages").iterdir()) if p.name != "gold.json"]


def demo_like_pages(count: int, seed: int = 7) -> list[bytes]:
    """Build `count` distinct article pages from shuffled sentences of real corpus texts."""
    rng = random.Random(seed)
    sentences = [s for art in corpus_articles(min_chars=800) for s in art["text"].split(". ") if len(s) > 40]
    pages = []
    for i in range(count):
        text = ". ".join(rng.sample(sentences, 25))
        pages.append(article_html(f"Artikel {i}: {sentences[i % len(sentences)][:60]}", text).encode("utf-8"))
    return pages


def _time_round(pages: list[bytes]) -> tuple[float, float, float]:
    """Return seconds of trafilatura.extract, of our extraction and of our dedupe, taking turns per page."""
    baseline = extraction = dedupe = 0.0
    index = NearDuplicateIndex(0.5)
    for number, page in enumerate(pages):
        started = time.process_time()
        trafilatura.extract(page.decode("utf-8", "replace"), include_comments=False)
        extracting = time.process_time()
        article = build_article(page, f"http://bench.test/{number}", min_chars=0)
        deduping = time.process_time()
        sig = minhash_of(article.text)
        if sig is not None and index.best_match(sig) is None:
            index.add(number, sig)
        ended = time.process_time()
        baseline, extraction, dedupe = (baseline + extracting - started, extraction + deduping - extracting,
                                        dedupe + ended - deduping)
    return baseline, extraction, dedupe


def throughput(pages: list[bytes], repeat: int = 1) -> dict:
    """Time trafilatura.extract alone and our extraction + dedupe on the same pages, `repeat` rounds.

    CPU time of this process, the two taking turns page by page, and the median round
    reported: other work on the shared machine then changes neither side's figure much.
    """
    _time_round(pages[:5])  # warm caches and lazy imports (dateparser)
    rounds = [_time_round(pages) for _ in range(repeat)]
    ratios = sorted((extraction + dedupe) / baseline for baseline, extraction, dedupe in rounds)
    baseline, extraction, dedupe = (statistics.median(side) for side in zip(*rounds, strict=True))
    n = len(pages)
    return {"pages": n, "rounds": repeat, "trafilatura_per_s": round(n / baseline, 1),
            "radar_per_s": round(n / (extraction + dedupe), 1),
            "time_ratio_radar_vs_trafilatura": round(statistics.median(ratios), 2),
            "time_ratio_range": [round(ratios[0], 2), round(ratios[-1], 2)],
            # the two parts of our time, each over trafilatura's: extraction alone, and the MinHash dedupe
            "extraction_vs_trafilatura": round(extraction / baseline, 2),
            "dedupe_vs_trafilatura": round(dedupe / baseline, 2)}


def extraction_ratios() -> dict:
    """Return the extraction + dedupe figures on both page sets (the real pages and 1,000 demo-like ones)."""
    return {"real_pages": throughput(real_pages(), repeat=7),
            "demo_like_1000": throughput(demo_like_pages(1000), repeat=3)}


def nightly_run(feeds: int = 50, items: int = 100, hosts: int = 10) -> dict:
    """Serve feeds x items from `hosts` loopback addresses and time a full `radar run` with pacing off."""
    pages = demo_like_pages(feeds * items, seed=11)
    # Each outlet is its own host in real life; 127.0.0.x are all loopback on Linux.
    servers = [ScriptedServer(f"127.0.0.{h + 1}") for h in range(hosts)]
    for server in servers:
        server.page("/robots.txt", "User-agent: *\nAllow: /\n", "text/plain")
    feed_urls = []
    for f in range(feeds):
        server = servers[f % hosts]
        entries = []
        for i in range(items):
            path = f"/f{f}/{i}.html"
            server.page(path, pages[f * items + i])
            entries.append({"title": f"Artikel {f}-{i}", "link": server.url(path)})
        server.page(f"/f{f}/feed.xml", rss(entries), "application/rss+xml")
        feed_urls.append(server.url(f"/f{f}/feed.xml"))
    for server in servers:
        server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            feeds_file = Path(tmp) / "feeds.toml"
            feeds_file.write_text("".join(f'[[feeds]]\nname="f{f}"\nurl="{url}"\noutlet="F{f}"\n'
                                          for f, url in enumerate(feed_urls)))
            config = Path(tmp) / "radar.toml"
            config.write_text(f'data_dir="{tmp}/local"\nfeeds_file="{feeds_file}"\nhost_delay=0\nprogress=false\n'
                              f"max_items_per_feed={items}\n")
            started = time.perf_counter()
            proc = subprocess.run([RADAR, "--config", str(config), "run", "--json"], capture_output=True, text=True)
            wall = time.perf_counter() - started
            report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {"error": proc.stderr[-500:]}
    finally:
        for server in servers:
            server.stop()
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"feeds": feeds, "items": feeds * items, "hosts": hosts, "wall_s": round(wall, 1),
            "articles_per_s": round(report.get("articles_new", 0) / wall, 1) if wall else None,
            "articles_new": report.get("articles_new"), "articles_duplicate": report.get("articles_duplicate"),
            "peak_rss_mib": round(peak_mib, 1), "exit_code": proc.returncode}


def main() -> dict:
    """Run the ingest benchmarks and return their figures."""
    return {**extraction_ratios(), "nightly_50x100": nightly_run()}


if __name__ == "__main__":
    # --extraction: only the extraction ratios (a minute or two), not the nightly run
    print(json.dumps(extraction_ratios() if "--extraction" in sys.argv[1:] else main(), indent=2))
