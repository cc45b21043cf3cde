"""Run `radar` in this process with Typer's CliRunner, or as the installed console script in a subprocess.

Most tests use `invoke`: the same app, arguments, environment, stdout, stderr and exit code, without starting
an interpreter and importing the models again for each command. `radar` (a real process) is for the tests
about the process itself: signals, a lock held by another process, OS-level pipes, the script starting.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner, Result

from pipeline.cli import app

RADAR = str(Path(sys.executable).parent / "radar")


def radar(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run the installed radar command without inherited RADAR_* variables; return the result."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_")}
    full_env.update(env or {})
    return subprocess.run([RADAR, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def invoke(*args: str, env: dict[str, str] | None = None, input: bytes | str | None = None) -> Result:
    """Run radar in this process, in the current folder, without inherited RADAR_* variables; return the result.

    An exception the command does not turn into a message propagates (catch_exceptions=False), so a test
    fails on it as a subprocess test failed on a traceback in stderr.
    """
    # None unsets the variable during the run: a RADAR_* around the test session must not reach the command.
    overrides: dict[str, str | None] = {name: None for name in os.environ if name.startswith("RADAR_")}
    overrides.update(env or {})
    with fresh_logging():
        return CliRunner().invoke(app, list(args), input=input, env=overrides, catch_exceptions=False,
                                  prog_name="radar")


# The loggers whose level the CLI sets (pipeline/cli/__init__.py, runs/backfill.py), made before a run so
# that their level is put back even when their library is first imported during it.
CLI_LOGGERS = ("urllib3.connectionpool", "distributed")


@contextmanager
def fresh_logging() -> Iterator[None]:
    """Give the command an unconfigured root logger, as in a new process, and undo its logging set-up after.

    The CLI calls logging.basicConfig(stream=sys.stderr), which does nothing while pytest's capture
    handlers sit on the root logger: its warnings would not reach result.stderr. The handler it does add
    writes to this run's stderr, which is gone after the run, and the levels it sets would leak into the
    next test; so handlers and levels are put back as they were.
    """
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {logger: logger.level for logger in [root, *map(logging.getLogger, CLI_LOGGERS), *_named_loggers()]}
    root.handlers.clear()
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        for logger, level in levels.items():
            logger.setLevel(level)


def _named_loggers() -> list[logging.Logger]:
    """Return every named logger made so far (not the placeholders of their parents)."""
    return [item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)]
