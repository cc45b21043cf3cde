"""`radar run`, `status`, `backfill` and `config`: the nightly job, its record, archived news and the settings."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline.cli.common import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    ConfigOption,
    _database_missing,
    _database_note,
    _fail,
    _open_existing_store,
    _settings,
    run_errors,
    _shown_url,
)
from pipeline.errors import ConfigError, RadarError
from pipeline.settings import Settings, has_contact


def run_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (a flag)."),
) -> None:
    """Run the nightly job: fetch feeds and articles, extract, dedupe and store them."""
    from pipeline.runs.nightly import run_nightly, summarise

    settings = _settings(ctx, config)
    _check_runtime_feeds_file(settings)
    missing = _database_missing(settings)
    with run_errors(settings):
        report = run_nightly(settings)
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


def _check_runtime_feeds_file(settings: Settings) -> None:
    """Fail with the way out when the feed list is a runtime file (under data_dir) that was never written."""
    # The demo config reads data/local/demo/feeds.toml, which `make demo` writes with the port it serves on.
    feeds = settings.feeds_file
    if not feeds.exists() and feeds.resolve().is_relative_to(settings.data_dir.resolve()):
        _fail(ConfigError(f"the feed list {feeds} does not exist yet: it is written by `make demo`, with the port "
                          "it serves the demo site on; run `make demo` first (or set feeds_file in the config)"))


def status_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    runs: int = typer.Option(5, "--runs", help="How many recent runs to show."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON (a flag)."),
) -> None:
    """Show the last runs, failing feeds and counts."""
    settings = _settings(ctx, config)
    try:
        store = _open_existing_store(settings)
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

    from pipeline.runs.backfill import BackfillOptions, report_dict, run_backfill, summarise

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


def config_cmd(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Print the effective settings (defaults < config file < RADAR_* environment)."""
    settings = _settings(ctx, config)
    values = settings.model_dump(mode="json")
    values["effective_database_url"] = _shown_url(settings.effective_database_url)
    if values.get("database_url"):
        values["database_url"] = _shown_url(values["database_url"])
    for key, value in values.items():
        typer.echo(f"{key} = {json.dumps(value, ensure_ascii=False)}")
