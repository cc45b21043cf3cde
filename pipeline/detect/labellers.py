"""Sector and type labellers: read the key passage, take class priors from real labels only, abstain when unsure.

The sector is that of the organisation hosting the process in the key passage and the type the kind
of contribution, so the labellers read the detector's best passage (the gold evidence passage when
training) with its lexicon matches (organisations by sector, constructions with their type hints).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.detect.estimators import make_pipeline
from pipeline.detect.nlp import Analysis, Sentence, load_lexicon
from pipeline.detect.passages import evidence_span, overlaps, passages_of

LABEL_TARGET = 0.8  # a sector or type is prefilled only where suggestions this sure were right 80 % of the time
# How much the lexicon's votes count beside the learned probabilities. The learned labellers alone
# answered the majority label for almost every text (sector macro recall 0.14, type 0.43 in grouped
# folds): rare labels have a handful of real examples. Grouped CV over weights 1.0-3.0 (key passage)
# and 0-1 (document) gave type macro recall 0.58-0.62 and sector 0.30-0.34; the middle is used.
KEY_VOTE_WEIGHT = 1.5
DOC_VOTE_WEIGHT = 0.5
KEY_SENTENCE_VOTE, TITLE_VOTE = 2.0, 1.5  # the key sentence and the title name the host more often


def make_labeller() -> Pipeline:
    """Return an untrained sector or type pipeline (multinomial, no class re-weighting)."""
    pipe = make_pipeline(c=4.0)
    pipe.set_params(model=LogisticRegression(C=4.0, max_iter=5000))
    return pipe


def key_passage_frame(analyses: list[Analysis], best_at: list[int]) -> pd.DataFrame:
    """Return the labellers' input: the best passage's lemmas and lexicon features, plus the doc's hints."""
    rows = []
    for analysis, at in zip(analyses, best_at):  # noqa: B905 (parallel lists of one length by construction)
        key = passages_of(analysis)[at]
        feats = {f"key:{k}": v for k, v in key.features.items()}
        feats.update({k: v for k, v in analysis.features.items() if k.startswith(("near:", "hint:"))})
        rows.append({"lemmas": key.lemmas, "features": feats})
    return pd.DataFrame(rows)


def fit_labeller(x: pd.DataFrame, labels: list[str], real_labels: list[str]) -> Pipeline:
    """Fit a sector or type classifier, then set its class priors to those of the real labels.

    Written texts add vocabulary for rare labels, but their label mix was chosen by the writer; the
    intercepts are moved by log(real prior / training prior) so only real labels set the prior.
    """
    model = make_labeller().fit(x, np.asarray(labels))
    classes = list(model.classes_)
    train_prior = np.array([labels.count(c) + 1 for c in classes], dtype=float)
    real_prior = np.array([real_labels.count(c) + 1 for c in classes], dtype=float)
    shift = np.log(real_prior / real_prior.sum()) - np.log(train_prior / train_prior.sum())
    lr = model.named_steps["model"]
    if len(classes) > 2:
        lr.intercept_ = lr.intercept_ + shift
    elif len(classes) == 2:
        lr.intercept_ = lr.intercept_ + (shift[1] - shift[0])
    return model


@dataclass
class Labellers:
    """Sector and type classifiers over the key passage."""

    sector: Pipeline | None
    type: Pipeline | None


def fit_labellers(examples: list, analyses: list[Analysis], best_at: list[int]) -> Labellers:
    """Fit sector and type on the positives (real priors), reading each one's key passage."""
    fitted: dict[str, Pipeline | None] = {}
    for attr in ("sector", "type"):
        rows = [i for i, ex in enumerate(examples) if ex.cocreation and getattr(ex, attr)]
        labels = [getattr(examples[i], attr) for i in rows]
        real = [getattr(examples[i], attr) for i in rows if examples[i].origin != "written"]
        if len(set(labels)) < 2:
            fitted[attr] = None
            continue
        x = key_passage_frame([analyses[i] for i in rows], [best_at[i] for i in rows])
        fitted[attr] = fit_labeller(x, labels, real)
    return Labellers(fitted["sector"], fitted["type"])


def evidence_passages(examples: list, analyses: list[Analysis], fallback: list[int]) -> list[int]:
    """Return each text's gold evidence passage where the quote is found, else the fallback index."""
    out = []
    for ex, analysis, default in zip(examples, analyses, fallback):  # noqa: B905 (parallel lists of one length by construction)
        span = evidence_span(ex.text, ex.evidence) if ex.cocreation else None
        hits = [i for i, p in enumerate(passages_of(analysis)) if overlaps(p, span)]
        out.append(hits[0] if hits else default)
    return out


@lru_cache(maxsize=1)
def construction_type_hints() -> dict[str, str]:
    """Return each construction kind's codebook type (zelfbouw for CPO, uitvoering for cooperatives ...)."""
    return {e.key: e.type_hint for e in load_lexicon().of("construction") if e.type_hint}


def _vote_key(label: str, attr: str) -> str | None:
    category, _, key = label.partition(":")
    if attr == "sector" and category == "organisation":
        return key
    if attr == "type" and category == "construction":
        return construction_type_hints().get(key)
    return None


def key_passage_votes(analysis: Analysis, at: int, attr: str) -> Counter:
    """Count the lexicon's sector (organisations) or type (constructions) votes in the key passage and title."""
    passage = passages_of(analysis)[at]
    inside = [s for s in analysis.sentences if s.start < passage.end and s.end > passage.start]
    top = max(inside, key=lambda s: s.score) if inside else None
    weighted: list[tuple[Sentence, float]] = [(s, KEY_SENTENCE_VOTE if s is top else 1.0) for s in inside]
    weighted += [(s, TITLE_VOTE) for s in analysis.sentences if s.start < 0]
    votes: Counter = Counter()
    for sentence, weight in weighted:
        for label in sentence.labels:
            key = _vote_key(label, attr)
            if key:
                # Weighted votes: Counter allows float counts (its docs say so); typeshed types counts as int.
                votes[key] += weight  # type: ignore[assignment]
    return votes


def document_votes(analysis: Analysis, attr: str) -> dict[str, float]:
    """Return the whole text's lexicon weight per sector or type."""
    prefix = "n:organisation:" if attr == "sector" else "hint:"
    return {k[len(prefix):]: v for k, v in analysis.features.items() if k.startswith(prefix)}


def blend_votes(probabilities: dict[str, float], key_votes: dict, doc_votes: dict) -> dict[str, float]:
    """Add the lexicon's vote shares to the learned probabilities and renormalise to a distribution."""
    blended, total = dict(probabilities), 1.0
    for votes, weight in ((key_votes, KEY_VOTE_WEIGHT), (doc_votes, DOC_VOTE_WEIGHT)):
        mass = sum(votes.get(c, 0.0) for c in blended)
        if mass <= 0:
            continue
        total += weight
        for c in blended:
            blended[c] += weight * votes.get(c, 0.0) / mass
    return {c: round(v / total, 4) for c, v in blended.items()}


def suggest_labels(model: Pipeline | None, analyses: list[Analysis], best_at: list[int],
                   attr: str) -> list[dict[str, float]]:
    """Return each article's sector or type scores: the learned model on its key passage plus lexicon votes."""
    if model is None or not analyses:
        return [{} for _ in analyses]
    rows = model.predict_proba(key_passage_frame(analyses, best_at))
    return [blend_votes({str(k): float(v) for k, v in zip(model.classes_, row, strict=True)},
                        key_passage_votes(a, at, attr), document_votes(a, attr))
            for a, at, row in zip(analyses, best_at, rows, strict=True)]


def confidence_for_accuracy(probabilities: list[float], correct: list[bool], target: float = LABEL_TARGET) -> float:
    """Return the lowest confidence above which out-of-fold suggestions reach the target accuracy.

    Below it the review form is not prefilled: a wrong prefill anchors the analyst. 1.0 (never
    confident) when no cut reaches the target on at least five suggestions.
    """
    pairs = sorted(zip(probabilities, correct), reverse=True)  # noqa: B905 (parallel lists of one length by construction)
    best = 1.0
    for n in range(5, len(pairs) + 1):
        if np.mean([c for _, c in pairs[:n]]) >= target:
            best = pairs[n - 1][0]
    return float(best)
