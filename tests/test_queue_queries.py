"""The queue page reads in a fixed number of SQL statements, whatever the number of rows it shows (issue item:
its template asked the store once per row). Counted on a real SQLite store with SQLAlchemy's cursor events."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import event

from pipeline.review.app import create_app
from pipeline.review.events import Label, record_decision
from pipeline.store import Store
from tests.conftest import fresh_database
from tests.review_scenario import CARE_TEXT, PARK_TEXT, add_article, evidence, prediction
from tests.test_store_postgres import postgres_url  # noqa: F401  (the throw-away PostgreSQL cluster fixture)

ROW = re.compile(r'<tr class="queue-row[^"]*" data-id="(\d+)"')
ROW_HTML = re.compile(r'<tr class="queue-row[^"]*" data-id="(\d+)".*?</tr>', re.S)
MAX_QUEUE_QUERIES = 16  # the rows, their texts, decisions, skips, progress and the outlet filter: a fixed handful


@dataclass(frozen=True)
class Queue:
    """A filled queue: its stories' ids, those a reader sent in, those ann parked and those only bob decided."""

    ids: list[int]
    submitted: list[int]
    skipped: list[int]
    decided_by_bob: list[int]


def fill_queue(store: Store, size: int) -> Queue:
    """Store `size` flagged stories, each from its own outlet, with a copy, a reader's mark, another analyst's
    decision or a skip on some of them: every kind of per-row detail the queue page shows."""
    spans = evidence(PARK_TEXT, [(PARK_TEXT.split("\n")[0], "sentence:cocreation", 0.9)])
    ids = [add_article(store, f"story-{n}", f"Verhaal {n}", PARK_TEXT if n % 2 else CARE_TEXT, f"Krant {n}",
                       f"2026-03-{1 + n % 28:02d}T09:00:00+01:00") for n in range(size)]
    copies = [add_article(store, f"copy-{n}", f"Kopie {n}", PARK_TEXT, f"Kopieblad {n}",
                          "2026-03-02T10:00:00+01:00", duplicate_of=ids[n]) for n in range(0, size, 5)]
    store.save_predictions([prediction(i, 0.5 + (n % 40) / 100, "overheid", "ontwerp", spans if n % 2 else [])
                            for n, i in enumerate([*ids, *copies])], run_id=None)
    queue = Queue(ids, ids[::7], ids[3::9], ids[1::6])
    for cluster_id in queue.submitted:
        store.finish_submission(store.add_submission(f"https://example.org/sent-{cluster_id}", "note"), "joined",
                                article_id=cluster_id)
    for cluster_id in queue.skipped:
        store.skip_cluster("ann", cluster_id)
    for cluster_id in queue.decided_by_bob:  # blind review: ann, who did not decide these, must not see bob's label
        record_decision(store, cluster_id, "bob", Label(True, "overheid", "ontwerp"), model_version=None,
                        codebook_version="1")
    return queue


@contextmanager
def counted_statements(store: Store):
    """Collect every SQL statement the store's engine sends while the block runs."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def queue_statements(make_settings, tmp_path, size: int, query: str) -> tuple[list[str], str, Queue]:
    """GET a queue page of a fresh store with `size` stories; return the SQL it sent, the page and the stories."""
    settings = make_settings(analyst="ann", data_dir=tmp_path / f"store-{size}")
    store = Store(settings.effective_database_url)
    try:
        store.migrate()
        queue = fill_queue(store, size)
        client = create_app(settings, store).test_client()
        client.get("/")  # not counted: what only an app's first request may do (nothing today)
        with counted_statements(store) as statements:
            response = client.get(query)
        assert response.status_code == 200
        return statements, response.get_data(as_text=True), queue
    finally:
        store.close()


def row_html(page: str) -> dict[int, str]:
    """Return each queue row's HTML by its story id."""
    return {int(m.group(1)): m.group(0) for m in ROW_HTML.finditer(page)}


@pytest.mark.parametrize("query", ["/?status=all", "/?status=all&origin=submission", "/?status=all&order=uncertain",
                                   "/?status=todo&order=newest"])
def test_the_queue_page_reads_in_the_same_few_queries_for_10_and_40_rows(make_settings, tmp_path, query):
    small, small_page, _ = queue_statements(make_settings, tmp_path, 10, query)
    large, large_page, _ = queue_statements(make_settings, tmp_path, 40, query)
    assert len(ROW.findall(small_page)) < len(ROW.findall(large_page))  # the larger store shows more rows
    assert len(small) == len(large), "the queue page asks the store per row:\n" + "\n".join(large)
    assert len(large) <= MAX_QUEUE_QUERIES, "\n".join(large)


def test_the_batched_page_still_shows_every_rows_marks_and_keeps_review_blind(make_settings, tmp_path):
    _statements, page, queue = queue_statements(make_settings, tmp_path, 40, "/?status=all")
    rows = row_html(page)
    assert sorted(rows) == sorted(queue.ids)  # the whole queue on its one page
    assert sorted(i for i, html in rows.items() if "ingezonden" in html) == sorted(queue.submitted)
    assert sorted(i for i, html in rows.items() if 'class="link unskip"' in html) == sorted(queue.skipped)
    assert "bob:" not in page  # ann decided none of bob's stories: his labels stay hidden
    assert all(f"<option>Krant {n}</option>" in page for n in range(40))  # every outlet in the filter
    assert "<option>Kopieblad 35</option>" in page  # a copy's outlet too


# The PostgreSQL case reaches the cluster through getfixturevalue, so it carries the postgres mark itself.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """An empty database: a SQLite file, or a fresh database on the throw-away PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'radar.db'}"
    return fresh_database(request.getfixturevalue("postgres_url"), f"queue_queries_{tmp_path.name[-12:]}")


def test_outlets_and_marks_are_read_in_one_statement_each_on_both_databases(database_url):
    store = Store(database_url)
    try:
        store.migrate()
        queue = fill_queue(store, 12)
        add_article(store, "unflagged", "Geen verhaal", CARE_TEXT, "Stille Krant", "2026-03-05T09:00:00+01:00")
        with counted_statements(store) as statements:
            outlets = store.queue_outlets()
            marks = store.queue_marks("ann", queue.ids)
        assert len(statements) == 2
        assert outlets == sorted([f"Krant {n}" for n in range(12)] + [f"Kopieblad {n}" for n in range(0, 12, 5)])
        assert marks.submitted == frozenset(queue.submitted) and marks.skipped == frozenset(queue.skipped)
        assert store.queue_marks("bob", queue.ids).skipped == frozenset()  # ann's parked rows are hers alone
    finally:
        store.close()
