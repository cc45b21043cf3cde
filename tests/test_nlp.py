"""The Dutch spaCy pipeline: tokenizer, sentences, lemmas, lexicon matching and co-creation evidence."""

from __future__ import annotations

import shutil

import pytest
import spacy

from pipeline.detect.nlp import (
    LEXICON_DIR, SPAN_KEY, analyse, build_nlp, evidence_component, get_nlp, load_lexicon, pattern_to_matcher,
)
from tests.conftest import corpus_articles


@pytest.fixture(scope="module")
def nlp():
    return get_nlp()


@pytest.mark.parametrize("abbreviation", ["o.a.", "mln.", "mld.", "jan.", "prof.", "bijv.", "i.s.m."])
def test_abbreviations_do_not_end_sentences(nlp, abbreviation):
    doc = nlp(f"De gemeente trekt {abbreviation} geld uit voor het plan. Daarna volgt de rest.")
    assert len(list(doc.sents)) == 2
    assert abbreviation in [t.text for t in doc]


def test_line_breaks_separate_headline_from_body(nlp):
    doc = nlp("Bewoners ontwerpen park\nDe gemeente Rivierstad vraagt bewoners mee te denken.")
    assert [s.text.strip() for s in doc.sents] == ["Bewoners ontwerpen park",
                                                   "De gemeente Rivierstad vraagt bewoners mee te denken."]


def test_lemmas_use_simplemma_with_hand_corrections(nlp):
    doc = nlp("De scholen en de zorg denken mee met huurders.")
    lemmas = {t.text: t.lemma_ for t in doc}
    assert lemmas["scholen"] == "school" and lemmas["zorg"] == "zorg"  # simplemma alone: schuilen, zorgen
    assert lemmas["denken"] == "denken" and lemmas["huurders"] == "huurder"


def test_gap_pattern_becomes_a_bounded_wildcard():
    assert pattern_to_matcher("denken ... mee") == [{"NORM": "denken"}, {"OP": "{0,4}"}, {"NORM": "mee"}]


def test_lexicon_uses_codebook_names():
    from pipeline.codebook import load_codebook
    codebook = load_codebook()
    lexicon = load_lexicon()
    assert {e.key for e in lexicon.of("organisation")} <= set(codebook.sectors)
    assert {e.type_hint for e in lexicon.of("construction")} <= set(codebook.types) | {""}
    assert len(lexicon.of("construction")) >= 8 and len(lexicon.of("negative")) >= 5


def _labels(analysis) -> set[str]:
    return {item["label"].split(":")[0] for item in analysis.evidence}


def test_cocreation_sentence_gets_evidence_with_offsets_into_the_text():
    title = "Park"
    text = ("De gemeente Utrecht wil samen met buurtbewoners een nieuw park ontwerpen. "
            "Bewoners denken in drie werksessies mee over de speelplekken en het groen.")
    (result,) = analyse([(title, text)])
    assert result.rule_score > 0.5
    assert {"sentence", "organisation", "participant", "construction"} <= _labels(result)
    for item in result.evidence:
        assert text[item["start"]:item["end"]] == item["text"]


@pytest.mark.parametrize("text", [
    "Het aantal mensen in de bijstand daalt dankzij de Participatiewet, meldt de gemeente. "
    "Ook het UWV ziet meer mensen aan het werk.",
    "Omwonenden dienden een zienswijze in tegen het bestemmingsplan. De gemeente behandelt de bezwaren in mei.",
    "Het Rijk neemt een financieel belang van 49 procent in het bedrijf. De aandeelhouders stemden in.",
])
def test_misleading_words_score_low(text):
    (result,) = analyse([("", text)])
    assert result.rule_score < 0.3
    assert "negative" in _labels(result)


def test_ordinary_news_has_no_evidence():
    (result,) = analyse([("Weer", "Morgen wordt het zonnig en droog met maxima rond de twaalf graden. "
                                   "In het noorden kan het 's ochtends mistig zijn.")])
    assert result.rule_score == 0.0 and result.evidence == []


def test_features_count_sectors_near_evidence():
    text = ("Het ziekenhuis ontwikkelt samen met patiënten een nieuw zorgpad. "
            "Patiënten denken mee in een klankbordgroep over de behandeling.")
    (result,) = analyse([("", text)])
    assert any(key.startswith("near:organisation:zorg") for key in result.features)
    assert result.features["n_sentences_any"] >= 2



def _negatives(text: str) -> dict[str, str]:
    (result,) = analyse([("", text)])
    return {item["text"].lower(): item["label"] for item in result.evidence if item["label"].startswith("negative:")}


# Everyday words that fired as negative cues (issue 21, item 10). The lexicon without them (bare "beurs" ->
# "naar/aan de beurs", no "procent van de", "trainer", "scheidsrechter") was retrained on 2026-12-07: grouped
# AP 0.5132 -> 0.5125, every other grouped figure (clear recall, precision, news flag rate, sector and type) equal.
@pytest.mark.parametrize(("text", "word"), [
    # From the demo's citizens' assembly and a sports club that plans its new canteen with its members.
    ("Wie met een smalle beurs leeft, mag niet de rekening betalen, vindt het beraad.", "beurs"),
    ("Ruim zestig procent van de deelnemers woont in de binnenstad.", "procent van de"),
    ("De trainers en scheidsrechters van de club denken samen met de leden mee over de nieuwe kantine.",
     "trainers"),
    ("De trainers en scheidsrechters van de club denken samen met de leden mee over de nieuwe kantine.",
     "scheidsrechters"),
])
def test_everyday_words_are_no_negative_cues(text, word):
    assert word not in _negatives(text)


@pytest.mark.parametrize(("text", "label"), [
    ("Het energiebedrijf gaat volgend jaar naar de beurs.", "negative:financieel"),
    ("De wedstrijd eindigde in 2-1 voor de thuisploeg.", "negative:sport"),
])
def test_stock_exchange_and_match_words_remain_negative_cues(text, label):
    assert label in _negatives(text).values()


# -- the evidence component as a stateful spaCy pipe ------------------------------------------------
def _lexicon_copy(tmp_path):
    folder = tmp_path / "lexicon"
    shutil.copytree(LEXICON_DIR, folder)
    return folder


def _real_texts() -> list[tuple[str, str]]:
    # Citizens' association posts (much evidence) and newspaper articles (little): both must survive a save.
    rows = corpus_articles("VughtParticipeert", min_chars=800)[:6] + corpus_articles("dpgmedia")[:3]
    return [(row["title"], row["text"]) for row in rows]


def test_evidence_factory_declares_what_it_writes_and_reads(nlp):
    meta = nlp.get_pipe_meta("cocreation_evidence")
    assert sorted(meta.assigns) == ["doc._.rule_score", "doc._.sentence_scores", "doc.spans"]
    assert sorted(meta.requires) == ["doc.sents", "token.norm"]
    assert "token.norm" in nlp.get_pipe_meta("simplemma_lemmatizer").assigns


def test_pipe_analysis_finds_no_unmet_requirements(nlp):
    assert nlp.analyze_pipes(pretty=False)["problems"] == {name: [] for name in nlp.pipe_names}
    # The check has teeth: without the lemmatizer nothing sets the NORM the matchers read.
    bare = spacy.blank("nl")
    bare.add_pipe("sentencizer")
    bare.add_pipe("cocreation_evidence")
    assert bare.analyze_pipes(pretty=False)["problems"]["cocreation_evidence"] == ["token.norm"]


def test_component_used_before_initialize_says_what_to_do():
    bare = spacy.blank("nl")
    for name in ("sentencizer", "paragraph_breaks", "simplemma_lemmatizer", "cocreation_evidence"):
        bare.add_pipe(name)
    with pytest.raises(RuntimeError, match=r"no lexicon: call nlp.initialize\(\)"):
        bare("Bewoners denken mee over het park.")
    bare.initialize()  # spaCy's own route loads the shipped lexicon
    assert bare("Bewoners denken mee over het park.")._.rule_score > 0


def _add_construction(folder, kind: str, pattern: str) -> None:
    path = folder / "constructions.toml"
    path.write_text(path.read_text(encoding="utf-8") + f'''
[[construction]]
kind = "{kind}"
weight = 0.9
type_hint = "ontwerp"
patterns = ["{pattern}"]
''', encoding="utf-8")


def _labels_in(nlp, text: str) -> set[str]:
    doc = nlp(text)  # kept in a name: a SpanGroup dies with its Doc
    return {span.label_ for span in doc.spans[SPAN_KEY]}


def test_initialize_with_a_lexicon_dir_uses_that_lexicon(tmp_path):
    folder = _lexicon_copy(tmp_path)
    _add_construction(folder, "kokosnoten", "kokosnoten kraken")
    text = "De gemeente gaat samen met bewoners kokosnoten kraken in het park."
    assert "construction:kokosnoten" not in _labels_in(get_nlp(), text)
    assert "construction:kokosnoten" in _labels_in(build_nlp(folder), text)
    # The same through spaCy's [initialize] config, as build_nlp records it.
    other = spacy.blank("nl")
    for name in ("sentencizer", "paragraph_breaks", "simplemma_lemmatizer", "cocreation_evidence"):
        other.add_pipe(name)
    other.config["initialize"]["components"]["cocreation_evidence"] = {"lexicon_dir": str(folder)}
    other.initialize()
    assert "construction:kokosnoten" in _labels_in(other, text)


@pytest.mark.parametrize("afterwards", ["deleted", "emptied"])
def test_saved_pipeline_keeps_its_evidence_when_the_lexicon_dir_changes(tmp_path, afterwards):
    folder = _lexicon_copy(tmp_path)
    _add_construction(folder, "kokosnoten", "kokosnoten kraken")
    records = _real_texts() + [("", "De gemeente gaat samen met bewoners kokosnoten kraken in het park.")]
    built = build_nlp(folder)
    expected = analyse(records, built)
    assert sum(result.rule_score > 0 for result in expected) >= 3  # there is evidence to lose
    built.to_disk(tmp_path / "saved")
    if afterwards == "deleted":
        shutil.rmtree(folder)
    else:  # a folder that still loads but holds no constructions: rebuilt from it, every score is 0
        (folder / "constructions.toml").write_text("version = 2\n", encoding="utf-8")
        assert all(result.rule_score == 0 for result in analyse(records, build_nlp(folder)))
    loaded = spacy.load(tmp_path / "saved")
    assert analyse(records, loaded) == expected
    assert evidence_component(loaded).lexicon == evidence_component(built).lexicon


def test_pipeline_bytes_round_trip_keeps_the_lexicon(tmp_path):
    folder = _lexicon_copy(tmp_path)
    _add_construction(folder, "kokosnoten", "kokosnoten kraken")
    built = build_nlp(folder)
    data = built.to_bytes()
    shutil.rmtree(folder)
    restored = spacy.blank("nl")
    for name in built.pipe_names:
        restored.add_pipe(name)
    restored.from_bytes(data)
    records = _real_texts()[:4] + [("", "Samen met bewoners kokosnoten kraken.")]
    assert analyse(records, restored) == analyse(records, built)
    assert evidence_component(restored).lexicon == evidence_component(built).lexicon
