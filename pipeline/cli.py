"""The `radar` command: thin subcommands that turn errors into messages and exit codes."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import RadarError, RunCrashed, RunLocked, StoreError
from pipeline.settings import Settings, has_contact, load_settings

# Plain click help (rich_markup_mode=None): typer's rich help labels every flag `<bool>` and a count
# `<int>`, which reads as if `--json true` or `-v 2` were wanted.
app = typer.Typer(
    help="Cocreatie Radar: find co-creation at social organisations in Dutch news.",
    epilog="Options shown without a value are flags: give `--json`, not `--json true`. "
           "--config works before or after the command.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
)
log = logging.getLogger("pipeline")

EXIT_OK, EXIT_RUN_FAILED, EXIT_ERROR, EXIT_LOCKED = 0, 1, 2, 3

CONFIG_HELP = "TOML config file (also RADAR_CONFIG); may come before or after the command."
# The same option on every command, so `radar status --config X` works as well as `radar --config X status`.
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE", help=CONFIG_HELP)]


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", metavar="FILE", help=CONFIG_HELP,
                                          envvar="RADAR_CONFIG"),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, show_default=False,
                                help="Log more: -v for progress, -vv for debug. A flag to repeat, not a number."),
) -> None:
    """Cocreatie Radar: nightly ingest, scoring and review of co-creation examples."""
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # urllib3 warns at every retry; the run report already gives each failing feed or page one line with its
    # reason, so its retries are shown only with -v.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR if not verbose else level)
    ctx.obj = {"config": config}


def _settings(ctx: typer.Context, config: Path | None = None) -> Settings:
    # A --config after the command wins over one before it, which wins over RADAR_CONFIG.
    try:
        return load_settings(config or ctx.obj["config"])
    except RadarError as exc:
        _fail(exc)


def _fail(exc: Exception, code: int = EXIT_ERROR) -> None:
    typer.echo(f"radar: error: {exc}", err=True)
    raise typer.Exit(code)


def _open_store(settings: Settings, later: list[str] | None = None):
    """Open the configured database; say on stderr which one it is when it is missing or empty.

    With `later`, the note is put there instead, for a command that must print something else first.
    """
    from pipeline.store import open_store

    missing = _database_missing(settings)
    store = open_store(settings)
    try:
        empty = not missing and not store.counts()["articles"]
    except Exception:
        store.close()
        raise
    if missing or empty:
        note = _database_note(settings, "did not exist; created it empty" if missing else "holds no articles yet")
        if later is None:
            typer.echo(note, err=True)
        else:
            later.append(note)
    return store


def _database_missing(settings: Settings) -> bool:
    from pipeline.store import sqlite_file_missing

    return sqlite_file_missing(settings.effective_database_url)


def _shown_url(url: str) -> str:
    # Status output lands in logs and e-mails from cron: never print a database password.
    from pipeline.store import shown_url

    return shown_url(url)


def _database_note(settings: Settings, state: str, hint: bool = True) -> str:
    # A first run after `make demo` without its --config lands here: name the database and the way out.
    shown = _shown_url(settings.effective_database_url)
    advice = (" `radar run` fills it; after `make demo`, give --config data/demo/radar-demo.toml "
              "(or set RADAR_CONFIG) to read the demo's.") if hint else ""
    return f"radar: note: the database {shown} {state}.{advice}"


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (a flag)."),
) -> None:
    """Run the nightly job: fetch feeds and articles, extract, dedupe and store them."""
    from pipeline.nightly import run_nightly, summarise

    settings = _settings(ctx, config)
    missing = _database_missing(settings)
    try:
        report = run_nightly(settings)
    except RunLocked as exc:
        _fail(exc, EXIT_LOCKED)
    except RunCrashed as exc:
        _fail(exc, EXIT_RUN_FAILED)
    except RadarError as exc:
        _fail(exc)
    except OSError as exc:  # the lock file cannot be made: the data directory is not writable
        _fail(_data_dir_error(settings, exc))
    if missing:  # said once the run has made it, so a database that cannot be made stays a one-line error
        typer.echo(_database_note(settings, "did not exist; this run created it", hint=False), err=True)
    # Said after the run, like the note above, so an unusable database stays a one-line error.
    shipped = Settings.model_fields["feeds_file"].default
    if not (config or ctx.obj["config"]) and settings.feeds_file == shipped:  # plain `radar run` on a first try
        typer.echo(f"radar: note: no --config given: reading the real feeds of {settings.feeds_file} into "
                   f"{_shown_url(settings.effective_database_url)} (the demo: --config data/demo/radar-demo.toml)",
                   err=True)
    if not has_contact(settings.user_agent):  # said once here, not per request
        typer.echo(f"radar: warning: user_agent {settings.user_agent!r} gives no contact address; sites ask "
                   "crawlers for one: set user_agent = \"CocreatieRadar/0.1 (+mailto:you@example.org)\"", err=True)
    typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) if as_json else summarise(report))
    raise typer.Exit(EXIT_OK if report.status == "ok" else EXIT_RUN_FAILED)


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    runs: int = typer.Option(5, "--runs", help="How many recent runs to show."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON (a flag)."),
) -> None:
    """Show the last runs, failing feeds and counts."""
    settings = _settings(ctx, config)
    try:
        store = _open_store(settings)
    except RadarError as exc:
        _fail(exc)
    try:
        data = {"database": _shown_url(settings.effective_database_url), "counts": store.counts(),
                "items": store.item_counts(), "runs": store.recent_runs(runs),
                "failing_feeds": [f for f in store.feed_health() if f["last_status"] == "failed"]}
    finally:
        store.close()
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str) if as_json else _status_text(data))


def _status_text(data: dict) -> str:
    lines = [f"Database: {data['database']}",
             "Counts: " + ", ".join(f"{k} {v}" for k, v in data["counts"].items()),
             "Items: " + (", ".join(f"{k} {v}" for k, v in sorted(data["items"].items())) or "none")]
    lines.append("Recent runs:" if data["runs"] else "Recent runs: none yet")
    for run in data["runs"]:
        rep = run["report"] or {}
        counts = _run_counts(run["kind"], rep)
        lines.append(f"  #{run['id']} {run['kind']} {run['started_at']} {run['status']}" + (f" {counts}" if counts else ""))
    lines.append(f"Failing feeds: {len(data['failing_feeds'])}")
    for feed in data["failing_feeds"]:
        lines.append(f"  {feed['name']} ({feed['consecutive_failures']}x): {feed['last_error']}")
    return "\n".join(lines)


# The counts each kind of run records in its report (nightly.RunReport, ingest.IngestReport), in display order.
RUN_COUNTS = {
    "run": (("articles_new", "new"), ("articles_duplicate", "duplicate"), ("articles_failed", "failed"),
            ("scored", "scored"), ("flagged", "flagged")),
    "ingest": (("new", "new"), ("duplicate", "duplicate"), ("already_stored", "already stored"),
               ("invalid", "invalid"), ("conflicts", "conflicting")),
}


def _run_counts(kind: str, report: dict) -> str:
    flat = {**report, **(report.get("scoring") or {})}
    fields = RUN_COUNTS.get(kind) or tuple((k, k) for k, v in report.items() if isinstance(v, int))
    return ", ".join(f"{label} {flat[key]}" for key, label in fields if isinstance(flat.get(key), int))


@app.command("ingest")
def ingest_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    file: Path = typer.Argument(..., help="JSONL with id, text and optional title, url, date, outlet."),
) -> None:
    """Import articles that are already text (one JSON object a line); exit 1 when any line was bad."""
    from pipeline.ingest import ingest_file
    from pipeline.nightly import run_lock
    from pipeline.store import open_store

    settings = _settings(ctx, config)
    try:
        with run_lock(settings):
            store = open_store(settings)  # ingest fills it: stderr stays the list of bad lines
            try:
                report = ingest_file(store, file, settings.near_duplicate_threshold)
            finally:
                store.close()
    except RunLocked as exc:
        _fail(exc, EXIT_LOCKED)
    except RunCrashed as exc:
        _fail(exc, EXIT_RUN_FAILED)
    except RadarError as exc:
        _fail(exc)
    except OSError as exc:  # the lock file cannot be made: the data directory is not writable
        _fail(_data_dir_error(settings, exc))
    typer.echo(f"Ingested {file}: {report.new} new, {report.duplicate} duplicate, "
               f"{report.already_stored} already stored, {len(report.conflicts)} conflicting, "
               f"{len(report.invalid)} invalid")
    bad = report.bad_lines()
    for problem in bad:
        typer.echo(f"radar: {problem}", err=True)
    raise typer.Exit(EXIT_RUN_FAILED if bad else EXIT_OK)


def _data_dir_error(settings: Settings, exc: OSError) -> RadarError:
    return StoreError(f"cannot write to the data directory {settings.data_dir} ({exc.strerror or exc}): "
                      "make it writable or set data_dir to another folder")


@app.command("score")
def score_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    input: Path | None = typer.Option(None, "--input", "-i", help="JSONL with id, text [, title] (default stdin)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write scores (default stdout)."),
) -> None:
    """Score Dutch articles: co-creation probability, flag, sector, type and evidence per line."""
    from pipeline.ingest import parse_jsonl_lines, read_jsonl, split_lines
    from pipeline.score import Scorer

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
    from pipeline.ingest import validate_record

    for number, raw in source:
        record = validate_record(number, raw)
        if isinstance(record, str):
            bad.append(record)
        else:  # the id goes out as it came in (a number stays a number)
            yield {"id": raw["id"], "title": record.title or "", "text": record.text}


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    articles: list[Path] | None = typer.Option(None, "--articles", help="Labelled texts, repeatable (default: settings.train_articles)."),
    labels: list[Path] | None = typer.Option(None, "--labels", help="Their labels, in the same order (default: settings.train_labels)."),
    written: bool = typer.Option(True, "--written/--no-written", help="Also train on data/training/written.jsonl."),
    reviews: bool = typer.Option(True, "--reviews/--no-reviews", help="Also train on the analysts' final labels."),
    folds: int = typer.Option(10, "--folds", help="Grouped (leave-sources-out) cross-validation folds."),
) -> None:
    """Train the detector and the sector and type models; cross-validate; save them with a card."""
    from pipeline.train import gather_examples, train_and_evaluate

    settings = _settings(ctx, config)
    try:
        # Analysts' final labels in the configured database train the models too: reviewing improves them.
        data = gather_examples(articles or settings.train_articles, labels or settings.train_labels, written,
                               database_url=settings.effective_database_url if reviews else None)
        model, metrics = train_and_evaluate(data, settings.model_dir, folds, settings.progress)
    except (RadarError, ValueError) as exc:
        _fail(exc)
    typer.echo(f"Trained model {model.version} on {len(data.real)} real (reviewed: "
               f"{sum(e.origin == 'review' for e in data.real)}) and {len(data.extra)} written texts; "
               f"threshold {model.threshold:.3f}; saved to {settings.model_dir}")
    if metrics:
        typer.echo(cv_text(metrics))


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    input: Path = typer.Option(..., "--input", "-i", help="JSONL with id, title, text [, source]."),
    labels: Path = typer.Option(..., "--labels", "-l", help="JSONL labels in the codebook's record format."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON (a flag)."),
) -> None:
    """Score labelled texts with the shipped model and report detection, sector and type metrics."""
    from pipeline.evaluate import evaluate_model

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


@app.command("review")
def review_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: review_host, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default: review_port; 0 picks a free one)."),
    analyst: str | None = typer.Option(None, "--analyst", help="Analyst name recorded with decisions."),
) -> None:
    """Start the analyst's review web app and print its link."""
    from pipeline.review.analysts import check_token_setting
    from pipeline.review.app import serve

    settings = _settings(ctx, config)
    bind_host = host or settings.review_host
    bind_port = settings.review_port if port is None else port
    try:
        check_token_setting(settings.review_token)
        notes: list[str] = []  # after the link, which scripts read from the first line
        store = _open_store(settings, notes)  # the binding check in serve() needs the registered analysts
    except RadarError as exc:
        _fail(exc)
    try:
        serve(settings, store, host=bind_host, port=bind_port, analyst=analyst or settings.analyst,
              announce=lambda text: (typer.echo(text), [typer.echo(note, err=True) for note in notes]))
    except RadarError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(RadarError(f"cannot serve on {bind_host}:{bind_port}: {exc}; choose another --port"))
    finally:
        store.close()


analysts_app = typer.Typer(help="Analysts' own access tokens for a review app served to others.",
                           no_args_is_help=True)
app.add_typer(analysts_app, name="analysts")


def _with_store(ctx: typer.Context, config: Path | None, action):
    settings = _settings(ctx, config)
    try:
        store = _open_store(settings)
        try:
            return action(store)
        finally:
            store.close()
    except RadarError as exc:
        _fail(exc)


@analysts_app.command("add")
def analysts_add_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    name: str = typer.Argument(..., help="The name recorded with the analyst's decisions."),
    lead: bool = typer.Option(False, "--lead", help="May settle disputes they took no part in."),
) -> None:
    """Register an analyst and print their token once (only its hash is stored)."""
    from pipeline.review.analysts import add_analyst, clean_name

    try:
        name = clean_name(name)
    except RadarError as exc:
        _fail(exc)
    token = _with_store(ctx, config, lambda store: add_analyst(store, name, lead=lead))
    typer.echo(token)
    typer.echo(f"Added analyst {name}{' (lead)' if lead else ''}. This is the only time the token is shown: "
               "give it to them privately. They open the review link with ?token=TOKEN once, or send the "
               "X-Radar-Token header. Lost it? `radar analysts rotate NAME`.", err=True)


@analysts_app.command("list")
def analysts_list_cmd(ctx: typer.Context, config: ConfigOption = None) -> None:
    """List the registered analysts, their role and whether they are disabled (never their tokens)."""
    rows = _with_store(ctx, config, lambda store: store.list_analysts())
    if not rows:
        typer.echo("No analysts: the review app runs single-user on 127.0.0.1. Add one with `radar analysts add NAME`.")
    for row in rows:
        role = "lead" if row["is_lead"] else "analyst"
        typer.echo(f"{row['name']}\t{role}\tadded {row['created_at']}" + ("\tdisabled" if row["disabled"] else ""))


@analysts_app.command("remove")
def analysts_remove_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The analyst to disable."),
    config: ConfigOption = None,
) -> None:
    """Disable an analyst: their token and open sessions stop working; their decisions stay."""
    if not _with_store(ctx, config, lambda store: store.disable_analyst(name)):
        _fail(RadarError(f"there is no analyst {name!r}: see `radar analysts list`"))
    typer.echo(f"Disabled {name}; `radar analysts rotate {name}` gives them a new token.")


@analysts_app.command("rotate")
def analysts_rotate_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The analyst."),
    config: ConfigOption = None,
) -> None:
    """Print a new token for an analyst (enabling them again); the old token stops working."""
    from pipeline.review.analysts import rotate_token

    typer.echo(_with_store(ctx, config, lambda store: rotate_token(store, name)))
    typer.echo(f"New token for {name}, shown only now; the old one no longer works.", err=True)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    format: str = typer.Option("jsonl", "--format", "-f", help="jsonl, csv or parquet."),
    status: str = typer.Option("reviewed", "--status", help="reviewed (final labels), flagged or all articles."),
    since: str | None = typer.Option(None, "--since", help="Articles published on or after DATE (or 7d, 2w)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
) -> None:
    """Export the reviewed dataset: text, metadata, final labels and provenance (columns in the README)."""
    from pipeline.export import iter_export_rows, parse_since, write_export

    settings = _settings(ctx, config)
    counted = [0]

    def counting(rows):  # rows stream from the store to the file: a million articles never sit in memory
        for row in rows:
            counted[0] += 1
            yield row

    try:
        if format == "parquet" and output is None:
            raise RadarError("parquet is binary: give --output FILE")
        store = _open_store(settings)
        try:
            data = write_export(counting(iter_export_rows(store, status, parse_since(since))), format, output)
        finally:
            store.close()
    except RadarError as exc:
        _fail(exc)
    if data is not None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        typer.echo(f"Exported {counted[0]} rows to {output}", err=True)


@app.command("digest")
def digest_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    since: str | None = typer.Option(
        None, "--since", help="Stories published on or after DATE, or within a span (7d, 2w). Default 7d, "
                              "unless --decided-since is given."),
    decided_since: str | None = typer.Option(
        None, "--decided-since", help="Stories whose label became final on or after DATE or within a span."),
    format: str = typer.Option("md", "--format", "-f", help="md, html, text, or eml: an e-mail with the HTML "
                                                            "and a plain-text alternative."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
    readers: bool = typer.Option(True, "--readers/--no-readers",
                                 help="Put the examples readers submitted in a section 'Ingezonden door lezers'."),
) -> None:
    """Write the accepted co-creation examples in Dutch, grouped by sector, ready for a newsletter."""
    from pipeline.codebook import load_codebook
    from pipeline.digest import FORMATS, digest_groups, parse_window, render_digest, split_readers

    settings = _settings(ctx, config)
    try:
        if format not in FORMATS:
            raise RadarError(f"--format must be one of {', '.join(FORMATS)}")
        window, codebook = parse_window(since, decided_since), load_codebook()
        store = _open_store(settings)
        try:
            groups = digest_groups(store, codebook, window)
            groups, submitted = split_readers(store, groups) if readers else (groups, [])
        finally:
            store.close()
        text = render_digest(groups, format, codebook, window, submitted)
    except RadarError as exc:
        _fail(exc)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text)


@app.command("backfill")
def backfill_cmd(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(..., metavar="PATH_OR_GLOB...", help="WARC files (plain or .gz), or quoted globs."),
    config: ConfigOption = None,
    scheduler: str = typer.Option("", "--scheduler", metavar="tcp://HOST:PORT",
                                  help="A running Dask scheduler; default: a local cluster on this machine."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes of the local cluster."),
    database_url: str = typer.Option("", "--database-url", metavar="URL",
                                     help="The store (e.g. postgresql+psycopg://radar@dbhost/radar); default: "
                                          "the configured database."),
    since: str | None = typer.Option(None, "--since", metavar="DATE", help="Records crawled on or after DATE."),
    until: str | None = typer.Option(None, "--until", metavar="DATE", help="Records crawled on or before DATE."),
    hosts_file: Path | None = typer.Option(None, "--hosts-file", metavar="FILE",
                                           help="Keep only these hosts (one a line); default: the feed list's."),
    all_hosts: bool = typer.Option(False, "--all-hosts", help="Keep every host (a flag)."),
    partition_bytes: int = typer.Option(64 * 1024 * 1024, "--partition-bytes", min=1,
                                        help="Files larger than this are cut into record ranges of about this size."),
    batch: int = typer.Option(50, "--batch", min=1, help="Records per stored batch and checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (a flag)."),
) -> None:
    """Backfill archived news from WARC files on a Dask cluster: the nightly stages, checkpointed per partition."""
    from datetime import date

    from pipeline.backfill import BackfillOptions, report_dict, run_backfill, summarise

    settings = _settings(ctx, config)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    try:
        days = [date.fromisoformat(d) if d else None for d in (since, until)]
    except ValueError as exc:
        _fail(RadarError(f"--since and --until take an ISO date such as 2024-05-01 ({exc})"))
    options = BackfillOptions(scheduler=scheduler, workers=workers, since=days[0], until=days[1],
                              hosts_file=hosts_file, all_hosts=all_hosts, partition_bytes=partition_bytes,
                              batch_records=batch)
    try:
        report = run_backfill(settings, paths, options)
    except RadarError as exc:
        _fail(exc)
    typer.echo(json.dumps(report_dict(report), ensure_ascii=False, indent=2) if as_json else summarise(report))
    raise typer.Exit(EXIT_OK if report.status == "ok" else EXIT_RUN_FAILED)


@app.command("config")
def config_cmd(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Print the effective settings (defaults < config file < RADAR_* environment)."""
    settings = _settings(ctx, config)
    values = settings.model_dump(mode="json")
    values["effective_database_url"] = _shown_url(settings.effective_database_url)
    if values.get("database_url"):
        values["database_url"] = _shown_url(values["database_url"])
    for key, value in values.items():
        typer.echo(f"{key} = {json.dumps(value, ensure_ascii=False)}")


# -- the public collection and readers' submissions (issue 12) -------------------------------------------------
@app.command("publish")
def publish_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write the static site to."),
    force: bool = typer.Option(False, "--force", help="Overwrite files in the folder that publish did not write "
                               "(it still never writes through a symlink)."),
) -> None:
    """Write the public collection (Dutch pages and Atom feeds) as a static site; only changed files are rewritten."""
    from pipeline.codebook import load_codebook
    from pipeline.publish import publish_site

    settings = _settings(ctx, config)
    try:
        store = _open_store(settings)
        try:
            counts = publish_site(store, load_codebook(), output, form_url=settings.public_form_url,
                                  base_url=settings.public_base_url, force=force)
        finally:
            store.close()
    except RadarError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(RadarError(f"cannot write the site to {output}: {exc}; choose a folder you may write in"))
    typer.echo(f"Published {counts['examples']} examples to {output}: {counts['written']} files written, "
               f"{counts['unchanged']} unchanged, {counts['removed']} removed.")


@app.command("public")
def public_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: public_host, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default: public_port; 0 picks a free one)."),
) -> None:
    """Serve the public collection live and the form "Deel een voorbeeld" (a separate app from `radar review`)."""
    from pipeline.public.app import serve_public

    settings = _settings(ctx, config)
    bind_host, bind_port = host or settings.public_host, settings.public_port if port is None else port
    try:
        store = _open_store(settings)
    except RadarError as exc:
        _fail(exc)
    try:
        serve_public(settings, store, host=bind_host, port=bind_port, announce=typer.echo)
    except OSError as exc:
        _fail(RadarError(f"cannot serve on {bind_host}:{bind_port}: {exc}; choose another --port"))
    finally:
        store.close()


submissions_app = typer.Typer(help="Readers' submissions: list them, forget one, purge personal fields.",
                              no_args_is_help=True)
app.add_typer(submissions_app, name="submissions")


@submissions_app.command("list")
def submissions_list_cmd(ctx: typer.Context, config: ConfigOption = None) -> None:
    """List the submissions, newest first: id, time, status, reason, article, whether name or e-mail is kept."""
    rows = _with_store(ctx, config, lambda store: store.list_submissions())
    if not rows:
        typer.echo("No submissions.")
    for s in rows:
        personal = ",".join(k for k in ("name", "email") if getattr(s, k)) or "-"
        typer.echo(f"{s.id}\t{s.created_at}\t{s.status}\t{s.reason or '-'}\t"
                   f"article {s.article_id if s.article_id is not None else '-'}\tpersonal {personal}\t{s.url}")


@submissions_app.command("delete")
def submissions_delete_cmd(
    ctx: typer.Context,
    submission_id: int = typer.Argument(..., metavar="ID", help="The submission to delete (see `list`)."),
    config: ConfigOption = None,
) -> None:
    """Delete one submission with its note, name and e-mail (a request to be forgotten); the article stays."""
    if not _with_store(ctx, config, lambda store: store.delete_submission(submission_id)):
        _fail(RadarError(f"there is no submission {submission_id}: see `radar submissions list`"))
    typer.echo(f"Deleted submission {submission_id}.")


@submissions_app.command("purge")
def submissions_purge_cmd(
    ctx: typer.Context,
    older_than: str = typer.Option("90d", "--older-than", help="Age (90d, 12w) or a date: older ones lose "
                                                                 "name, e-mail and address hash."),
    config: ConfigOption = None,
) -> None:
    """Remove the personal fields (name, e-mail, address hash) of submissions older than the given age."""
    from pipeline.export import parse_since

    try:
        before = parse_since(older_than)
    except RadarError:
        _fail(RadarError(f"--older-than {older_than!r}: give an age such as 90d or 12w, or a date (2026-03-01)"))
    count = _with_store(ctx, config, lambda store: store.purge_submission_personal(before))
    typer.echo(f"Removed name, e-mail and address hash from {count} submission(s) made before {before}.")


if __name__ == "__main__":  # pragma: no cover
    app()
