"""`radar ingest`, `score`, `train` and `eval`: texts in, and the models that score them."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import typer

from pipeline.cli.common import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    ConfigOption,
    _fail,
    _settings,
    run_errors,
)
from pipeline.errors import RadarError


def ingest_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    file: Path = typer.Argument(..., help="JSONL with id, text and optional title, url, date, outlet."),
) -> None:
    """Import articles that are already text (one JSON object a line); exit 1 when any line was bad."""
    from pipeline.ingest.jsonl import ingest_file
    from pipeline.runs.nightly import run_lock
    from pipeline.store import open_store

    settings = _settings(ctx, config)
    with run_errors(settings), run_lock(settings):
        store = open_store(settings)  # ingest fills it: stderr stays the list of bad lines
        try:
            report = ingest_file(store, file, settings.near_duplicate_threshold)
        finally:
            store.close()
    typer.echo(f"Ingested {file}: {report.new} new, {report.duplicate} duplicate, "
               f"{report.already_stored} already stored, {len(report.conflicts)} conflicting, "
               f"{len(report.invalid)} invalid")
    bad = report.bad_lines()
    for problem in bad:
        typer.echo(f"radar: {problem}", err=True)
    raise typer.Exit(EXIT_RUN_FAILED if bad else EXIT_OK)


def score_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    input: Path | None = typer.Option(None, "--input", "-i", help="JSONL with id, text [, title] (default stdin)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write scores (default stdout)."),
) -> None:
    """Score Dutch articles: co-creation probability, flag, sector, type and evidence per line."""
    from pipeline.ingest.jsonl import parse_jsonl_lines, read_jsonl, split_lines
    from pipeline.detect.score import Scorer

    settings = _settings(ctx, config)
    try:
        scorer = Scorer.load(settings.model_dir)
        # Bytes, decoded line by line: one line of invalid UTF-8 is that line's error, not the whole input's.
        source = read_jsonl(input) if input else parse_jsonl_lines(split_lines(sys.stdin.buffer))
        bad: list[str] = []
        with (open(output, "w", encoding="utf-8") if output else nullcontext(sys.stdout)) as out:
            for result in scorer.score_stream(_valid_records(source, bad)):
                out.write(json.dumps(result, ensure_ascii=False) + "\n")
    except RadarError as exc:
        _fail(exc)
    for problem in bad:
        typer.echo(f"radar: skipped {problem}", err=True)
    raise typer.Exit(EXIT_RUN_FAILED if bad else EXIT_OK)


def _valid_records(source, bad: list[str]):
    # Validated before scoring: only sound records reach a batch, so a bad line never loses its neighbours.
    from pipeline.ingest.jsonl import validate_record

    for number, raw in source:
        record = validate_record(number, raw)
        if isinstance(record, str):
            bad.append(record)
        else:  # the id goes out as it came in (a number stays a number)
            yield {"id": raw["id"], "title": record.title or "", "text": record.text}


def train_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    articles: list[Path] | None = typer.Option(None, "--articles", help="Labelled texts, repeatable (default: settings.train_articles)."),
    labels: list[Path] | None = typer.Option(None, "--labels", help="Their labels, in the same order (default: settings.train_labels)."),
    written: bool = typer.Option(True, "--written/--no-written", help="Also train on the shipped texts written for training (pipeline/resources/training/written.jsonl)."),
    reviews: bool = typer.Option(True, "--reviews/--no-reviews", help="Also train on the analysts' final labels."),
    folds: int = typer.Option(10, "--folds", help="Grouped (leave-sources-out) cross-validation folds."),
) -> None:
    """Train the detector and the sector and type models; cross-validate; save them with a card."""
    from pipeline.detect.train import check_trainable, gather_examples, train_and_evaluate

    settings = _settings(ctx, config)
    try:
        check_trainable(settings.model_dir)
        # Analysts' final labels in the configured database train the models too: reviewing improves them.
        data = gather_examples(articles or settings.train_articles, labels or settings.train_labels, written,
                               database_url=settings.effective_database_url if reviews else None,
                               min_reviews=settings.min_reviews)
        model, metrics = train_and_evaluate(data, settings.model_dir, folds, settings.progress)
    except (RadarError, ValueError) as exc:
        _fail(exc)
    typer.echo(f"Trained model {model.version} on {len(data.real)} real (reviewed: "
               f"{sum(e.origin == 'review' for e in data.real)}) and {len(data.extra)} written texts; "
               f"threshold {model.threshold:.3f}; saved to {settings.model_dir}")
    if metrics:
        typer.echo(cv_text(metrics))


def eval_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    input: Path = typer.Option(..., "--input", "-i", help="JSONL with id, title, text [, source]."),
    labels: Path = typer.Option(..., "--labels", "-l", help="JSONL labels in the codebook's record format."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON (a flag)."),
) -> None:
    """Score labelled texts with the shipped model and report detection, sector and type metrics."""
    from pipeline.detect.evaluate import evaluate_model

    settings = _settings(ctx, config)
    try:
        result = evaluate_model(input, labels, settings.model_dir)
    except RadarError as exc:
        _fail(exc)
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2) if as_json else _eval_text(result))


def cv_text(metrics: dict) -> str:
    """Render grouped and random cross-validation side by side, with the baselines."""
    lines = ["Cross-validated on real texts (written texts train only):",
             f"{'':24}{'grouped (sources held out)':>28}{'random folds':>16}"]
    rows = [("average precision", "overall", "average_precision"), ("flagged", "overall", "flagged"),
            ("precision at threshold", "overall", "precision"), ("recall, clear", "overall", "recall_clear"),
            ("recall, borderline", "overall", "recall_borderline"), ("news flag rate", "overall", "news_flag_rate"),
            ("keyword alert AP", "keyword_baseline", "average_precision"),
            ("sector accuracy", "sector", "accuracy"), ("  majority label", "sector", "majority_accuracy"),
            ("sector macro recall", "sector", "macro_recall"), ("type accuracy", "type", "accuracy"),
            ("  majority label", "type", "majority_accuracy"), ("type macro recall", "type", "macro_recall"),
            ("evidence overlap", "evidence_overlap", "overlap")]
    for name, part, key in rows:
        values = [metrics.get(side, {}).get(part, {}).get(key) for side in ("grouped", "random")]
        lines.append(f"{name:24}{str(values[0]):>28}{str(values[1]):>16}")
    return "\n".join(lines)


def _eval_text(result: dict) -> str:
    lines = [f"Model {result['model_version']} on {result['overall']['texts']} texts "
             f"({result['overall']['positives']} positive)"]
    if result["seen_in_training"]:
        lines.append(f"WARNING: {result['seen_in_training']} of these texts were in the training data; "
                     "figures for them are optimistic")
    for name, block in [("overall", result["overall"])] + [(f"source {k}", v) for k, v in result["by_source"].items()]:
        lines.append(f"{name}: P {block['precision']} R {block['recall']} F1 {block['f1']} "
                     f"AP {block['average_precision']} P@10 {block['precision_at_10']} (flagged {block['flagged']})")
    overall = result["overall"]
    lines.append(f"recall on clear positives {overall['recall_clear']}, borderline {overall['recall_borderline']}; "
                 f"news flagged {overall['news_flagged']} of {overall['news_texts']} ({overall['news_flag_rate']})")
    for attr in ("sector", "type"):
        block = result[attr]
        lines.append(f"{attr} accuracy on positives: {block['accuracy']} (n={block['n']}; always "
                     f"{block.get('majority_label')}: {block.get('majority_accuracy')}; macro recall "
                     f"{block.get('macro_recall')}; confident {block.get('confident')})")
    return "\n".join(lines)
