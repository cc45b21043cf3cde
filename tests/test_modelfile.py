"""Model files: exact trusted types derived by training, a hash on the card, and a crafted file that never runs."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

import pipeline.detect.modelfile as modelfile
import pipeline.detect.nlp as nlp
from pipeline.resources import LEXICON_DIR, MODEL_DIR
from pipeline.detect.classify import (
    TRUSTED_TYPES, Example, ModelError, fit_calibrator, lexicon_digest, load_model, save_model, train_model,
)
from pipeline.demo_site import start_demo_site
from pipeline.detect.nlp import analyse
from tests.cli_helpers import invoke
from tests.conftest import ROOT

POSITIVES = [
    ("Bewoners ontwerpen samen met de gemeente hun nieuwe wijk",
     "In de wijk Oost hebben bewoners, de woningcorporatie en de gemeente samen het plan voor de nieuwe "
     "huizen gemaakt. In vijf werksessies tekenden de bewoners mee aan de straten en de tuinen.", "wonen", "ontwerp"),
    ("Huurders en corporatie maken samen renovatieplan",
     "De huurders van de flat aan de Dorpsstraat hebben met de corporatie samen bepaald hoe hun woningen worden "
     "opgeknapt. Een klankbordgroep van bewoners besliste mee over de keuken en de isolatie.", "wonen", "ontwerp"),
    ("Patiënten denken mee over nieuwe zorg in het ziekenhuis",
     "Het ziekenhuis heeft samen met patiënten en hun familie de zorg op de afdeling opnieuw ingericht. "
     "Een patiëntenpanel schreef mee aan het beleid en besliste mee over de bezoektijden.", "zorg", "beleid"),
    ("Cliëntenraad en zorginstelling schrijven samen beleid",
     "De cliëntenraad van de zorginstelling heeft samen met de directie het nieuwe beleid voor de dagbesteding "
     "opgesteld. De cliënten kozen zelf de onderwerpen en stemden over het plan.", "zorg", "beleid"),
]
NEGATIVES = [
    ("Kabinet valt over stikstof", "Het kabinet is gevallen na een ruzie over de stikstofregels. De premier "
     "bood vanmiddag het ontslag van de ministers aan bij de koning."),
    ("Files op de A2 na ongeluk", "Op de A2 bij Utrecht staat een lange file na een ongeluk met twee "
     "vrachtwagens. De weg is in beide richtingen afgesloten."),
    ("Ajax wint van PSV", "Ajax heeft zondag met 2-1 gewonnen van PSV. De winnende goal viel in de laatste "
     "minuut van de wedstrijd in Amsterdam."),
    ("Het wordt morgen warm", "Het KNMI verwacht morgen temperaturen tot dertig graden. In het zuiden kan "
     "het in de avond onweren."),
]


def small_examples() -> list[Example]:
    """Return a handful of labelled texts: enough for every step of training."""
    examples = [Example(f"p{i}", title, text, True, sector, type_, origin="written")
                for i, (title, text, sector, type_) in enumerate(POSITIVES)]
    return examples + [Example(f"n{i}", title, text, False, origin="written") for i, (title, text) in enumerate(NEGATIVES)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    examples = small_examples()
    calibration = {"calibrator": fit_calibrator(np.array([-2.0, 2.0]), np.array([0, 1])), "threshold": 0.5,
                   "label_confidence": {"sector": 0.5, "type": 0.5}}
    model = train_model(examples, analyse([(e.title, e.text) for e in examples]), calibration)
    return save_model(model, tmp_path_factory.mktemp("trained") / "radar")


def runstring_node(code: str) -> dict:
    """Return the schema entry from issue 9: numpy.testing's runstring(code, {}), called while loading."""
    def leaf(cls: str, loader: str, node_id: int, **rest) -> dict:
        return {"__class__": cls, "__module__": "builtins", "__loader__": loader, "__id__": node_id, **rest}

    no_keys = leaf("list", "ListNode", 9_000_004, content=[])
    arguments = [leaf("str", "JsonNode", 9_000_002, content=json.dumps(code), is_json=True),
                 leaf("dict", "DictNode", 9_000_003, content={}, key_types=no_keys)]
    return {"__class__": "runstring", "__module__": "numpy.testing._private.utils",
            "__loader__": "ConstructorFromReduceNode", "__id__": 9_000_000,
            "content": leaf("tuple", "TupleNode", 9_000_001, content=arguments)}


def tamper(source: Path, target: Path, marker: Path, update_hash: bool = True) -> Path:
    """Copy a model directory and add the runstring entry to its schema.json; optionally fix the card's hash."""
    shutil.copytree(source, target)
    model_path = target / "model.skops"
    with zipfile.ZipFile(source / "model.skops") as original:
        members = {name: original.read(name) for name in original.namelist()}
    schema = json.loads(members["schema.json"])
    schema["content"]["payload"] = runstring_node(f"open({str(marker)!r}, 'w').write('ran')")
    schema["key_types"]["content"].append(dict(schema["key_types"]["content"][0]))  # one more `str` key type
    members["schema.json"] = json.dumps(schema).encode("utf-8")
    with zipfile.ZipFile(model_path, "w", compression=zipfile.ZIP_DEFLATED) as crafted:
        for name, data in members.items():
            crafted.writestr(name, data)
    if update_hash:  # so that only the type check can catch it
        card = json.loads((target / "card.json").read_text(encoding="utf-8"))
        card["model_sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
        (target / "card.json").write_text(json.dumps(card), encoding="utf-8")
    return target


def test_trusted_types_are_exactly_what_training_produces(model_dir):
    untrusted = set(sio.get_untrusted_types(file=model_dir / "model.skops"))
    assert untrusted <= TRUSTED_TYPES  # the model we train loads ...
    assert untrusted == TRUSTED_TYPES  # ... and nothing on the list is there without need
    loaded = load_model(model_dir)
    assert loaded.threshold == 0.5 and set(loaded.labellers.sector.classes_) == {"wonen", "zorg"}


def test_saved_card_records_the_model_files_sha256(model_dir):
    card = json.loads((model_dir / "card.json").read_text(encoding="utf-8"))
    assert card["model_sha256"] == hashlib.sha256((model_dir / "model.skops").read_bytes()).hexdigest()


def test_shipped_model_loads_with_its_recorded_hash():
    shipped = MODEL_DIR
    assert set(sio.get_untrusted_types(file=shipped / "model.skops")) <= TRUSTED_TYPES
    assert load_model(shipped).card["model_sha256"] == hashlib.sha256((shipped / "model.skops").read_bytes()).hexdigest()


def test_tampered_model_that_would_run_code_is_refused(model_dir, tmp_path):
    marker = tmp_path / "ran-code"
    crafted = tamper(model_dir, tmp_path / "crafted", marker)
    with pytest.raises(ModelError, match="numpy.testing._private.utils.runstring"):
        load_model(crafted)
    assert not marker.exists()
    # The payload is live: loading the file the old way (trusting what skops asks about) runs it.
    sio.load(crafted / "model.skops", trusted=sio.get_untrusted_types(file=crafted / "model.skops"))
    assert marker.read_text() == "ran"


def test_model_file_that_differs_from_its_card_is_refused_before_skops_reads_it(model_dir, tmp_path, monkeypatch):
    changed = tmp_path / "changed"
    shutil.copytree(model_dir, changed)
    sio.dump({"detector": None, "sector": None, "type": None, "threshold": 0.5}, changed / "model.skops")

    def never(*args, **kwargs):
        raise AssertionError("skops was called on a file whose hash is wrong")

    monkeypatch.setattr(modelfile.sio, "get_untrusted_types", never)
    monkeypatch.setattr(modelfile.sio, "loads", never)
    monkeypatch.setattr(modelfile.sio, "load", never)
    with pytest.raises(ModelError, match="does not match its card"):
        load_model(changed)


def test_card_without_a_hash_says_to_retrain(model_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    card = json.loads((old / "card.json").read_text(encoding="utf-8"))
    del card["model_sha256"]
    (old / "card.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelError, match="no model_sha256.*radar train"):
        load_model(old)


def test_radar_score_with_a_tampered_model_exits_with_one_line_and_runs_nothing(model_dir, tmp_path):
    marker = tmp_path / "ran-code"
    crafted = tamper(model_dir, tmp_path / "crafted", marker)
    line = refusal_of_radar_score(crafted, tmp_path)
    assert "runstring" in line and "not loading it" in line
    assert not marker.exists()


def refusal_of_radar_score(model: Path, tmp_path: Path) -> str:
    """Score one line with the model in `model`; assert it exits 2 having printed nothing; return its one error line."""
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"id": "a1", "text": "Bewoners ontwerpen samen hun wijk."}) + "\n", encoding="utf-8")
    result = invoke("score", "--input", str(jsonl), env={"RADAR_MODEL_DIR": str(model)})
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("radar: error: ")
    return line


@pytest.fixture
def demo_config(tmp_path) -> Path:
    server, base = start_demo_site("127.0.0.1", 0)
    feeds = (ROOT / "data" / "demo" / "feeds.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", base)
    (tmp_path / "feeds.toml").write_text(feeds, encoding="utf-8")
    config = tmp_path / "radar.toml"
    config.write_text(f'[radar]\ndata_dir = "{tmp_path / "local"}"\nfeeds_file = "{tmp_path / "feeds.toml"}"\n'
                      "host_delay = 0\nprogress = false\nallow_private_addresses = true\n", encoding="utf-8")
    yield config
    server.shutdown()
    server.server_close()


def test_nightly_run_with_a_tampered_model_reports_it_and_keeps_its_other_stages(model_dir, demo_config, tmp_path):
    marker = tmp_path / "ran-code"
    crafted = tamper(model_dir, tmp_path / "crafted", marker)
    result = invoke("--config", str(demo_config), "run", "--json", env={"RADAR_MODEL_DIR": str(crafted)})
    assert result.exit_code == 1, result.stderr  # the run did not do its job: nothing new was scored
    report = json.loads(result.stdout)
    assert "runstring" in report["scoring"]["failed"] and "scored" not in report["scoring"]
    assert report["articles_new"] > 0 and sum(f["status"] == "ok" for f in report["feeds"]) >= 3
    assert not marker.exists()

    status = json.loads(invoke("--config", str(demo_config), "status", "--json").stdout)
    assert status["runs"][0]["status"] == "failed" and status["counts"]["articles"] == report["articles_new"] + \
        report["articles_duplicate"]


def _lexicon_copy(tmp_path: Path) -> Path:
    lexicon = tmp_path / "lexicon"
    shutil.copytree(LEXICON_DIR, lexicon)
    return lexicon


def test_lexicon_digest_follows_the_cues_not_the_comments(tmp_path):
    lexicon = _lexicon_copy(tmp_path)
    assert lexicon_digest(lexicon) == lexicon_digest()
    negatives = lexicon / "negatives.toml"
    negatives.write_text("# a corrected comment\n" + negatives.read_text(encoding="utf-8"), encoding="utf-8")
    assert lexicon_digest(lexicon) == lexicon_digest()  # same entries: same features, same model
    participants = lexicon / "participants.toml"
    text = participants.read_text(encoding="utf-8")
    first_list = text.index("[\n") + 2  # the first multi-line list of cues gains one
    participants.write_text(text[:first_list] + '    "buurtgenoot",\n' + text[first_list:], encoding="utf-8")
    assert lexicon_digest(lexicon) != lexicon_digest()


def test_model_trained_with_another_lexicon_is_refused_in_one_line(tmp_path, monkeypatch):
    lexicon = _lexicon_copy(tmp_path)
    overrides = lexicon / "lemma_overrides.toml"
    overrides.write_text(overrides.read_text(encoding="utf-8") + 'buurtgenoten = "buurtgenoot"\n',
                         encoding="utf-8")
    monkeypatch.setattr(nlp, "LEXICON_DIR", lexicon)  # this code's lexicon now differs from the card's
    with pytest.raises(ModelError, match="another lexicon") as refused:
        load_model(MODEL_DIR)
    assert "\n" not in str(refused.value) and "radar train" in str(refused.value)


def test_radar_score_refuses_a_model_whose_card_names_another_lexicon(tmp_path):
    changed = tmp_path / "model"
    shutil.copytree(MODEL_DIR, changed)
    card = json.loads((changed / "card.json").read_text(encoding="utf-8"))
    card["lexicon_sha256"] = "0" * 64
    (changed / "card.json").write_text(json.dumps(card), encoding="utf-8")
    line = refusal_of_radar_score(changed, tmp_path)
    assert "another lexicon" in line and "000000000000" in line
