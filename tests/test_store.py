"""The store: capped texts, typed records, the cluster table and SQL-paged queue, migrations from older releases."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlalchemy import insert, inspect, select

from pipeline.text import cap_text
from pipeline.records import (
    MAX_TEXT_CHARS, Article, FinalLabel, Prediction, QueueFilters, ReviewEvent, StoredArticle,
)
from pipeline.store.migrations import CLUSTERS_SINCE, FLAGGED_ARTICLES_SINCE, MIGRATIONS, SCHEMA_VERSION, _migrate_to_4
from pipeline.store.schema import QUEUE_INDEXES, clusters, schema_info
from pipeline.store import Store
from tests.cli_helpers import invoke
from tests.conftest import corpus_articles


def test_radar_ingest_of_a_2_6_million_character_text_is_stored_capped(tmp_path):
    paragraphs = [a["text"].replace("\n", " ") for a in corpus_articles()[:20]]
    text = "\n".join(paragraphs * (2_600_000 // len("\n".join(paragraphs)) + 1))[:2_600_000].strip()
    jsonl = tmp_path / "groot.jsonl"
    jsonl.write_text(json.dumps({"id": "groot-1", "title": "Heel lang", "text": text}) + "\n", encoding="utf-8")
    config = tmp_path / "radar.toml"
    config.write_text(f'[radar]\ndata_dir = "{tmp_path / "local"}"\nprogress = false\n', encoding="utf-8")
    result = invoke("--config", str(config), "ingest", str(jsonl))
    assert result.exit_code == 0, result.stderr
    [row] = Store(f"sqlite:///{tmp_path / 'local' / 'radar.db'}").articles()
    assert row.text_truncated_from == len(text) and len(row.text) <= MAX_TEXT_CHARS
    assert text.startswith(row.text) and text[len(row.text)] == "\n"  # cut at a paragraph boundary


def test_cap_text_cuts_at_the_last_paragraph_break():
    text = "\n".join(["Eerste alinea van het stuk."] * 100)
    capped, original = cap_text(text, 1000)
    assert original == len(text) and len(capped) <= 1000
    assert capped.endswith("stuk.") and text.startswith(capped)
    assert cap_text("kort", 1000) == ("kort", None)


def test_cap_text_without_paragraphs_cuts_after_a_sentence_or_hard():
    sentences = "Dit is een zin. " * 200
    capped, _ = cap_text(sentences, 1000)
    assert capped.endswith("zin.") and len(capped) <= 1000
    assert cap_text("x" * 5000, 1000) == ("x" * 1000, 5000)


def test_migration_adds_the_cut_columns_to_an_older_database(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'oud.db'}")
    before = MIGRATIONS.index(_migrate_to_4)  # the schema version that lacks the columns
    with store.engine.begin() as conn:
        for version in range(before):
            MIGRATIONS[version](conn)
            conn.execute(insert(schema_info).values(version=version + 1))
        # Today's table definitions already hold the columns; an older database did not.
        conn.exec_driver_sql("ALTER TABLE articles DROP COLUMN text_truncated_from")
        conn.exec_driver_sql("ALTER TABLE items DROP COLUMN summary_truncated_from")
    assert store.schema_version() == before
    assert store.migrate() == SCHEMA_VERSION
    columns = {t: {c["name"] for c in inspect(store.engine).get_columns(t)} for t in ("articles", "items")}
    assert "text_truncated_from" in columns["articles"] and "summary_truncated_from" in columns["items"]


# -- schema 7: typed records, the cluster table, the review queue in SQL --------------------------------------
RELEASE_DUMP = Path(__file__).parent / "data" / "schema6_release.sql"
# Made by the release before schema 7 (its own Store and review events): six articles in four clusters,
# predictions of two model versions, agreeing, disputed, settled and undone reviews. Its final labels were:
RELEASE_FINAL = {1: ("decide", "bea", 1, "overheid", "ontwerp"), 3: ("settle", "lea", 1, "zorg", "beleid")}


def release_store(tmp_path) -> Store:
    """Return a store on a copy of the database the previous release made (schema 6), not migrated yet."""
    path = tmp_path / "release.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASE_DUMP.read_text(encoding="utf-8"))
    return Store(f"sqlite:///{path}")


def table_rows(store: Store, *tables: str) -> dict[str, list]:
    """Return every row of the given tables, ordered, to compare a database before and after a migration."""
    with store.engine.connect() as conn:
        return {t: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY 1")] for t in tables}


def test_a_database_of_the_previous_release_upgrades_and_keeps_its_data(tmp_path):
    store = release_store(tmp_path)
    assert store.schema_version() == CLUSTERS_SINCE - 1
    kept = ("articles", "duplicates", "predictions", "reviews", "signatures", "runs")
    before = table_rows(store, *kept)
    assert store.migrate() == SCHEMA_VERSION
    after = table_rows(store, *kept)
    # Schema 8 appends origin and provenance to articles; an old release's articles came from ingest or feeds.
    assert {row[-2:] for row in after["articles"]} == {("ingest", "")}
    after["articles"] = [row[:-2] for row in after["articles"]]
    # Schema 10 appends lesson and private to review events, schema 14 the chosen quote: none yet, nothing private.
    assert {row[-3:] for row in after["reviews"]} == {("", 0, "")}
    after["reviews"] = [row[:-3] for row in after["reviews"]]
    assert after == before
    final = {k: (v.action, v.analyst, v.cocreation, v.sector, v.type) for k, v in store.final_labels().items()}
    assert final == RELEASE_FINAL
    index_names = {ix["name"] for t in ("clusters", "reviews", "predictions", "articles")
                   for ix in inspect(store.engine).get_indexes(t)}
    assert {ix.name for ix in QUEUE_INDEXES} <= index_names
    # The cluster rows derived from the old data: a copy's flag counts, the newest model version decides.
    with store.engine.connect() as conn:
        rows = {r.cluster_id: (r.flagged, r.score, r.sector, r.disputed) for r in conn.execute(select(clusters))}
    # Cluster 3 was settled by lea: settled, it is no longer disputed (issue 11); 5 is disputed and unsettled.
    assert rows == {1: (1, 0.9, "overheid", 0), 3: (0, 0.3, "zorg", 0), 4: (0, 0.1, "overheid", 0),
                    5: (1, 0.8, "welzijn", 1)}


def test_a_schema_8_database_upgrades_although_later_columns_are_missing(tmp_path, monkeypatch):
    import pipeline.store.base as store_module  # the migrating code reads SCHEMA_VERSION there

    store = release_store(tmp_path)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 8)
    assert store.migrate() == 8
    monkeypatch.undo()
    with store.engine.begin() as conn:  # the tables as the schema-8 release made them
        for index in ("ix_clusters_flagged_articles", "ix_clusters_submitted_score"):
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
        for table, column in (("clusters", "flagged_articles"), ("clusters", "submitted"), ("reviews", "lesson"),
                              ("reviews", "private")):
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    # Schema 9 recounts flagged articles per cluster, reading reviews and clusters before schema 10's columns exist.
    assert store.migrate() == SCHEMA_VERSION
    assert store.review_progress("ann", "2000-01-01")["flagged_articles"] == 2
    final = {k: (v.action, v.analyst, v.cocreation, v.sector, v.type) for k, v in store.final_labels().items()}
    assert final == RELEASE_FINAL


def test_a_settled_cluster_that_an_older_release_kept_disputed_is_undisputed_after_the_upgrade(tmp_path, monkeypatch):
    import pipeline.store.base as store_module  # the migrating code reads SCHEMA_VERSION there

    store = release_store(tmp_path)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", FLAGGED_ARTICLES_SINCE - 1)
    store.migrate()
    monkeypatch.undo()
    with store.engine.begin() as conn:  # as the release before issue 11 left it: settled, still marked disputed
        conn.execute(clusters.update().where(clusters.c.cluster_id == 3).values(disputed=1))
    store.migrate()
    assert store.queue_size("cem", QueueFilters(status="disputed")) == 1  # only 5, unsettled
    with store.engine.connect() as conn:
        assert conn.execute(select(clusters.c.disputed).where(clusters.c.cluster_id == 3)).scalar() == 0


def test_the_queue_of_an_upgraded_database_filters_in_sql(tmp_path):
    store = release_store(tmp_path)
    store.migrate()

    def queue(analyst="cem", **filters):
        return [c.canonical_id for c in store.review_queue(analyst, QueueFilters(**filters), 0.5)]

    assert queue(status="all") == [1, 5]  # by score: the copy's 0.9 lifts cluster 1
    assert queue() == [1, 5] and queue("ann") == [] and queue("ann", status="mine") == [1, 5]
    assert queue(status="disputed") == [5]
    assert queue(status="all", outlet="Rivierstad Courant") == [1]  # the outlet of a copy finds its cluster
    assert queue(status="all", sector="welzijn") == [5]  # the copy's prediction when the head has none
    assert queue(status="all", date_to="2026-03-10") == [1]
    assert queue(status="all", date_from="2026-03-11") == [5]  # no publication date: its storage date counts
    assert store.queue_outlets() == ["Dagblad De Polder", "Rivierstad Courant", "Zorg Vandaag"]
    assert store.review_progress("ann", "2000-01-01") == {"flagged": 2, "flagged_articles": 2, "queued": 2,
                                                          "submitted": 0, "reviewed": 2, "remaining": 0, "skipped": 0,
                                                          "reviewed_today": 0}


def test_records_come_typed_with_json_decoded_and_still_read_like_rows(tmp_path):
    store = release_store(tmp_path)
    store.migrate()
    art = store.article(2)
    assert isinstance(art, StoredArticle) and art.categories == ("nieuws",) and art.cluster_id == 1
    assert art.outlet == "Rivierstad Courant" and art.canonical_id == 1
    pred = store.newest_prediction(3)
    assert isinstance(pred, Prediction) and pred.model_version == "m2" and pred.flagged is False
    assert pred.evidence[0]["label"] == "participant:bewoners" and pred.sector_scores == {"zorg": 0.9}
    [settle] = [e for e in store.review_history([3])[3] if e.action == "settle"]
    assert isinstance(settle, ReviewEvent) and set(settle.previous) == {"ann", "bea"}
    final = store.final_labels()[3]
    assert isinstance(final, FinalLabel) and final.label_source == "settled" and final.analysts == "ann, bea, lea"
    assert final.sector == "zorg"  # the settle event's label, read through the final label


def scored(article_id: int, score: float, model: str = "m1", sector: str = "zorg") -> dict:
    """Build a prediction row as the scoring stage hands it to the store."""
    return {"article_id": article_id, "model_version": model, "codebook_version": "1", "cocreation_score": score,
            "rule_score": score, "flagged": score >= 0.5, "sector": sector, "sector_scores": {}, "type": "ontwerp",
            "type_scores": {}, "evidence": []}


def stored(store: Store, key: str, outlet: str = "Krant", copy_of: int | None = None, date: str | None = None) -> int:
    """Save one article through the store's normal path and return its id."""
    art = Article(url=f"https://example.org/{key}", canonical_url=f"https://example.org/{key}", title=key,
                  text=f"Tekst {key}", outlet=outlet, date=date, method="test", source="test", external_id=key,
                  content_hash=f"hash-{key}")
    return store.save_article(art, run_id=None, duplicate=(copy_of, "near", 0.8) if copy_of else None)


def test_the_store_keeps_the_cluster_row_as_articles_predictions_and_reviews_are_written(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'radar.db'}")
    store.migrate()
    head = stored(store, "head", date="2026-03-01")
    copy = stored(store, "copy", "Andere Krant", copy_of=head)
    assert store.flagged_cluster_ids() == set()
    store.save_predictions([scored(copy, 0.8, sector="wonen")], run_id=None)
    cluster = store.cluster_of(copy)
    assert (cluster.canonical_id, cluster.flagged, cluster.score, cluster.prediction.article_id) == (head, True, 0.8, copy)
    assert [m.id for m in cluster.members] == [copy]
    store.save_predictions([scored(head, 0.2)], run_id=None)  # the head's own prediction is shown once it has one
    assert store.cluster_of(head).prediction.article_id == head and store.flagged_cluster_ids() == {head}
    store.save_predictions([scored(copy, 0.1, "m2")], run_id=None)  # a newer model unflags the copy
    assert store.flagged_cluster_ids() == set() and store.cluster_of(head).score == 0.2
    store.save_predictions([scored(copy, 0.9, "m3")], run_id=None)
    decide = {"cocreation": 1, "sector": "zorg", "type": "ontwerp", "borderline": 0, "note": ""}
    store.append_decision(head, "ann", decide, model_version="m3", codebook_version="1")
    store.append_decision(head, "bea", {**decide, "cocreation": 0, "sector": None, "type": None},
                          model_version="m3", codebook_version="1")
    disputed = QueueFilters(status="disputed")
    assert [c.canonical_id for c in store.review_queue("cem", disputed, 0.5)] == [head]
    assert store.append_undo("bea", "1").article_id == head  # bea takes hers back: no dispute left
    assert store.review_queue("cem", disputed, 0.5) == []


def test_queue_pages_orders_and_places_agree_with_sorting_everything(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'radar.db'}")
    store.migrate()
    ids = [stored(store, f"a{i}", date=f"2026-03-{1 + i % 9:02d}") for i in range(23)]
    scores = {a: round(0.5 + ((a * 37) % 23) / 50, 2) for a in ids}  # ties included
    store.save_predictions([scored(a, s) for a, s in scores.items()], run_id=None)
    dates = {a: f"2026-03-{1 + i % 9:02d}" for i, a in enumerate(ids)}
    expected = {"score": sorted(ids, key=lambda a: (scores[a], a), reverse=True),
                "newest": sorted(ids, key=lambda a: (dates[a], a), reverse=True),
                "uncertain": sorted(ids, key=lambda a: (abs(scores[a] - 0.7), a))}
    for order, want in expected.items():
        filters = QueueFilters(order=order)
        pages = [store.review_queue("ann", filters, 0.7, limit=5, offset=o) for o in range(0, 25, 5)]
        assert [c.canonical_id for page in pages for c in page] == want, order
        for at in (0, 7, 22):
            place = store.queue_place("ann", filters, 0.7, want[at])
            assert place.prev_id == (want[at - 1] if at else None)
            assert place.next_id == (want[at + 1] if at + 1 < len(want) else None)
            assert place.position == f"{at + 1} of 23"
    assert store.queue_size("ann", QueueFilters()) == 23


def test_origin_and_provenance_are_stored_exported_and_filter_the_dataset(tmp_path):
    from pipeline.research.dataset import load_dataset
    from pipeline.research.export import iter_export_rows

    path = tmp_path / "radar.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    from_feed = Article(url="https://example.org/a", canonical_url="https://example.org/a", title="a", text="Tekst a",
                        method="trafilatura", content_hash="hash-a")
    warc = Article(url="https://example.org/b", canonical_url="https://example.org/b", title="b", text="Tekst b",
                   method="trafilatura", source="warc", external_id="b", content_hash="hash-b", origin="backfill",
                   provenance="<urn:uuid:1234>")
    ids = [store.save_article(from_feed, run_id=None), store.save_article(warc, run_id=None),
           stored(store, "c")]
    assert [(store.article(i).origin, store.article(i).provenance) for i in ids] == [
        ("feed", ""), ("backfill", "<urn:uuid:1234>"), ("ingest", "")]
    exported = {row["article_id"]: (row["origin"], row["provenance"]) for row in iter_export_rows(store, "all")}
    assert exported[ids[1]] == ("backfill", "<urn:uuid:1234>") and exported[ids[2]] == ("ingest", "")
    store.close()
    assert load_dataset(path, origin="backfill")["article_id"].tolist() == [ids[1]]



def test_a_deleted_submissions_id_is_never_given_to_the_next_one(tmp_path, monkeypatch):
    # Issue 21, item 18: SQLite reuses the highest rowid after a delete unless the table has AUTOINCREMENT.
    import pipeline.store.base as store_module  # the migrating code reads SCHEMA_VERSION there

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 13)
    store = Store(f"sqlite:///{tmp_path / 'radar.db'}")
    store.migrate()
    kept = store.add_submission("https://example.nl/a", "eerste", "", "", "h")
    store.close()
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 14)  # the upgrade rebuilds the table, rows and ids kept
    store = Store(f"sqlite:///{tmp_path / 'radar.db'}")
    store.migrate()
    assert [s.id for s in store.list_submissions()] == [kept]
    gone = store.add_submission("https://example.nl/b", "tweede", "", "", "h")
    assert store.delete_submission(gone)
    assert store.add_submission("https://example.nl/c", "derde", "", "", "h") not in (kept, gone)
    assert {s.note for s in store.list_submissions()} == {"eerste", "derde"}
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.migrate()
    first = fresh.add_submission("https://example.nl/a", "", "", "", "h")
    fresh.delete_submission(first)
    assert fresh.add_submission("https://example.nl/b", "", "", "", "h") != first
    store.close()
    fresh.close()
