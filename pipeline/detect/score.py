"""Scoring: the Dutch pipeline plus the shipped models turn article texts into the public score records."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator

from pipeline.detect.classify import MODEL_DIR, Prediction, RadarModel, load_model
from pipeline.codebook import load_codebook
from pipeline.text import cap_text
from pipeline.detect.nlp import Analysis, analyse, get_nlp
from pipeline.records import ScoreRecord

log = logging.getLogger(__name__)
BATCH = 64
# The part of a text that is analysed: far below spaCy's max_length (1,000,000; error E088), so no
# stored or submitted text can break scoring, and it bounds the memory of one article. It equals the
# store's default cap; the evidence of co-creation is in a story's opening, not its 200,000th character.
MAX_SCORED_CHARS = 200_000
MAX_SCORED_TITLE_CHARS = 2_000  # a title is a line; a longer one is cut hard


@dataclass
class Scorer:
    """The loaded pipeline and model; build once, score many batches."""

    model: RadarModel
    codebook_version: str

    @classmethod
    def load(cls, model_dir: Path = MODEL_DIR) -> Scorer:
        """Load the model (checked against the codebook) and warm the Dutch pipeline."""
        model = load_model(model_dir)
        get_nlp()
        return cls(model, load_codebook().version)

    def score(self, records: list[dict]) -> list[dict]:
        """Score records with `id`, `title`, `text`; return one public score record each.

        The record format is a public contract: id, cocreation_score, flagged, sector,
        sector_scores, type, type_scores, evidence, model_version (plus rule_score and
        codebook_version). Keep it stable.
        """
        return [result.public() for result in self.score_records(records)]

    def score_records(self, records: list[dict]) -> list[ScoreRecord]:
        """Score records with `id`, `title`, `text`; return typed score records in input order."""
        analyses = analyse([_scored_part(r) for r in records])
        predictions = self.model.predict(analyses)
        return [self._record(record, a, p) for record, a, p in zip(records, analyses, predictions, strict=True)]

    def _record(self, record: dict, analysis: Analysis, p: Prediction) -> ScoreRecord:
        return ScoreRecord(
            id=record.get("id"), cocreation_score=p.cocreation_score, flagged=p.flagged,
            sector=p.sector, sector_scores=p.sector_scores, type=p.type, type_scores=p.type_scores,
            sector_confident=p.sector_confident, type_confident=p.type_confident,
            evidence=with_key_passage(analysis, p, str(record.get("text") or "")), rule_score=analysis.rule_score,
            model_version=self.model.version, codebook_version=self.codebook_version)

    def score_stream(self, records: Iterable[dict], batch: int = BATCH) -> Iterator[dict]:
        """Score an iterable of records in batches, yielding results in input order."""
        chunk: list[dict] = []
        for record in records:
            chunk.append(record)
            if len(chunk) >= batch:
                yield from self.score(chunk)
                chunk = []
        if chunk:
            yield from self.score(chunk)


def with_key_passage(analysis: Analysis, prediction: Prediction, text: str) -> list[dict]:
    """Return the rule evidence plus the sentences of the model's key passage, in text order.

    The passage model finds the deciding sentences that the lexicon rules miss; they are shown as
    `sentence:cocreation` items weighted by the article's score, unless a rule item already covers them.
    """
    items = list(analysis.evidence)
    shown = {(it["start"], it["end"]) for it in items if it["label"] == "sentence:cocreation"}
    for sent in analysis.sentences:
        inside = any(sent.start >= start and sent.end <= end for start, end in prediction.key_passages)
        # Paragraph breaks come out of the sentencizer as whitespace "sentences": never show those.
        if inside and sent.start >= 0 and text[sent.start:sent.end].strip() and (sent.start, sent.end) not in shown:
            shown.add((sent.start, sent.end))
            items.append({"text": text[sent.start:sent.end], "start": sent.start, "end": sent.end, "label": "sentence:cocreation",
                          "weight": prediction.cocreation_score})
    return sorted(items, key=lambda it: (it["start"], it["label"] != "sentence:cocreation"))


def _scored_part(record: dict) -> tuple[str, str]:
    # Cut at a paragraph like the store's cap, so the analysed part ends where a reader would stop.
    title = str(record.get("title") or "")[:MAX_SCORED_TITLE_CHARS]
    return title, cap_text(str(record.get("text") or ""), MAX_SCORED_CHARS)[0]


def score_stored_articles(store, scorer: Scorer, run_id: int | None, batch: int = BATCH) -> dict[str, int]:
    """Score every stored article the current model has not scored yet; one transaction per batch.

    An article that cannot be scored is recorded with its reason and skipped by later runs of this
    model version; the rest of its batch is scored all the same.
    """
    version = scorer.model.version
    pending = store.unscored_articles(version)
    scored = flagged = failed = 0
    for start in range(0, len(pending), batch):
        results, failures = _score_batch(scorer, pending[start:start + batch])
        store.save_predictions([r.prediction_row() for r in results], run_id)
        for article_id, reason in failures:
            store.record_scoring_failure(article_id, version, reason, run_id)
        scored += len(results)
        flagged += sum(r.flagged for r in results)
        failed += len(failures)
    log.info("scoring: %d articles scored, %d flagged, %d failed (model %s)", scored, flagged, failed, version)
    return {"scored": scored, "flagged": flagged, "score_failed": failed}


def _score_batch(scorer: Scorer, chunk: list[dict]) -> tuple[list[ScoreRecord], list[tuple[int, str]]]:
    # Whole batches are fast; only a batch that raises is scored again one article at a time, so a
    # bad article fails alone. Any exception: what breaks on one article's text is not known ahead.
    try:
        return scorer.score_records(chunk), []
    except Exception as exc:  # noqa: BLE001
        log.warning("scoring: a batch of %d articles failed (%r); scoring them one by one", len(chunk), exc)
    results, failures = [], []
    for article in chunk:
        try:
            results.extend(scorer.score_records([article]))
        except Exception as exc:  # noqa: BLE001
            log.error("scoring: article %s failed and is skipped for this model: %r", article["id"], exc)
            failures.append((article["id"], f"{type(exc).__name__}: {exc}".replace("\n", " ")))
    return results, failures
