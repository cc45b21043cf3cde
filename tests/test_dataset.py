"""The notebook API and the notebooks themselves, executed against a real demo database."""

from __future__ import annotations

import sys

import nbformat
import pytest
from nbclient import NotebookClient

import pipeline
from pipeline.demo_site import start_demo_site
from pipeline.runs.nightly import run_nightly
from pipeline.store import Store
from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """Run the nightly job against the demo site into a fresh database; return its path."""
    from pipeline.settings import load_settings
    tmp = tmp_path_factory.mktemp("demo")
    server, base = start_demo_site("127.0.0.1", 0)
    feeds = (ROOT / "data" / "demo" / "feeds.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", base)
    (tmp / "feeds.toml").write_text(feeds, encoding="utf-8")
    settings = load_settings(None, data_dir=tmp / "local", feeds_file=tmp / "feeds.toml", host_delay=0,
                             allow_private_addresses=True, progress=False)
    try:
        run_nightly(settings)
    finally:
        server.shutdown()
        server.server_close()
    return tmp / "local" / "radar.db"


def test_load_dataset_has_sensible_dtypes(demo_db):
    frame = pipeline.load_dataset(demo_db)
    assert len(frame) == 30
    assert str(frame["published"].dtype).startswith("datetime64") and frame["published"].notna().all()
    assert frame["outlet"].dtype == "category" and frame["predicted_sector"].dtype == "category"
    assert list(frame["predicted_sector"].cat.categories)[:2] == ["overheid", "zorg"]
    assert frame["flagged"].dtype == "boolean" and frame["cocreation_score"].between(0, 1).all()
    assert isinstance(frame["evidence"].iloc[0], list)


def test_load_dataset_filters(demo_db):
    everything = pipeline.load_dataset(demo_db)
    flagged = pipeline.load_dataset(demo_db, status="flagged")
    assert 0 < len(flagged) < len(everything) and flagged["flagged"].all()
    outlet = everything["outlet"].iloc[0]
    assert (pipeline.load_dataset(demo_db, outlet=outlet)["outlet"] == outlet).all()
    assert len(pipeline.load_dataset(demo_db, since="2030-01-01")) == 0
    assert len(pipeline.load_dataset(demo_db, status="reviewed")) == 0
    with pytest.raises(ValueError, match="status must be"):
        pipeline.load_dataset(demo_db, status="kapot")


def test_review_labels_reach_the_dataset(demo_db, tmp_path):
    import shutil
    from sqlalchemy import insert
    from pipeline.store import reviews
    db = tmp_path / "copy.db"
    shutil.copy(demo_db, db)
    store = Store(f"sqlite:///{db}")
    article_id = store.articles()[0].id
    with store.engine.begin() as conn:
        conn.execute(insert(reviews).values(article_id=article_id, analyst="ann", action="decide", cocreation=1,
                                            sector="wonen", type="ontwerp", borderline=0, note="", previous="{}",
                                            codebook_version="1", created_at="2026-11-27T10:00:00+00:00"))
    store.close()
    reviewed = pipeline.load_dataset(db, status="reviewed")
    cluster = pipeline.load_dataset(db)
    cluster = set(cluster.loc[cluster["cluster_id"] == article_id, "article_id"])
    assert len(cluster) == 2  # the demo's first story is a wire copy: its other outlet's copy shares the label
    assert set(reviewed["article_id"]) == cluster
    assert reviewed["final_sector"].iloc[0] == "wonen" and bool(reviewed["final_cocreation"].iloc[0])
    assert article_id in set(pipeline.load_dataset(db, sector="wonen")["article_id"])


def test_score_texts_accepts_strings_and_frames():
    import pandas as pd
    texts = ["De gemeente ontwerpt samen met bewoners een nieuw park; bewoners denken mee in werksessies.",
             "Morgen wordt het droog en zonnig."]
    from_list = pipeline.score_texts(texts)
    from_frame = pipeline.score_texts(pd.DataFrame({"title": ["", ""], "text": texts}))
    assert list(from_list["cocreation_score"]) == list(from_frame["cocreation_score"])
    assert from_list["cocreation_score"].iloc[0] > from_list["cocreation_score"].iloc[1]


def test_importing_the_package_loads_nothing_heavy():
    import subprocess
    code = "import sys, pipeline; print(any(m in sys.modules for m in ('spacy', 'sklearn', 'sqlalchemy', 'pandas')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in book.cells if cell.cell_type == "code"), "run `make notebooks-strip`"


def _add_review(db, article_id: int, analyst: str, cocreation: int, sector: str | None) -> None:
    from sqlalchemy import insert
    from pipeline.store import reviews
    store = Store(f"sqlite:///{db}")
    with store.engine.begin() as conn:
        conn.execute(insert(reviews).values(
            article_id=article_id, analyst=analyst, action="decide", cocreation=cocreation, sector=sector,
            type="ontwerp" if cocreation else None, borderline=0, note="", previous="{}", codebook_version="1",
            created_at="2026-11-27T10:00:00+00:00"))
    store.close()


@pytest.fixture(scope="module")
def reviewed_db(demo_db, tmp_path_factory):
    """The demo database with two analysts' decisions on four articles (they disagree on one)."""
    import shutil
    db = tmp_path_factory.mktemp("reviewed") / "radar.db"
    shutil.copy(demo_db, db)
    ids = [a.id for a in Store(f"sqlite:///{db}").articles()][:4]
    for analyst, labels in {"ann": [1, 1, 0, 0], "bea": [1, 0, 0, 0]}.items():
        for article_id, label in zip(ids, labels, strict=True):
            _add_review(db, article_id, analyst, label, "overheid" if label else None)
    return db


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, demo_db, reviewed_db, monkeypatch):
    # The review notebook needs reviews to show agreement; the others run on the plain demo run.
    db = reviewed_db if path.name.startswith("3-") else demo_db
    monkeypatch.setenv("RADAR_DATABASE_URL", f"sqlite:///{db}")
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in book.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert sum(1 for c in book.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})) >= 1
    if path.name.startswith("3-"):
        html = "".join(o.get("data", {}).get("text/html", "") for c in book.cells for o in c.get("outputs", []))
        assert "ann / bea" in html and "kappa decision" in html
        # The notebook's kappa is the review app's: both come from labels.pair_agreement.
        from pipeline.labels import pair_agreement
        store = Store(f"sqlite:///{db}")
        [pair] = pair_agreement(store.decisions_by_article())
        store.close()
        assert f"<td>{pair['decision']['kappa']:.2f}</td>" in html and pair["n"] == 4
    if path.name.startswith("1-"):
        text = "".join(o.get("text", "") for c in book.cells for o in c.get("outputs", []))
        assert "flagged and not yet reviewed" in text  # one count per story, final labels apart from suggestions
