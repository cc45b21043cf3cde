"""The Dutch spaCy pipeline: tokenizer exceptions, sentencizer, simplemma lemmas, co-creation evidence.

No pretrained Dutch pipeline can be installed here, so this one is built from `spacy.blank("nl")`
and rules: organisations by sector, participant groups, co-creation constructions and negative
cues come from the lexicon files (pipeline/resources/lexicon/) and are matched on lemmas. The evidence
component is a stateful spaCy pipe: initialize() loads the lexicon, to_disk()/from_disk() keep it.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import simplemma
import spacy
from spacy import util as spacy_util
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.symbols import ORTH
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import SimpleFrozenList, ensure_path, filter_spans
from spacy.vocab import Vocab

from pipeline.errors import ConfigError
from pipeline.resources import LEXICON_DIR as SHIPPED_LEXICON_DIR

log = logging.getLogger(__name__)

LEXICON_DIR = SHIPPED_LEXICON_DIR
SPAN_KEY = "evidence"
GAP = "..."
MAX_GAP = 4
# Abbreviations that spaCy's Dutch exceptions lack; lower-case only, so that "Jan." (a name ending a
# sentence) still ends it. "zo." and "do." are words as well, so they are left out on purpose.
EXTRA_ABBREVIATIONS = [
    "jan.", "feb.", "mrt.", "apr.", "jun.", "jul.", "aug.", "sep.", "sept.", "okt.", "nov.", "dec.",
    "ma.", "di.", "wo.", "vr.", "za.", "mld.", "mrd.", "incl.", "excl.", "mw.", "ong.", "gem.", "afd.",
    "vgl.", "zgn.", "tel.", "nl.", "z.g.a.n.", "i.s.m.", "o.l.v.", "a.s.", "j.l.",
]
for _name, _attr in (("rule_score", 0.0), ("sentence_scores", None), ("evidence_features", None)):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=_attr)


# -- lexicon ------------------------------------------------------------------
@dataclass
class LexiconEntry:
    """One group of patterns: its category, key (sector, group or kind), weight and type hint."""

    category: str  # organisation | participant | construction | negative
    key: str
    patterns: list[str]
    weight: float = 1.0
    type_hint: str = ""
    suffix: bool = False
    implies_participants: bool = False


@dataclass
class Lexicon:
    """All rule vocabularies, loaded from the lexicon folder's *.toml files."""

    entries: list[LexiconEntry] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)

    def of(self, category: str) -> list[LexiconEntry]:
        """Return the entries of one category."""
        return [e for e in self.entries if e.category == category]


LEXICON_FILES = {  # file -> (category, table name, key field, terms field)
    "organisations.toml": ("organisation", "org", "sector", "terms"),
    "participants.toml": ("participant", "group", "name", "terms"),
    "constructions.toml": ("construction", "construction", "kind", "patterns"),
    "negatives.toml": ("negative", "cue", "kind", "patterns"),
}


def load_lexicon(directory: Path = LEXICON_DIR) -> Lexicon:
    """Read the four lexicon files; a missing or malformed file is a ConfigError."""
    lexicon = Lexicon()
    for filename, (category, table, key_field, terms_field) in LEXICON_FILES.items():
        path = directory / filename
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read lexicon file {path}: {exc}") from exc
        lexicon.versions[filename] = int(data.get("version", 0))
        for raw in data.get(table, []):
            lexicon.entries.append(LexiconEntry(
                category=category, key=raw[key_field], patterns=[p.lower() for p in raw[terms_field]],
                weight=float(raw.get("weight", 1.0)), type_hint=raw.get("type_hint", ""),
                suffix=bool(raw.get("suffix", False)), implies_participants=bool(raw.get("implies_participants", False)),
            ))
    return lexicon


def pattern_to_matcher(pattern: str) -> list[dict]:
    """Turn 'denken ... mee' into a spaCy Matcher pattern on NORM (the lower-cased lemma).

    Pattern words go through the same lemmatiser as the text, so a lexicon may name either the
    word form or the lemma and still match every inflection.
    """
    tokens: list[dict] = []
    for item in pattern.split():
        if item == GAP:
            tokens.append({"OP": f"{{0,{MAX_GAP}}}"})
        elif item == "*":
            tokens.append({})
        else:
            tokens.append({"NORM": normalise_word(item)})
    return tokens


def normalise_word(word: str) -> str:
    """Return the matching key of a word: its lower-cased lemma."""
    return lemma_of(word).lower()


# -- components -----------------------------------------------------------------
@lru_cache(maxsize=1)
def lemma_overrides(directory: Path = LEXICON_DIR) -> dict[str, str]:
    """Return the hand-written lemma corrections (word form -> lemma)."""
    path = directory / "lemma_overrides.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get("lemmas", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


@lru_cache(maxsize=200_000)
def lemma_of(word: str) -> str:
    """Return the Dutch lemma of a word: a hand correction, else simplemma's (cached)."""
    fixed = lemma_overrides().get(word.lower())
    if fixed is not None:
        return fixed
    return simplemma.lemmatize(word, lang="nl")


@Language.component("paragraph_breaks", assigns=["token.is_sent_start", "doc.sents"])
def paragraph_breaks(doc: Doc) -> Doc:
    """Start a sentence after every line break: extracted text has one paragraph or headline a line."""
    for token in doc[:-1]:
        if token.is_space and "\n" in token.text:
            doc[token.i + 1].is_sent_start = True
    return doc


@Language.factory("simplemma_lemmatizer", assigns=["token.lemma", "token.norm"], default_config={})
def create_simplemma_lemmatizer(nlp: Language, name: str) -> Callable[[Doc], Doc]:
    """Lemmatise with simplemma (0.947 on UD Dutch Alpino against 0.856 for spaCy's lookup table)."""
    def lemmatize(doc: Doc) -> Doc:
        for token in doc:
            lemma = lemma_of(token.text)
            token.lemma_ = lemma
            # NORM carries the lower-cased lemma so that lexicon rules match every inflected form.
            token.norm_ = lemma.lower()
        return doc
    return lemmatize


@Language.factory(
    "cocreation_evidence",
    # The matchers read NORM (set by simplemma_lemmatizer) and the scores are per sentence (sentencizer).
    requires=["doc.sents", "token.norm"],
    assigns=["doc.spans", "doc._.sentence_scores", "doc._.rule_score"],
    default_config={},
)
def create_cocreation_evidence(nlp: Language, name: str) -> CocreationEvidence:
    """Create the evidence component; nlp.initialize() or from_disk() gives it its lexicon."""
    return CocreationEvidence(nlp, name=name)


LEXICON_FILE = "lexicon.json"  # inside the component's folder of a saved pipeline
NOT_INITIALISED = ("the {name!r} component has no lexicon: call nlp.initialize() (build_nlp and get_nlp do) "
                   "or load a saved pipeline with spacy.load()")


class CocreationEvidence:
    """Per sentence: which organisation works with which participants through which construction.

    A stateful spaCy component like spaCy's SpanRuler: the lexicon is its state. initialize() loads it
    from a lexicon folder, to_disk()/to_bytes() save the entries themselves, so a saved pipeline keeps
    its evidence when the folder later changes or goes away.
    """

    def __init__(self, nlp: Language, lexicon: Lexicon | None = None, *, name: str = "cocreation_evidence"):
        self.name = name
        self.vocab = nlp.vocab
        self._lexicon: Lexicon | None = None
        self._build_matchers(Lexicon())
        if lexicon is not None:
            self.set_lexicon(lexicon)

    @property
    def lexicon(self) -> Lexicon:
        """Return the lexicon the component matches; an error before initialize() or from_disk()."""
        if self._lexicon is None:
            raise RuntimeError(NOT_INITIALISED.format(name=self.name))
        return self._lexicon

    def initialize(self, get_examples: Callable[[], Iterable[Example]] | None = None, *,
                   nlp: Language | None = None, lexicon_dir: str | None = None) -> None:
        """Load the lexicon from lexicon_dir (default: the shipped one); called by nlp.initialize()."""
        # LEXICON_DIR is read here, not bound as a default, so that a patched module constant counts.
        self.set_lexicon(load_lexicon(Path(lexicon_dir) if lexicon_dir else LEXICON_DIR))

    def set_lexicon(self, lexicon: Lexicon) -> None:
        """Replace the lexicon and rebuild the matchers from it."""
        self._build_matchers(lexicon)
        self._lexicon = lexicon

    def _build_matchers(self, lexicon: Lexicon) -> None:
        # Plain phrases go to the hash-based PhraseMatcher; only patterns with gaps or wildcards need
        # the token Matcher, whose state machine cost 90 % of the time when it held all 2,700 patterns.
        self.phrases = PhraseMatcher(self.vocab, attr="NORM")
        self.matcher = Matcher(self.vocab)
        self.suffixes: dict[str, LexiconEntry] = {}
        # Several blocks may share a key (exact and compound organisations); the first one's weight counts.
        self.by_label: dict[str, LexiconEntry] = {}
        for entry in lexicon.entries:
            self.by_label.setdefault(f"{entry.category}:{entry.key}", entry)
        for number, entry in enumerate(lexicon.entries):
            label = f"{entry.category}:{entry.key}#{number}"
            plain = [p for p in entry.patterns if not _has_operator(p)]
            complex_ = [p for p in entry.patterns if _has_operator(p)]
            if plain:
                self.phrases.add(label, [_phrase_doc(self.vocab, p) for p in plain])
            if complex_:
                self.matcher.add(label, [pattern_to_matcher(p) for p in complex_])
            if entry.suffix:
                for term in entry.patterns:
                    if " " not in term:
                        self.suffixes.setdefault(term, entry)
                        self.suffixes.setdefault(normalise_word(term), entry)

    def __call__(self, doc: Doc) -> Doc:
        if self._lexicon is None:
            raise RuntimeError(NOT_INITIALISED.format(name=self.name))
        matches = list(self.phrases(doc)) + list(self.matcher(doc))
        spans = [Span(doc, start, end, label=doc.vocab.strings[match_id].split("#")[0])
                 for match_id, start, end in matches]
        spans += self._compound_matches(doc)
        # A span's type hint is read from its lexicon entry (entry_of), not stored on the span.
        doc.spans[SPAN_KEY] = filter_spans(spans)
        doc._.sentence_scores = score_sentences(doc, self)
        doc._.rule_score = rule_score(doc._.sentence_scores)
        return doc

    def _compound_matches(self, doc: Doc) -> list[Span]:
        # Dutch writes compounds as one word: "buurtbewoners" ends in "bewoner(s)", "basisschool" in "school".
        found = []
        for token in doc:
            norm = token.norm_
            for cut in range(3, len(norm) - 2):
                entry = self.suffixes.get(norm[cut:])
                if entry is not None:
                    found.append(Span(doc, token.i, token.i + 1, label=f"{entry.category}:{entry.key}"))
                    break
        return found

    def entry_of(self, label: str) -> LexiconEntry | None:
        """Return the lexicon entry behind a span label such as 'construction:meedenken'."""
        return self.by_label.get(label)

    # -- serialisation (nlp.to_disk / spacy.load and nlp.to_bytes / from_bytes call these) --
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """Write the lexicon entries to <path>/lexicon.json."""
        serializers = {LEXICON_FILE: lambda p: p.write_text(lexicon_to_json(self.lexicon), encoding="utf-8")}
        spacy_util.to_disk(ensure_path(path), serializers, exclude)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()) -> CocreationEvidence:
        """Load the lexicon entries written by to_disk."""
        deserializers = {LEXICON_FILE: lambda p: self.set_lexicon(lexicon_from_json(p.read_text(encoding="utf-8")))}
        spacy_util.from_disk(ensure_path(path), deserializers, exclude)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        """Serialise the lexicon entries to bytes."""
        return spacy_util.to_bytes({"lexicon": lambda: lexicon_to_json(self.lexicon).encode("utf-8")}, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()) -> CocreationEvidence:
        """Load the lexicon entries serialised by to_bytes."""
        setters = {"lexicon": lambda data: self.set_lexicon(lexicon_from_json(data.decode("utf-8")))}
        spacy_util.from_bytes(bytes_data, setters, exclude)
        return self


def lexicon_to_json(lexicon: Lexicon) -> str:
    """Return the lexicon's entries and file versions as JSON (entry order kept: it decides labels)."""
    # The standard json module writes floats exactly (repr); srsly's ujson rounds some of them.
    return json.dumps({"versions": lexicon.versions, "entries": [asdict(e) for e in lexicon.entries]},
                      ensure_ascii=False, indent=1)


def lexicon_from_json(text: str) -> Lexicon:
    """Rebuild a Lexicon from lexicon_to_json's output."""
    data = json.loads(text)
    return Lexicon(entries=[LexiconEntry(**raw) for raw in data["entries"]], versions=dict(data["versions"]))


def evidence_component(nlp: Language) -> CocreationEvidence:
    """Return the pipeline's cocreation_evidence component."""
    component = nlp.get_pipe("cocreation_evidence")
    if not isinstance(component, CocreationEvidence):
        raise TypeError(f"the 'cocreation_evidence' pipe is a {type(component).__name__}, not CocreationEvidence")
    return component


def _has_operator(pattern: str) -> bool:
    return any(item in (GAP, "*") for item in pattern.split())


def _phrase_doc(vocab: Vocab, pattern: str) -> Doc:
    words = [normalise_word(w) for w in pattern.split()]
    doc = Doc(vocab, words=words)
    for token, word in zip(doc, words):  # noqa: B905 (the Doc is built from these words)
        token.norm_ = word
    return doc


# -- scoring --------------------------------------------------------------------
def score_sentences(doc: Doc, component: CocreationEvidence) -> list[float]:
    """Score each sentence: a construction, weighted by nearby participants and organisations, minus cues.

    A construction alone is weak ("samen met" is everywhere); with a participant group in the same
    sentence it is the codebook's "who works with whom"; negative cues (Participatiewet, bezwaar)
    in the same sentence pull it down.
    """
    sents = list(doc.sents)
    per_sentence = [_categories_in(sent, component) for sent in sents]
    scores = []
    for i, found in enumerate(per_sentence):
        construction = max(found["construction"], default=0.0)
        if not construction:
            scores.append(0.0)
            continue
        near = per_sentence[max(0, i - 1):i + 2]
        named = found["participant"] or found["self_contained"]
        participant = 1.0 if named else (0.6 if any(f["participant"] for f in near) else 0.3)
        organisation = 1.0 if any(f["organisation"] for f in near) else 0.8
        negative = min(0.9, sum(found["negative"]))
        scores.append(round(construction * participant * organisation * (1.0 - negative), 4))
    return scores


def _categories_in(sent: Span, component: CocreationEvidence) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"organisation": [], "participant": [], "construction": [], "negative": [],
                                     "self_contained": []}
    for span in sent.doc.spans[SPAN_KEY]:
        if span.start < sent.start or span.end > sent.end:
            continue
        entry = component.entry_of(span.label_)
        if entry is None:
            continue
        found[entry.category].append(entry.weight)
        if entry.implies_participants:
            found["self_contained"].append(entry.weight)
    return found


def rule_score(sentence_scores: list[float]) -> float:
    """Combine sentence scores: several supporting sentences count more than one strong one."""
    top = sorted(sentence_scores, reverse=True)[:5]
    return round(1.0 - math.prod(1.0 - min(0.95, s) for s in top), 4) if top else 0.0


# -- pipeline -------------------------------------------------------------------
def build_nlp(lexicon_dir: Path | None = None) -> Language:
    """Build the Dutch pipeline: blank nl + abbreviations, sentencizer, simplemma, evidence."""
    nlp = spacy.blank("nl")
    add_abbreviations(nlp)
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("paragraph_breaks")
    nlp.add_pipe("simplemma_lemmatizer")
    nlp.add_pipe("cocreation_evidence")
    initialize_evidence(nlp, lexicon_dir)
    return nlp


@runtime_checkable
class _SpecialCases(Protocol):
    # spaCy's Tokenizer is a Cython class without type stubs; this is the one method used here.
    def add_special_case(self, string: str, substrings: list[dict[int, str]]) -> None: ...


def add_abbreviations(nlp: Language) -> None:
    """Keep the extra abbreviations (EXTRA_ABBREVIATIONS) as one token each."""
    tokenizer = nlp.tokenizer
    if not isinstance(tokenizer, _SpecialCases):
        raise TypeError(f"expected spaCy's Tokenizer, got {type(tokenizer).__name__}")
    for abbreviation in EXTRA_ABBREVIATIONS:
        tokenizer.add_special_case(abbreviation, [{ORTH: abbreviation}])


def initialize_evidence(nlp: Language, lexicon_dir: Path | None = None) -> None:
    """Load the evidence component's lexicon and note its folder in the [initialize] config."""
    folder = str(lexicon_dir) if lexicon_dir else None
    # Recorded so that a later nlp.initialize() loads the same lexicon. Only this component is
    # initialised here, not the whole nlp: Language.initialize also logs at INFO and builds an
    # optimizer, neither of which a rule-based pipeline needs.
    if folder:
        nlp.config["initialize"]["components"]["cocreation_evidence"] = {"lexicon_dir": folder}
    evidence_component(nlp).initialize(nlp=nlp, lexicon_dir=folder)


@lru_cache(maxsize=2)
def get_nlp(lexicon_dir: str = "") -> Language:
    """Return the pipeline, built once per process (lexicon files are read once)."""
    return build_nlp(Path(lexicon_dir) if lexicon_dir else None)


# -- from docs to features and evidence -------------------------------------------
STRONG_SENTENCE = 0.4


@dataclass
class Sentence:
    """One sentence of an article: where it is, its lemmas, its rule score and the lexicon labels in it."""

    start: int  # character offsets into the article text (negative: inside the title)
    end: int
    lemmas: str
    score: float
    labels: list[str]


@dataclass
class Analysis:
    """What the pipeline found in one article: lemmas for text features, rule features, evidence."""

    lemmas: str
    features: dict[str, float]
    evidence: list[dict]
    rule_score: float
    sentences: list[Sentence] = field(default_factory=list)


def evidence_features(doc: Doc, component: CocreationEvidence) -> dict[str, float]:
    """Summarise a doc's evidence as numbers for the classifiers."""
    scores = doc._.sentence_scores or []
    sents = list(doc.sents)
    feats: dict[str, float] = {
        "rule_score": doc._.rule_score, "max_sentence": max(scores, default=0.0),
        "n_sentences_strong": float(sum(s >= STRONG_SENTENCE for s in scores)),
        "n_sentences_any": float(sum(s > 0 for s in scores)),
        "share_sentences_any": sum(s > 0 for s in scores) / max(1, len(scores)),
    }
    counts: dict[str, int] = {}
    for span in doc.spans[SPAN_KEY]:
        counts[span.label_] = counts.get(span.label_, 0) + 1
    feats.update({f"n:{label}": math.log1p(n) for label, n in counts.items()})
    # Organisations, participants and constructions near a scoring sentence say whose co-creation it is
    # (sector) and what form it takes (type hints), weighted by how strong that sentence is.
    for i, score in enumerate(scores):
        if not score:
            continue
        window = doc[sents[max(0, i - 1)].start:sents[min(len(sents) - 1, i + 1)].end]
        for span in doc.spans[SPAN_KEY]:
            entry = component.entry_of(span.label_)
            if entry is None or entry.category == "negative" or not (window.start <= span.start < window.end):
                continue
            feats[f"near:{span.label_}"] = feats.get(f"near:{span.label_}", 0.0) + score
            if entry.type_hint:
                feats[f"hint:{entry.type_hint}"] = feats.get(f"hint:{entry.type_hint}", 0.0) + score
    return feats


def evidence_items(doc: Doc, offset: int = 0, max_sentences: int = 3) -> list[dict]:
    """Return the best sentences and the spans inside them as {text, start, end, label, weight}.

    `offset` is subtracted from character positions so they point into the article text when the
    doc was built from title + text; items that fall before it (in the title) are left out.
    """
    scores = doc._.sentence_scores or []
    sents = list(doc.sents)
    best = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: -scores[i])[:max_sentences]
    items = []
    for i in sorted(best):
        sent = sents[i]
        if sent.start_char < offset:
            continue
        items.append(_item(sent, "sentence:cocreation", scores[i], offset))
        for span in doc.spans[SPAN_KEY]:
            if span.start >= sent.start and span.end <= sent.end:
                items.append(_item(span, span.label_, 1.0, offset))
    # Negative cues anywhere are shown too: they explain a low score to the analyst.
    for span in doc.spans[SPAN_KEY]:
        if span.label_.startswith("negative:") and span.start_char >= offset and not any(
                it["start"] == span.start_char - offset and it["label"] == span.label_ for it in items):
            items.append(_item(span, span.label_, 1.0, offset))
    return items


def _item(span: Span, label: str, weight: float, offset: int) -> dict:
    return {"text": span.text, "start": span.start_char - offset, "end": span.end_char - offset,
            "label": label, "weight": round(float(weight), 4)}


def analyse(records: list[tuple[str, str]], nlp: Language | None = None, batch_size: int = 32) -> list[Analysis]:
    """Run the pipeline over (title, text) pairs and return one Analysis per pair."""
    nlp = nlp or get_nlp()
    component = evidence_component(nlp)
    joined = ((f"{title}\n\n{text}" if title else text, len(title) + 2 if title else 0) for title, text in records)
    results = []
    for doc, offset in nlp.pipe(joined, as_tuples=True, batch_size=batch_size):
        lemmas = " ".join(t.norm_ for t in doc if t.is_alpha)
        results.append(Analysis(lemmas, evidence_features(doc, component), evidence_items(doc, offset),
                                doc._.rule_score, sentence_records(doc, offset)))
    return results


def sentence_records(doc: Doc, offset: int = 0) -> list[Sentence]:
    """Return every sentence with its offsets into the article text, lemmas, score and lexicon labels."""
    scores = doc._.sentence_scores or []
    labels: dict[int, list[str]] = {}
    sents = list(doc.sents)
    starts = [sent.start for sent in sents]
    for span in doc.spans[SPAN_KEY]:
        labels.setdefault(bisect.bisect_right(starts, span.start) - 1, []).append(span.label_)
    return [Sentence(sent.start_char - offset, sent.end_char - offset,
                     " ".join(t.norm_ for t in sent if t.is_alpha), scores[i] if i < len(scores) else 0.0,
                     labels.get(i, []))
            for i, sent in enumerate(sents)]
