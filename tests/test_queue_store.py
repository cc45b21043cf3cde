"""The queue in the store: full-text search (SQLite FTS5, PostgreSQL), skip for now, bulk undo, story counts, export
by filter. Every store test runs on a real SQLite file and on a real, throw-away PostgreSQL cluster."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, insert, select, text

from pipeline.research.export import export_rows
from pipeline.records import QueueFilters
from pipeline.review.events import Label, record_decision
from pipeline.store.migrations import FLAGGED_ARTICLES_SINCE, MIGRATIONS, SCHEMA_VERSION
from pipeline.store.schema import schema_info
from pipeline.store import Store, reviews, skips
from tests.conftest import fresh_database
from tests.review_scenario import add_article, fill_store
from tests.test_store import release_store
from tests.test_store_postgres import postgres_url  # noqa: F401  (the throw-away PostgreSQL cluster fixture)

_numbers = itertools.count()


def _fresh_postgres_database(server_url: str) -> str:
    # One cluster per module, one fresh database per test: no test sees another's rows.
    return fresh_database(server_url, f"queue_{next(_numbers)}")


# The PostgreSQL case reaches the cluster through getfixturevalue, so it carries the postgres mark itself.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """An empty database: a SQLite file, or a fresh database on the PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'radar.db'}"
    return _fresh_postgres_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def scenario(database_url):
    """A migrated store with the review scenario (park + its copy, care, xss, road); yields (store, ids)."""
    store = Store(database_url)
    store.migrate()
    yield store, fill_store(store)
    store.close()


def queue(store: Store, analyst: str = "ann", **filters) -> list[int]:
    """Return the canonical ids of the queue for these filters, in queue order."""
    return [c.canonical_id for c in store.review_queue(analyst, QueueFilters(**filters), 0.5)]


def test_search_finds_words_of_the_title_and_text_of_any_copy(scenario):
    store, ids = scenario
    assert queue(store, search="moestuin") == [ids["park"]]  # in the text
    assert queue(store, search="ZORGPAD") == [ids["care"]]  # in the title and text, any case
    assert queue(store, search="krijgt") == [ids["park"]]  # only the copy's title has it: its cluster is found
    assert queue(store, search="zorg") == [ids["care"]]  # a word is a prefix: Dutch compounds
    assert queue(store, search="bewoners park") == [ids["park"]]  # every word must be there
    assert queue(store, search="park reuma") == []
    assert queue(store, search="dijkweg") == []  # in the text of an article that is not flagged


def test_search_combines_with_the_other_filters_and_pages_in_sql(scenario):
    store, ids = scenario
    both = [ids["park"], ids["xss"]]  # both say "Bewoners ... samen met de gemeente"; by score
    assert queue(store, search="bewoners gemeente") == both
    assert queue(store, search="bewoners", outlet="Rivierstad Courant") == [ids["park"]]
    assert queue(store, search="bewoners", date_to="2026-03-05") == [ids["xss"]]
    assert queue(store, search="bewoners", sector="zorg") == []
    assert [c.canonical_id for c in store.review_queue("ann", QueueFilters(search="bewoners"), 0.5,
                                                       limit=1, offset=1)] == [ids["xss"]]
    assert store.queue_size("ann", QueueFilters(search="bewoners")) == 2
    place = store.queue_place("ann", QueueFilters(search="bewoners"), 0.5, ids["park"])
    assert (place.prev_id, place.next_id, place.position) == (None, ids["xss"], "1 of 2")
    record_decision(store, ids["park"], "ann", Label(False), model_version=None, codebook_version="1")
    assert queue(store, search="bewoners") == [ids["xss"]]  # status "to review" still applies
    assert queue(store, search="bewoners", status="mine") == [ids["park"]]


@pytest.mark.parametrize("typed, found", [
    ('"', ""), ('park"', "park"), ("NEAR(park", "near"), ("park*", "park"), ("'; DROP TABLE articles; --", "drop"),
    ("zorg:* & !", "care"), ("^park", "park"), ("-park", "park"), ("(", ""), ("!!!", ""), ("_", ""),
    ("park OR reuma", ""),  # OR is a word here, not an operator: no article holds it
])
def test_search_reads_any_input_as_words_never_as_query_syntax(scenario, typed, found):
    store, ids = scenario
    expected = {"park": [ids["park"]], "care": [ids["care"]]}.get(found, [])
    assert queue(store, search=typed, status="all") == expected
    assert store.queue_size("ann", QueueFilters(search=typed)) == len(expected)


def test_articles_stored_after_the_migration_are_searchable_at_once(scenario):
    store, ids = scenario
    new = add_article(store, "late", "Buurtbewoners bouwen zelf een tiny house", "Zij bouwen het samen.",
                      "Dagblad De Polder", "2026-03-20T09:00:00+01:00")
    store.save_predictions([_flagged(new)], run_id=None)
    assert queue(store, search="tiny house") == [new]


def _flagged(article_id: int) -> dict:
    return {"article_id": article_id, "model_version": "test-model-2", "codebook_version": "1",
            "cocreation_score": 0.8, "rule_score": 0.8, "flagged": True, "sector": "wonen", "sector_scores": {},
            "type": "zelfbouw", "type_scores": {}, "evidence": []}


def test_migration_9_indexes_the_articles_of_an_upgraded_sqlite_database(tmp_path):
    store = release_store(tmp_path)  # made by the release before schema 7: no search index, no flagged counts
    assert store.migrate() == SCHEMA_VERSION
    assert queue(store, "cem", search="park") == [1]
    assert queue(store, "cem", search="copy") == [1, 5]  # only their copies (articles 2 and 6) say "copy"
    assert store.flagged_counts() == (2, 2)  # clusters 1 and 5, each through one flagged article


def test_migration_9_indexes_the_articles_of_an_upgraded_postgres_database(postgres_url):  # noqa: F811
    url = _fresh_postgres_database(postgres_url)
    store = Store(url)
    with store.engine.begin() as conn:  # a database of schema 8, before the search index
        for version in range(FLAGGED_ARTICLES_SINCE - 1):
            MIGRATIONS[version](conn)
            conn.execute(insert(schema_info).values(version=version + 1))
    ids = fill_store(store)
    assert store.migrate() == SCHEMA_VERSION
    assert queue(store, search="moestuin") == [ids["park"]]
    assert store.flagged_counts() == (3, 4)
    with store.engine.connect() as conn:  # the search is spelt so that the planner can use the GIN index
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT a.id FROM articles a WHERE to_tsvector('dutch', a.title || ' ' || a.text) "
            "@@ to_tsquery('dutch', 'moestuin:*')")).scalars())
    assert "ix_articles_search" in plan
    store.close()


def test_skip_parks_a_cluster_for_one_analyst_without_a_review_event(scenario):
    store, ids = scenario
    events_before = _count(store, reviews)
    assert store.skip_cluster("ann", ids["park"]) is True
    assert store.skip_cluster("ann", ids["park"]) is False  # parked once
    assert ids["park"] not in queue(store) and queue(store, status="skipped") == [ids["park"]]
    assert ids["park"] in queue(store, "bea")  # another analyst's queue is untouched
    assert store.review_progress("ann", "2000-01-01")["skipped"] == 1
    assert _count(store, reviews) == events_before and store.current_reviews() == []
    assert store.unskip_cluster("ann", ids["park"]) is True and store.unskip_cluster("ann", ids["park"]) is False
    assert queue(store)[0] == ids["park"] and queue(store, status="skipped") == []
    assert _count(store, skips) == 0


def test_a_skipped_cluster_that_is_decided_leaves_the_skipped_list(scenario):
    store, ids = scenario
    store.skip_cluster("ann", ids["care"])
    record_decision(store, ids["care"], "ann", Label(False), model_version=None, codebook_version="1")
    assert queue(store, status="skipped") == [] and queue(store, status="mine") == [ids["care"]]


def _count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_undo_events_restores_every_article_of_a_bulk_no(scenario):
    store, ids = scenario
    record_decision(store, ids["care"], "ann", Label(True, "zorg", "ontwerp"), model_version=None,
                    codebook_version="1")
    targets = [ids["park"], ids["care"], ids["xss"]]
    events = [record_decision(store, i, "ann", Label(False), model_version=None, codebook_version="1")
              for i in targets]
    assert {r.article_id: r.cocreation for r in store.current_reviews()} == dict.fromkeys(targets, 0)
    assert sorted(store.undo_events("ann", events, "1")) == sorted(targets)
    current = {r.article_id: (r.cocreation, r.sector) for r in store.current_reviews()}
    assert current == {ids["care"]: (1, "zorg")}  # care's yes from before the bulk is back, the rest unreviewed
    assert store.undo_events("ann", events, "1") == []  # undone once


def test_undo_events_leaves_a_decision_changed_since_and_other_analysts_alone(scenario):
    store, ids = scenario
    events = [record_decision(store, i, "ann", Label(False), model_version=None, codebook_version="1")
              for i in (ids["park"], ids["care"])]
    record_decision(store, ids["care"], "ann", Label(True, "zorg", "beleid"), model_version=None,
                    codebook_version="1")
    assert store.undo_events("bea", events, "1") == []  # not bea's decisions
    assert store.undo_events("ann", events, "1") == [ids["park"]]
    assert [(r.article_id, r.cocreation) for r in store.current_reviews()] == [(ids["care"], 1)]


def test_flagged_counts_are_stories_and_their_flagged_articles(scenario):
    store, ids = scenario
    assert store.flagged_counts() == (3, 4)  # park (with its flagged copy), care, xss
    progress = store.review_progress("ann", "2000-01-01")
    assert (progress["flagged"], progress["flagged_articles"]) == (3, 4)
    run = store.start_run()
    store.save_predictions([_flagged(ids["road"]), _flagged(ids["park_copy"])], run_id=run)
    assert store.flagged_counts(run) == (2, 2) and store.flagged_counts() == (4, 5)


def test_export_of_a_queue_filter_has_the_articles_of_its_clusters_only(scenario):
    store, ids = scenario
    selected = store.queue_cluster_ids("ann", QueueFilters(search="polderveen"))
    assert selected == [ids["park"]]
    rows = export_rows(store, "all", cluster_ids=selected)
    assert sorted(r["article_id"] for r in rows) == sorted([ids["park"], ids["park_copy"]])
    assert {r["cluster_id"] for r in rows} == {ids["park"]}
    assert export_rows(store, "all", cluster_ids=[]) == []
    assert len(export_rows(store, "all")) == 5  # without a selection: every article, as before
