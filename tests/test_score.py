"""`radar score` and `radar eval` through the real entry point with the shipped model."""

from __future__ import annotations

import json

from sqlalchemy import insert, inspect, update

from pipeline.records import Article
from pipeline.store import Store, articles
from tests.cli_helpers import invoke
from tests.conftest import CORPUS, article_html, rss

ARTICLES = [
    {"id": "a1", "title": "Bewoners ontwerpen speeltuin",
     "text": "De gemeente Zuidhaven ontwerpt samen met buurtbewoners een nieuwe speeltuin in de wijk Oost. "
             "Tijdens drie werksessies denken ouders en kinderen mee over de toestellen en het groen. "
             "De wethouder belooft dat de ideeën van de bewoners de basis vormen voor het ontwerp."},
    {"id": "a2", "title": "Files op de A2", "text": "Op de A2 bij Utrecht staat een file van tien kilometer na een "
                                                    "ongeluk met twee auto's. De weg is deels afgesloten."},
]
FIELDS = {"id", "cocreation_score", "flagged", "sector", "sector_scores", "type", "type_scores", "evidence",
          "model_version"}


def test_score_writes_the_public_record_per_article(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in ARTICLES), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke("score", "--input", str(source), "--output", str(out))
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a1", "a2"]
    for row in rows:
        assert set(row) >= FIELDS and 0.0 <= row["cocreation_score"] <= 1.0
        assert abs(sum(row["sector_scores"].values()) - 1) < 1e-3
    assert rows[0]["flagged"] and not rows[1]["flagged"]
    assert rows[0]["cocreation_score"] > rows[1]["cocreation_score"]
    text = ARTICLES[0]["text"]
    assert rows[0]["evidence"] and all(text[e["start"]:e["end"]] == e["text"] for e in rows[0]["evidence"])


def test_score_reads_stdin_and_reports_bad_lines():
    lines = json.dumps(ARTICLES[1]) + "\n{kapot\n"
    result = invoke("score", input=lines)
    assert result.exit_code == 1 and "line 2" in result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["a2"]


def test_eval_reports_metrics_and_warns_about_training_texts(tmp_path):
    articles = [json.loads(line) for line in (CORPUS / "articles" / "dev.jsonl").open(encoding="utf-8")]
    labels = {json.loads(line)["id"]: json.loads(line) for line in (CORPUS / "labels" / "dev.jsonl").open()}
    chosen = [a for a in articles if a["text"].strip() and labels[a["id"]]["cocreation"]][:5] + \
        [a for a in articles if a["text"].strip() and not labels[a["id"]]["cocreation"]][:15]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(a) + "\n" for a in chosen))
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(labels[a["id"]]) + "\n" for a in chosen))
    result = invoke("eval", "--input", str(tmp_path / "a.jsonl"), "--labels", str(tmp_path / "l.jsonl"), "--json")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["overall"]["texts"] == 20 and metrics["overall"]["positives"] == 5
    assert metrics["seen_in_training"] == 20  # the shipped model trained on these: figures are optimistic
    assert metrics["sector"]["n"] == 5 and set(metrics["by_source"]) >= {"dpgmedia/partisan-news2019"}
    warned = invoke("eval", "--input", str(tmp_path / "a.jsonl"), "--labels", str(tmp_path / "l.jsonl"))
    assert "WARNING" in warned.stdout


# -- scoring stored articles: bounded pieces, and one bad article fails alone (issue 9 item 4) --

def _stored(tmp_path, texts: dict[str, str]) -> tuple[Store, dict[str, int]]:
    """Return a migrated store on a real SQLite file holding one article per (key, text)."""
    store = Store(f"sqlite:///{tmp_path / 'radar.db'}")
    store.migrate()
    ids = {key: store.save_article(Article(url=f"https://example.org/{key}", canonical_url=f"https://example.org/{key}",
                                           title=f"Artikel {key}", text=text, content_hash=key), run_id=None)
           for key, text in texts.items()}
    return store, ids


def _long_text(chars: int) -> str:
    paragraphs = [a["text"] for a in ARTICLES] + [a["title"] for a in ARTICLES]
    return "\n".join(paragraphs * (chars // len("\n".join(paragraphs)) + 1))[:chars]


def test_stored_text_longer_than_spacys_limit_is_scored_in_a_bounded_piece(tmp_path):
    from pipeline.detect.score import Scorer, score_stored_articles

    store, ids = _stored(tmp_path, {"lang": "Voorlopig kort.", "kort": ARTICLES[0]["text"]})
    huge = _long_text(2_600_000)
    with store.engine.begin() as conn:  # written past the store's cap, as an older version could have
        conn.execute(update(articles).where(articles.c.id == ids["lang"]).values(text=huge))
    assert len(store.articles()[0].text) == 2_600_000
    counts = score_stored_articles(store, Scorer.load(), run_id=None)
    assert counts["scored"] == 2 and counts.get("score_failed", 0) == 0
    assert {p.article_id for p in store.latest_predictions()} == set(ids.values())


def test_article_that_fails_in_scoring_is_recorded_skipped_and_not_retried(tmp_path, monkeypatch):
    from pipeline.detect.score import Scorer, score_stored_articles

    store, ids = _stored(tmp_path, {"a": ARTICLES[0]["text"], "slecht": ARTICLES[1]["text"], "c": ARTICLES[0]["text"]})
    scorer = Scorer.load()
    real_score, seen = scorer.score_records, []

    def score(records):
        seen.extend(r["id"] for r in records)
        if any(r["id"] == ids["slecht"] for r in records):
            raise ValueError("kan dit artikel niet lezen")
        return real_score(records)

    monkeypatch.setattr(scorer, "score_records", score)
    counts = score_stored_articles(store, scorer, run_id=None)
    assert counts == {"scored": 2, "flagged": counts["flagged"], "score_failed": 1}
    assert {p.article_id for p in store.latest_predictions()} == {ids["a"], ids["c"]}
    [failure] = store.scoring_failures()
    assert failure["article_id"] == ids["slecht"] and failure["model_version"] == scorer.model.version
    assert failure["reason"] == "ValueError: kan dit artikel niet lezen"

    seen.clear()
    assert score_stored_articles(store, scorer, run_id=None) == {"scored": 0, "flagged": 0, "score_failed": 0}
    assert seen == []  # the failed article is not tried again by this model version
    assert store.unscored_articles("another-model") != []  # a new model version tries it afresh


def test_nightly_report_counts_an_article_that_failed_in_scoring(server, make_settings, monkeypatch):
    from pipeline.runs.nightly import run_nightly
    from pipeline.detect.score import Scorer

    for i, article in enumerate(ARTICLES):
        server.page(f"/art/{i}.html", article_html(article["title"], article["text"] * 4), "text/html; charset=utf-8")
    server.page("/feed.xml", rss([{"title": a["title"], "link": server.url(f"/art/{i}.html")}
                                  for i, a in enumerate(ARTICLES)]), "application/rss+xml")
    real_score = Scorer.score_records

    def score(self, records):
        if any("A2" in r["title"] for r in records):
            raise RuntimeError("E088 of een andere fout")
        return real_score(self, records)

    monkeypatch.setattr(Scorer, "score_records", score)
    settings = make_settings([{"name": "krant", "url": server.url("/feed.xml")}], allow_private_addresses=True)
    report = run_nightly(settings)
    assert report.status == "ok" and report.articles_new == 2
    assert report.scoring["scored"] == 1 and report.scoring["score_failed"] == 1
    again = run_nightly(settings)
    assert again.scoring["scored"] == 0 and again.scoring["score_failed"] == 0


def test_radar_score_of_a_text_longer_than_spacys_limit_gives_its_record(tmp_path):
    source = tmp_path / "lang.jsonl"
    source.write_text(json.dumps({"id": "lang", "title": "Heel lang", "text": _long_text(1_200_000)}) + "\n",
                      encoding="utf-8")
    result = invoke("score", "--input", str(source))
    assert result.exit_code == 0, result.stderr
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["id"] == "lang" and 0.0 <= row["cocreation_score"] <= 1.0


def test_migration_adds_the_scoring_failures_table_to_an_older_database(tmp_path):
    from pipeline.store.migrations import MIGRATIONS, SCHEMA_VERSION, _migrate_to_6
    from pipeline.store.schema import schema_info

    store = Store(f"sqlite:///{tmp_path / 'oud.db'}")
    before = MIGRATIONS.index(_migrate_to_6)
    with store.engine.begin() as conn:
        for version in range(before):
            MIGRATIONS[version](conn)
            conn.execute(insert(schema_info).values(version=version + 1))
    assert "scoring_failures" not in inspect(store.engine).get_table_names()
    assert store.migrate() == SCHEMA_VERSION
    assert "scoring_failures" in inspect(store.engine).get_table_names()
    assert store.unscored_articles("m") == [] and store.scoring_failures() == []


def test_key_passage_never_shows_a_paragraph_break_as_a_key_sentence():
    from pipeline.detect.classify import Prediction
    from pipeline.detect.nlp import analyse
    from pipeline.detect.score import with_key_passage

    text = ("De gemeente Kerkwijde ontwerpt samen met bewoners het nieuwe park.\n\n \n\n"
            "De bewoners denken mee over de speelplekken. Zij kiezen ook de bomen.")
    analysis = analyse([("Park", text)])[0]
    assert any(s.start >= 0 and not text[s.start:s.end].strip() for s in analysis.sentences)  # the premise
    prediction = Prediction(cocreation_score=0.9, flagged=True, sector="overheid", sector_scores={}, type="ontwerp",
                            type_scores={}, key_passages=[(0, len(text))])
    items = [it for it in with_key_passage(analysis, prediction, text) if it["label"] == "sentence:cocreation"]
    assert items and all(it["text"].strip() for it in items)
    assert {it["text"] for it in items} >= {"De bewoners denken mee over de speelplekken."}
