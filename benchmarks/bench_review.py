"""Review-app benchmark: queue, article, decision and agreement latency, and `radar export`, at N articles.

    python -m benchmarks.bench_review [--articles N] [--database-url URL] [--requests R]

It fills a fresh database (a temporary SQLite file unless --database-url names an empty one) with N articles,
one prediction each (5 % flagged), near-duplicate clusters (10 % of the articles are copies), and reviews from
two analysts on 10 % of the flagged clusters (a fifth of them disputed). The fill uses bulk inserts and then
Store.rebuild_clusters, so a million articles take minutes. It then drives the real app in-process through
Flask's test client and prints median and p95 latency per page, the export's time and peak RSS, as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from pipeline.review.app import create_app
from pipeline.settings import load_settings
from pipeline.store import Store, articles, duplicates, now_iso, predictions, reviews

SECTORS = ("overheid", "zorg", "onderwijs", "welzijn", "wonen", "goede_doelen", "cultuur", "overig", "bedrijf")
TYPES = ("beleid", "ontwerp", "uitvoering", "zelfbouw", "onderzoek")
OUTLETS = tuple(f"Dagblad {n}" for n in ("De Polder", "Rivierstad", "Het Noorden", "Zuidkust", "De Vallei",
                                         "Oost", "West", "Centrum", "Randstad", "Heuvelland"))
SENTENCES = ("Bewoners ontwerpen samen met de gemeente een nieuw park aan de rand van de wijk. ",
             "Op drie avonden tekenden zij mee aan paden, speelplekken en een moestuin. ",
             "De wethouder noemt het resultaat een plan van de buurt zelf. ",
             "Patiënten denken mee over het nieuwe zorgpad van het ziekenhuis. ",
             "De Dijkweg is vijf weken dicht voor groot onderhoud. ")
CHUNK = 20_000
THRESHOLD = 0.5  # no model card in the bench's model dir: the app centres 'most uncertain' on 0.5


def article_text(i: int) -> str:
    """Return a short Dutch text that differs per article."""
    rng = random.Random(i)
    return f"Bericht {i}. " + "".join(rng.choice(SENTENCES) for _ in range(4))


def fill(store: Store, n: int, seed: int = 7) -> dict:
    """Bulk-fill the store with n articles, predictions, duplicate links and reviews; return what was made."""
    rng = random.Random(seed)
    flagged_heads: list[int] = []
    started = time.perf_counter()
    with store.engine.begin() as conn:
        for start in range(1, n + 1, CHUNK):
            ids = range(start, min(start + CHUNK, n + 1))
            copies = {i: rng.randrange(1, i) for i in ids if i > 10 and rng.random() < 0.10}
            copies = {i: c for i, c in copies.items() if c not in copies}  # heads only
            conn.execute(insert(articles), [_article(i) for i in ids])
            if copies:
                conn.execute(insert(duplicates), [dict(article_id=i, canonical_id=_head(conn, c), kind="near",
                                                       similarity=0.9) for i, c in copies.items()])
            preds = [_prediction(i, rng) for i in ids]
            conn.execute(insert(predictions), preds)
            flagged_heads += [p["article_id"] for p in preds if p["flagged"] and p["article_id"] not in copies]
    made = {"articles": n, "fill_s": round(time.perf_counter() - started, 1)}
    made["reviewed_clusters"] = _fill_reviews(store, rng.sample(flagged_heads, len(flagged_heads) // 10), rng)
    started = time.perf_counter()
    made["clusters"] = store.rebuild_clusters()
    made["rebuild_clusters_s"] = round(time.perf_counter() - started, 1)
    made["flagged_clusters"] = len(store.flagged_cluster_ids())
    if store.engine.dialect.name == "postgresql":
        # Autovacuum vacuums and analyses a table minutes after a bulk load; until then the planner guesses,
        # index-only scans visit the heap and autovacuum competes for the CPU. Do it now, as a served database
        # would have had it done, so the figures are of the steady state and not of that first quarter hour.
        started = time.perf_counter()
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
        made["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
    return made


def _head(conn, article_id: int) -> int:
    # A copy of a copy joins its head's cluster, as dedupe does.
    found = conn.execute(duplicates.select().where(duplicates.c.article_id == article_id)).first()
    return found.canonical_id if found else article_id


def _article(i: int) -> dict:
    day = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T09:00:00+01:00"
    return dict(id=i, source="bench", external_id=str(i), url=f"https://example.org/{i}",
                canonical_url=f"https://example.org/{i}", outlet=OUTLETS[i % len(OUTLETS)], title=f"Artikel {i}",
                author="", published=day, sitename="", categories="[]", language="nl", text=article_text(i),
                content_hash=f"{i:064x}", method="bench", created_at=now_iso())


def _prediction(i: int, rng: random.Random) -> dict:
    flagged = rng.random() < 0.05
    score = rng.uniform(THRESHOLD, 1.0) if flagged else rng.uniform(0.0, THRESHOLD - 0.01)
    text = article_text(i)
    start = text.index("Bewoners") if "Bewoners" in text else 0
    evidence = [{"text": text[start:start + 8], "start": start, "end": start + 8, "label": "participant:bewoners",
                 "weight": 1.0}]
    return dict(article_id=i, model_version="bench-1", codebook_version="1", cocreation_score=score,
                rule_score=score, flagged=int(flagged), sector=rng.choice(SECTORS), sector_scores="{}",
                type=rng.choice(TYPES), type_scores="{}", evidence=json.dumps(evidence), created_at=now_iso())


def _fill_reviews(store: Store, heads: list[int], rng: random.Random) -> int:
    rows = []
    for article_id in heads:
        first = (1, rng.choice(SECTORS), rng.choice(TYPES))
        second = first if rng.random() < 0.8 else (0, None, None)  # a fifth disputed
        for analyst, (cocreation, sector, type_) in (("ann", first), ("bea", second)):
            rows.append(dict(article_id=article_id, analyst=analyst, action="decide", cocreation=cocreation,
                             sector=sector, type=type_, borderline=0, note="", previous="{}",
                             model_version="bench-1", codebook_version="1", created_at=now_iso()))
    with store.engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            conn.execute(insert(reviews), rows[start:start + CHUNK])
    return len(heads)


def timed(call, repeat: int) -> dict:
    """Return median and p95 latency in ms of `repeat` calls (after two warm-up calls)."""
    for _ in range(2):
        call(0)
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        call(i + 2)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1)}


def measure_app(settings, store: Store, repeat: int, seed: int = 11) -> dict:
    """Drive the real app through Flask's test client and time every page."""
    app = create_app(settings, store)
    app.config["WTF_CSRF_ENABLED"] = False  # the bench posts forms directly; CSRF is tested elsewhere
    client = app.test_client()
    flagged = sorted(store.flagged_cluster_ids())
    rng = random.Random(seed)
    todo = rng.sample(flagged, min(len(flagged), repeat + 2))

    def get(path: str):
        def call(_i: int):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
        return call

    def decide(i: int):
        answer = client.post(f"/article/{todo[i]}/decide", data={"cocreation": "0"})
        assert answer.status_code == 302, answer.status_code

    figures = {f"queue_{order}": timed(get(f"/?order={order}"), repeat) for order in ("score", "uncertain", "newest")}
    figures["queue_filter_sector"] = timed(get("/?sector=zorg"), repeat)
    figures["queue_status_all"] = timed(get("/?status=all&order=newest"), repeat)
    # The full-text search (schema 9): a common word, a rarer one, and one combined with another filter.
    figures["queue_search_common"] = timed(get("/?search=bewoners&status=all"), repeat)
    figures["queue_search_rare"] = timed(get("/?search=bericht+4242&status=all"), repeat)  # "Bericht 4242."
    figures["queue_search_sector"] = timed(get("/?search=dijkweg&sector=zorg"), repeat)
    figures["queue_skipped"] = timed(get("/?status=skipped"), repeat)
    figures["article"] = timed(lambda i: get(f"/article/{flagged[rng.randrange(len(flagged))]}")(i), repeat)
    figures["decision"] = timed(decide, repeat)
    figures["agreement"] = timed(get("/agreement"), max(5, repeat // 4))
    return figures


# The export runs in a fresh interpreter through the real CLI and reports its own peak RSS (VmHWM). The
# rusage of a child is no use here: Linux carries the parent's high-water mark across fork and exec.
EXPORT_CHILD = """
import sys
from pipeline.cli import app
try:
    app(["--config", sys.argv[1], "export", "--status", "all", "-o", sys.argv[2]], standalone_mode=False)
finally:
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print("peak_kb", peak.split()[1], file=sys.stderr)
"""


def measure_export(database_url: str, workdir: Path) -> dict:
    """Time `radar export --format jsonl --status all` in a fresh process and report its peak RSS."""
    config = workdir / "radar.toml"
    config.write_text(f'[radar]\ndata_dir = "{workdir}"\ndatabase_url = "{database_url}"\nprogress = false\n',
                      encoding="utf-8")
    output = workdir / "export.jsonl"
    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", EXPORT_CHILD, str(config), str(output)],
                           capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peaks = [line.split()[1] for line in child.stderr.splitlines() if line.startswith("peak_kb ")]
    if child.returncode != 0 or not peaks:
        raise SystemExit(f"radar export failed: {child.stderr}")
    return {"export_s": round(seconds, 1), "export_peak_rss_mb": round(int(peaks[-1]) / 1024),
            "export_mb": round(output.stat().st_size / 2**20)}


def main(argv: list[str] | None = None) -> dict:
    """Fill a fresh database, measure, print and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database (default: SQLite file)")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per page")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        workdir = Path(tmp)
        url = args.database_url or f"sqlite:///{workdir / 'radar.db'}"
        settings = load_settings(None, data_dir=workdir, database_url=url, analyst="ann",
                                 model_dir=workdir / "no-model", progress=False)
        store = Store(url)
        store.migrate()
        result = {"backend": store.engine.dialect.name, **fill(store, args.articles)}
        result.update(measure_app(settings, store, args.requests))
        store.close()
        result.update(measure_export(url, workdir))
    result["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
