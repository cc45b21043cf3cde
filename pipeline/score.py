"""Scoring: the Dutch pipeline plus the shipped models turn article texts into the public score records."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from pipeline.classify import MODEL_DIR, Prediction, RadarModel, load_model
from pipeline.codebook import load_codebook
from pipeline.nlp import Analysis, analyse, get_nlp

log = logging.getLogger(__name__)
BATCH = 64


@dataclass
class Scorer:
    """The loaded pipeline and model; build once, score many batches."""

    model: RadarModel
    codebook_version: str

    @classmethod
    def load(cls, model_dir: Path = MODEL_DIR) -> "Scorer":
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
        analyses = analyse([(str(r.get("title") or ""), str(r.get("text") or "")) for r in records])
        predictions = self.model.predict(analyses)
        return [{
            "id": record.get("id"), "cocreation_score": p.cocreation_score, "flagged": p.flagged,
            "sector": p.sector, "sector_scores": p.sector_scores, "type": p.type, "type_scores": p.type_scores,
            "sector_confident": p.sector_confident, "type_confident": p.type_confident,
            "evidence": with_key_passage(a, p, str(record.get("text") or "")), "rule_score": a.rule_score, "model_version": self.model.version,
            "codebook_version": self.codebook_version,
        } for record, a, p in zip(records, analyses, predictions)]

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
        if inside and sent.start >= 0 and (sent.start, sent.end) not in shown:
            shown.add((sent.start, sent.end))
            items.append({"text": text[sent.start:sent.end], "start": sent.start, "end": sent.end, "label": "sentence:cocreation",
                          "weight": prediction.cocreation_score})
    return sorted(items, key=lambda it: (it["start"], it["label"] != "sentence:cocreation"))


def score_stored_articles(store, scorer: Scorer, run_id: int | None, batch: int = BATCH) -> dict[str, int]:
    """Score every stored article the current model has not scored yet; one transaction per batch."""
    pending = store.unscored_articles(scorer.model.version)
    scored = flagged = 0
    for start in range(0, len(pending), batch):
        chunk = pending[start:start + batch]
        results = scorer.score(chunk)
        store.save_predictions([_prediction_row(r) for r in results], run_id)
        scored += len(results)
        flagged += sum(r["flagged"] for r in results)
    log.info("scoring: %d articles scored, %d flagged (model %s)", scored, flagged, scorer.model.version)
    return {"scored": scored, "flagged": flagged}


def _prediction_row(result: dict) -> dict:
    # An unsure sector or type is stored as no suggestion, so the review form is not prefilled with
    # it (a wrong prefill anchors the analyst); its probabilities stay visible beside the form.
    return {"article_id": result["id"], "model_version": result["model_version"],
            "codebook_version": result["codebook_version"], "cocreation_score": result["cocreation_score"],
            "rule_score": result["rule_score"], "flagged": result["flagged"],
            "sector": result["sector"] if result["sector_confident"] else None, "sector_scores": result["sector_scores"],
            "type": result["type"] if result["type_confident"] else None, "type_scores": result["type_scores"],
            "evidence": result["evidence"]}
