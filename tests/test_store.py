"""The store's save path: every stored text is capped with the cut recorded, and the migration that records it."""

from __future__ import annotations

import json

from sqlalchemy import insert, inspect

from pipeline.extract import cap_text
from pipeline.records import MAX_TEXT_CHARS
from pipeline.schema import MIGRATIONS, SCHEMA_VERSION, _migrate_to_4, schema_info
from pipeline.store import Store
from tests.cli_helpers import radar
from tests.conftest import corpus_articles


def test_radar_ingest_of_a_2_6_million_character_text_is_stored_capped(tmp_path):
    paragraphs = [a["text"].replace("\n", " ") for a in corpus_articles()[:20]]
    text = "\n".join(paragraphs * (2_600_000 // len("\n".join(paragraphs)) + 1))[:2_600_000].strip()
    jsonl = tmp_path / "groot.jsonl"
    jsonl.write_text(json.dumps({"id": "groot-1", "title": "Heel lang", "text": text}) + "\n", encoding="utf-8")
    config = tmp_path / "radar.toml"
    config.write_text(f'[radar]\ndata_dir = "{tmp_path / "local"}"\nprogress = false\n', encoding="utf-8")
    result = radar("--config", str(config), "ingest", str(jsonl))
    assert result.returncode == 0, result.stderr
    [row] = Store(f"sqlite:///{tmp_path / 'local' / 'radar.db'}").articles()
    assert row["text_truncated_from"] == len(text) and len(row["text"]) <= MAX_TEXT_CHARS
    assert text.startswith(row["text"]) and text[len(row["text"])] == "\n"  # cut at a paragraph boundary


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
