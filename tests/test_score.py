"""`radar score` and `radar eval` through the real entry point with the shipped model."""

from __future__ import annotations

import json
import subprocess

from tests.cli_helpers import RADAR, radar
from tests.conftest import CORPUS

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
    result = radar("score", "--input", str(source), "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a1", "a2"]
    for row in rows:
        assert FIELDS <= set(row) and 0.0 <= row["cocreation_score"] <= 1.0
        assert abs(sum(row["sector_scores"].values()) - 1) < 1e-3
    assert rows[0]["flagged"] and not rows[1]["flagged"]
    assert rows[0]["cocreation_score"] > rows[1]["cocreation_score"]
    text = ARTICLES[0]["text"]
    assert rows[0]["evidence"] and all(text[e["start"]:e["end"]] == e["text"] for e in rows[0]["evidence"])


def test_score_reads_stdin_and_reports_bad_lines():
    lines = json.dumps(ARTICLES[1]) + "\n{kapot\n"
    result = subprocess.run([RADAR, "score"], input=lines, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "line 2" in result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["a2"]


def test_eval_reports_metrics_and_warns_about_training_texts(tmp_path):
    articles = [json.loads(line) for line in (CORPUS / "articles" / "dev.jsonl").open(encoding="utf-8")]
    labels = {json.loads(line)["id"]: json.loads(line) for line in (CORPUS / "labels" / "dev.jsonl").open()}
    chosen = [a for a in articles if a["text"].strip() and labels[a["id"]]["cocreation"]][:5] + \
        [a for a in articles if a["text"].strip() and not labels[a["id"]]["cocreation"]][:15]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(a) + "\n" for a in chosen))
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(labels[a["id"]]) + "\n" for a in chosen))
    result = radar("eval", "--input", str(tmp_path / "a.jsonl"), "--labels", str(tmp_path / "l.jsonl"), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["overall"]["texts"] == 20 and metrics["overall"]["positives"] == 5
    assert metrics["seen_in_training"] == 20  # the shipped model trained on these: figures are optimistic
    assert metrics["sector"]["n"] == 5 and set(metrics["by_source"]) >= {"dpgmedia/partisan-news2019"}
    assert "WARNING" in radar("eval", "--input", str(tmp_path / "a.jsonl"), "--labels", str(tmp_path / "l.jsonl")).stdout
