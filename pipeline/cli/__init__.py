"""The `radar` command: thin subcommands that turn errors into messages and exit codes.

The app, its global options and the order of the commands are here; the commands live in modules by group
(runs, models, review, public) and share their helpers through `pipeline.cli.common`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from pipeline.cli import models, public, review, runs
from pipeline.cli.common import CONFIG_HELP, EXIT_ERROR, EXIT_LOCKED, EXIT_OK, EXIT_RUN_FAILED, ConfigOption
from pipeline.cli.models import cv_text

__all__ = ["CONFIG_HELP", "EXIT_ERROR", "EXIT_LOCKED", "EXIT_OK", "EXIT_RUN_FAILED", "ConfigOption", "app", "cv_text"]

# Plain click help (rich_markup_mode=None): typer's rich help labels every flag `<bool>` and a count
# `<int>`, which reads as if `--json true` or `-v 2` were wanted.
app = typer.Typer(
    help="Cocreatie Radar: find co-creation at social organisations in Dutch news.",
    epilog="Options shown without a value are flags: give `--json`, not `--json true`. "
           "--config works before or after the command.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
)


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


# Registered here, in the order `radar --help` lists them (typer lists the groups after the commands).
for _name, _command in (
    ("run", runs.run_cmd), ("status", runs.status_cmd), ("ingest", models.ingest_cmd), ("score", models.score_cmd),
    ("train", models.train_cmd), ("eval", models.eval_cmd), ("review", review.review_cmd),
    ("export", review.export_cmd), ("digest", review.digest_cmd), ("backfill", runs.backfill_cmd),
    ("config", runs.config_cmd), ("publish", public.publish_cmd), ("public", public.public_cmd),
):
    app.command(_name)(_command)
app.add_typer(review.analysts_app, name="analysts")
app.add_typer(public.submissions_app, name="submissions")
del _name, _command
