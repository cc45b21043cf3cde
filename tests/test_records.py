"""The typed records the store returns are read by attribute only: the dict-style access (row["title"]) is retired."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.records import (
    ArticleMeta, FeedItem, FinalLabel, Prediction, ReviewEvent, StoredArticle, Submission,
)
from pipeline.store import Store

STORE_RECORDS = [FeedItem, StoredArticle, ArticleMeta, Prediction, ReviewEvent, FinalLabel, Submission]


@pytest.mark.parametrize("record", STORE_RECORDS, ids=[r.__name__ for r in STORE_RECORDS])
def test_a_store_record_offers_no_mapping_access(record):
    # Without __getitem__ a stray row["title"] fails at once (and under mypy) instead of working by accident.
    assert not hasattr(record, "__getitem__")
    assert not hasattr(record, "keys")  # so dict(row) and {**row} fail too: serialise with dataclasses.asdict
    assert not hasattr(record, "get")


def test_a_stored_article_is_read_by_attribute_and_serialised_by_asdict(tmp_path):
    from pipeline.records import Article

    store = Store(f"sqlite:///{tmp_path / 'radar.db'}")
    store.migrate()
    article_id = store.save_article(Article(url="https://example.org/a", canonical_url="https://example.org/a",
                                            title="Bewoners ontwerpen mee", text="Tekst."), run_id=None)
    [row] = store.articles()
    with pytest.raises(TypeError):
        row["title"]  # noqa: B018  (the retired style)
    assert (row.id, row.title) == (article_id, "Bewoners ontwerpen mee")
    assert dataclasses.asdict(row)["title"] == "Bewoners ontwerpen mee"
    store.close()
