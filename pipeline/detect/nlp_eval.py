"""Measure the Dutch pipeline on Universal Dependencies CoNLL-U files: sentence F1 and lemma accuracy."""

from __future__ import annotations

import re
from itertools import groupby
from pathlib import Path

import conllu
from spacy.language import Language
from spacy.tokens import Doc

PARAGRAPH_ID = re.compile(r"^(.*)\.s\.\d+$")


def read_conllu(path: Path) -> list[conllu.TokenList]:
    """Parse a CoNLL-U file into sentences."""
    with open(path, encoding="utf-8") as handle:
        return conllu.parse(handle.read())


def _paragraph_of(sentence: conllu.TokenList) -> str:
    sent_id = sentence.metadata.get("sent_id", "")
    match = PARAGRAPH_ID.match(sent_id)
    return match.group(1) if match else sent_id


def sentence_boundary_f1(nlp: Language, sentences: list[conllu.TokenList]) -> dict[str, float]:
    """Join each paragraph's gold sentences with spaces, split again, and score internal boundaries."""
    true_pos = predicted = gold = 0
    for _, group in groupby(sentences, key=_paragraph_of):
        texts = [s.metadata["text"] for s in group]
        text = " ".join(texts)
        gold_ends, position = set(), 0
        for piece in texts[:-1]:
            position += len(piece)
            gold_ends.add(position)
            position += 1
        doc = nlp(text)
        pred_ends = {sent.end_char for sent in doc.sents if sent.end_char < len(text.rstrip())}
        true_pos += len(gold_ends & pred_ends)
        predicted += len(pred_ends)
        gold += len(gold_ends)
    precision = true_pos / predicted if predicted else 1.0
    recall = true_pos / gold if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "boundaries": gold}


def lemma_accuracy(nlp: Language, sentences: list[conllu.TokenList]) -> dict[str, float]:
    """Lemmatise gold tokens and compare with gold lemmas (case-insensitive, compound '_' removed)."""
    lemmatize = nlp.get_pipe("simplemma_lemmatizer")
    right = total = 0
    for sentence in sentences:
        tokens = [t for t in sentence if isinstance(t["id"], int)]  # skip multiword ranges
        doc = lemmatize(Doc(nlp.vocab, words=[t["form"] for t in tokens]))
        for token, gold in zip(doc, tokens, strict=True):
            total += 1
            right += token.lemma_.lower() == gold["lemma"].replace("_", "").lower()
    return {"accuracy": round(right / total, 4) if total else 0.0, "tokens": total}


def evaluate_ud(nlp: Language, files: list[Path]) -> dict[str, dict]:
    """Return sentence F1 and lemma accuracy per UD file and over all of them."""
    results: dict[str, dict] = {}
    everything: list[conllu.TokenList] = []
    for path in files:
        sentences = read_conllu(path)
        everything += sentences
        results[path.name] = {"sentences": sentence_boundary_f1(nlp, sentences), "lemmas": lemma_accuracy(nlp, sentences)}
    results["all"] = {"sentences": sentence_boundary_f1(nlp, everything), "lemmas": lemma_accuracy(nlp, everything)}
    return results
