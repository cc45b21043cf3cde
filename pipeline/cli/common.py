"""What every `radar` subcommand shares: exit codes, the --config option, settings, errors and the store.

The command modules import from here and the package's `__init__` registers them, so nothing here imports back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from pipeline.errors import RadarError, RunCrashed, RunLocked, StoreError
from pipeline.settings import Settings, load_settings

log = logging.getLogger("pipeline")

EXIT_OK, EXIT_RUN_FAILED, EXIT_ERROR, EXIT_LOCKED = 0, 1, 2, 3

CONFIG_HELP = "TOML config file (also RADAR_CONFIG); may come before or after the command."
# The same option on every command, so `radar status --config X` works as well as `radar --config X status`.
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE", help=CONFIG_HELP)]


def _settings(ctx: typer.Context, config: Path | None = None) -> Settings:
    # A --config after the command wins over one before it, which wins over RADAR_CONFIG.
    try:
        return load_settings(config or ctx.obj["config"])
    except RadarError as exc:
        _fail(exc)


def _fail(exc: Exception, code: int = EXIT_ERROR) -> NoReturn:
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


def _open_existing_store(settings: Settings):
    """Open the configured database for a read-only command; a missing one reads as empty and is not created.

    Opening a missing SQLite file would create it (and its folder): a look at `radar status` must leave
    nothing behind. So the command reads an empty in-memory database instead (the same counts, columns and
    JSON keys as a new one), and the note says the real one does not exist yet.
    """
    from pipeline.store import open_store

    if not _database_missing(settings):
        return _open_store(settings)
    typer.echo(_database_note(settings, "does not exist yet; nothing was created"), err=True)
    return open_store(settings.model_copy(update={"database_url": "sqlite://"}))


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


def _data_dir_error(settings: Settings, exc: OSError) -> RadarError:
    return StoreError(f"cannot write to the data directory {settings.data_dir} ({exc.strerror or exc}): "
                      "make it writable or set data_dir to another folder")


def _with_store(ctx: typer.Context, config: Path | None, action, opener=None):
    """Return `action(store)` on the configured database (opened by `opener`, default _open_store), then close it."""
    settings = _settings(ctx, config)
    try:
        store = (opener or _open_store)(settings)
        try:
            return action(store)
        finally:
            store.close()
    except RadarError as exc:
        _fail(exc)


def _serve_then_close(store, host: str, port: int, run) -> None:
    """Run a web app's serve call on an open store and close the store after; a refused bind is one line."""
    try:
        run()
    except RadarError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(RadarError(f"cannot serve on {host}:{port}: {exc}; choose another --port"))
    finally:
        store.close()


def _with_existing_store(ctx: typer.Context, config: Path | None, action):
    """Return `action(store)` for a read-only command, never creating a missing database (see _open_existing_store)."""
    return _with_store(ctx, config, action, opener=_open_existing_store)


@contextmanager
def run_errors(settings: Settings) -> Iterator[None]:
    """Turn the errors of a command that takes the run lock into one line and its exit code."""
    try:
        yield
    except RunLocked as exc:
        _fail(exc, EXIT_LOCKED)
    except RunCrashed as exc:
        _fail(exc, EXIT_RUN_FAILED)
    except RadarError as exc:
        _fail(exc)
    except OSError as exc:  # the lock file cannot be made: the data directory is not writable
        _fail(_data_dir_error(settings, exc))
