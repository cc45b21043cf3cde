"""Run the installed `radar` console script in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RADAR = str(Path(sys.executable).parent / "radar")


def radar(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300):
    """Run the installed radar command without inherited RADAR_* variables; return the result."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_")}
    full_env.update(env or {})
    return subprocess.run([RADAR, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)
