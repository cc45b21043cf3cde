"""`radar review`, `analysts`, `export` and `digest`: the analysts' work and what comes of it."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pipeline.cli.common import (
    ConfigOption,
    _fail,
    _open_existing_store,
    _serve_then_close,
    _open_store,
    _settings,
    _with_existing_store,
    _with_store,
)
from pipeline.errors import RadarError


def check_port(value: int | None) -> int | None:
    """Refuse a port outside 0-65535 with the range; waitress would bind a random port for it instead."""
    if value is not None and not 0 <= value <= 65535:
        raise typer.BadParameter(f"{value} is not a port: give 0-65535 (0 picks a free one)")
    return value


def review_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: review_host, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", callback=check_port,
                                    help="Port, 0-65535 (default: review_port; 0 picks a free one)."),
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

    def announce(text: str) -> None:
        typer.echo(text)
        for note in notes:
            typer.echo(note, err=True)

    _serve_then_close(store, bind_host, bind_port, lambda: serve(
        settings, store, host=bind_host, port=bind_port, analyst=analyst or settings.analyst, announce=announce))


analysts_app = typer.Typer(help="Analysts' own access tokens for a review app served to others.",
                           no_args_is_help=True)


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
    rows = _with_existing_store(ctx, config, lambda store: store.list_analysts())
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


def export_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    format: str = typer.Option("jsonl", "--format", "-f", help="jsonl, csv or parquet."),
    status: str = typer.Option("reviewed", "--status", help="reviewed (final labels), flagged or all articles."),
    since: str | None = typer.Option(None, "--since", help="Articles published on or after DATE (or 7d, 2w)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
) -> None:
    """Export the reviewed dataset: text, metadata, final labels and provenance (columns in the README)."""
    from pipeline.research.export import iter_export_rows, parse_since, write_export

    settings = _settings(ctx, config)
    counted = [0]

    def counting(rows):  # rows stream from the store to the file: a million articles never sit in memory
        for row in rows:
            counted[0] += 1
            yield row

    try:
        if format == "parquet" and output is None:
            raise RadarError("parquet is binary: give --output FILE")
        store = _open_existing_store(settings)
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
    from pipeline.public.digest import FORMATS, digest_groups, parse_window, render_digest, split_readers

    settings = _settings(ctx, config)
    try:
        if format not in FORMATS:
            raise RadarError(f"--format must be one of {', '.join(FORMATS)}")
        window, codebook = parse_window(since, decided_since), load_codebook()
        store = _open_existing_store(settings)
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
