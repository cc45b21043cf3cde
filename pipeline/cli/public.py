"""`radar publish`, `public` and `submissions`: the public collection and readers' submissions (issue 12)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.common import (
    ConfigOption, _fail, _open_existing_store, _open_store, _serve_then_close, _settings, _with_store,
)
from pipeline.errors import RadarError


def publish_cmd(
    ctx: typer.Context,
    config: ConfigOption = None,
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write the static site to."),
    force: bool = typer.Option(False, "--force", help="Overwrite files in the folder that publish did not write "
                               "(it still never writes through a symlink)."),
) -> None:
    """Write the public collection (Dutch pages and Atom feeds) as a static site; only changed files are rewritten."""
    from pipeline.codebook import load_codebook
    from pipeline.public.publish import publish_site

    settings = _settings(ctx, config)
    try:
        store = _open_existing_store(settings)  # publishing reads the database: a missing one is not created
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
    _serve_then_close(store, bind_host, bind_port,
                      lambda: serve_public(settings, store, host=bind_host, port=bind_port, announce=typer.echo))


submissions_app = typer.Typer(help="Readers' submissions: list them, forget one, purge personal fields.",
                              no_args_is_help=True)


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
    from pipeline.research.export import parse_since

    try:
        before = parse_since(older_than)
    except RadarError:
        _fail(RadarError(f"--older-than {older_than!r}: give an age such as 90d or 12w, or a date (2026-03-01)"))
    count = _with_store(ctx, config, lambda store: store.purge_submission_personal(before))
    typer.echo(f"Removed name, e-mail and address hash from {count} submission(s) made before {before}.")
