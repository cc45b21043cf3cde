"""Cross-validation on real texts: grouped by source (the honest figure) beside random folds.

Random folds put texts of one source on both sides, so a model learns a source's style and is
praised for it. Grouped folds hold whole sources out (DPG split by outlet family, since regional
titles reprint each other's copy), which is what a new feed looks like to the model. Texts written
for training only ever join the training side, and every threshold, calibrator and confidence cut
is chosen on the training side of its fold (nested).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedKFold

from pipeline.detect.classify import Detector, Example, fit_calibrator, fit_detector, key_spans, threshold_for_recall
from pipeline.detect.labellers import Labellers, evidence_passages, fit_labellers, suggest_labels
from pipeline.detect.nlp import Analysis

INNER_FOLDS = 3
# AD and its regional titles (Brabants Dagblad, PZC, ...) share one newsroom's copy.
DPG_REGIONAL = {"ad", "brabantsdagblad", "destem", "pzc", "degelderlander", "tubantia", "eindhovensdagblad"}


@dataclass
class FoldResult:
    """Out-of-fold outputs for every real text."""

    raw: np.ndarray
    probability: np.ndarray
    flags: np.ndarray
    highlighted: list[list[tuple[int, int]]]  # what the analyst sees as key sentences
    labels: dict[str, dict[int, tuple[str, float]]]  # attr -> text index -> (label, probability)
    thresholds: list[float]


def source_group(source: str, outlet: str | None) -> str:
    """Return the group a text is held out with: its source, DPG split by outlet family."""
    if source.startswith("dpgmedia"):
        return "dpg:" + ("ad-regio" if outlet in DPG_REGIONAL else (outlet or "unknown"))
    return source or "unknown"


def splits(real: list[Example], grouped: bool, folds: int, seed: int = 13):
    """Yield (train, test) index arrays: whole groups held out, or stratified random folds."""
    y = np.array([e.cocreation for e in real], dtype=int)
    groups = np.array([e.group or e.source for e in real])
    if grouped and len(set(groups)) >= 2:
        yield from GroupKFold(n_splits=min(folds, len(set(groups)))).split(np.zeros(len(y)), groups=groups)
        return
    # Random folds, also for a training part left with one source (small data in inner folds).
    n_splits = max(2, min(folds, int(np.bincount(y, minlength=2).min())))
    yield from StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)


def clear_positives(examples: list[Example]) -> np.ndarray:
    """Return a mask of the positives a careful reader would not doubt (not borderline)."""
    return np.array([e.cocreation and not e.borderline for e in examples])


class Trainer:
    """Fits detectors on index subsets of the real texts, always adding the written ones."""

    def __init__(self, real, real_analyses, extra, extra_analyses):
        self.real, self.ra, self.extra, self.ea = real, real_analyses, extra, extra_analyses

    def detector(self, idx: np.ndarray) -> Detector:
        """Fit a detector on real[idx] plus the extra texts."""
        return fit_detector([self.real[i] for i in idx] + self.extra, [self.ra[i] for i in idx] + self.ea)

    def labellers(self, idx: np.ndarray, detector: Detector) -> Labellers:
        """Fit sector and type on the positives of real[idx] plus the extra texts."""
        examples = [self.real[i] for i in idx] + self.extra
        analyses = [self.ra[i] for i in idx] + self.ea
        _, best_at = detector.raw_scores(analyses)
        return fit_labellers(examples, analyses, evidence_passages(examples, analyses, best_at))

    def raw(self, detector: Detector, idx: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Score real[idx] with a detector."""
        return detector.raw_scores([self.ra[i] for i in idx])

    def calibrate(self, train: np.ndarray, grouped: bool):
        """Choose a calibrator and threshold on inner out-of-fold scores of the training part."""
        sub = [self.real[i] for i in train]
        raw = np.zeros(len(train))
        for inner_train, inner_test in splits(sub, grouped, INNER_FOLDS):
            raw[inner_test] = self.raw(self.detector(train[inner_train]), train[inner_test])[0]
        labels = np.array([e.cocreation for e in sub], dtype=int)
        calibrator = fit_calibrator(raw, labels)
        probability = calibrator.predict_proba(raw.reshape(-1, 1))[:, 1]
        return calibrator, threshold_for_recall(probability, clear_positives(sub).astype(int))


def cross_validate_folds(trainer: Trainer, grouped: bool, folds: int,
                         progress: Callable[[], None] | None = None) -> FoldResult:
    """Run the outer folds and collect out-of-fold scores, flags, key passages and labels."""
    n = len(trainer.real)
    result = FoldResult(np.zeros(n), np.zeros(n), np.zeros(n, dtype=int), [[] for _ in range(n)],
                        {"sector": {}, "type": {}}, [])
    for train, test in splits(trainer.real, grouped, folds):
        calibrator, threshold = trainer.calibrate(train, grouped)
        detector = trainer.detector(train)
        raw, ranked = detector.ranked_passages([trainer.ra[i] for i in test])
        best_at = [order[0] for order in ranked]
        probability = calibrator.predict_proba(raw.reshape(-1, 1))[:, 1]
        result.raw[test], result.probability[test] = raw, probability
        result.flags[test] = (probability >= threshold).astype(int)
        result.thresholds.append(round(float(threshold), 4))
        for k, i in enumerate(test):
            result.highlighted[i] = highlighted_spans(trainer.ra[i], ranked[k])
        _record_labels(trainer, train, test, detector, best_at, result)
        if progress:
            progress()
    return result


def _record_labels(trainer: Trainer, train, test, detector: Detector, best_at: list[int], result: FoldResult) -> None:
    positives = [k for k, i in enumerate(test) if trainer.real[i].cocreation]
    if not positives:
        return
    labellers = trainer.labellers(train, detector)
    analyses = [trainer.ra[test[k]] for k in positives]
    for attr, model in (("sector", labellers.sector), ("type", labellers.type)):
        if model is None:
            continue
        suggestions = suggest_labels(model, analyses, [best_at[k] for k in positives], attr)
        for k, scores in zip(positives, suggestions, strict=True):
            best = max(scores, key=lambda label: scores[label])
            result.labels[attr][int(test[k])] = (best, scores[best])


def highlighted_spans(analysis: Analysis, order: list[int]) -> list[tuple[int, int]]:
    """Return the spans shown as key sentences: the best passages and the rules' best sentences."""
    spans = key_spans(analysis, order)
    spans += [(it["start"], it["end"]) for it in analysis.evidence if it["label"] == "sentence:cocreation"]
    return spans
