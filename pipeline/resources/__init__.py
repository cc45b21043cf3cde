"""The files the package ships: codebook, lexicon, feed list, training texts and the trained model.

They are read through importlib.resources, so an installed package (a wheel in site-packages, a Dask worker's
environment) finds them without the repository checkout beside it. User paths (model_dir, feeds_file) stay
settings whose defaults point here.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Return the file-system path of a shipped resource (pipeline/resources/<parts>)."""
    found = files(__name__).joinpath(*parts)
    # pip installs wheels as directories, so the resource is a real path; the skops loader and the lexicon's
    # glob need one. A zipped import (zipimport) is not supported: say so rather than fail obscurely later.
    if not isinstance(found, Path):
        raise RuntimeError(f"the radar's resources must be files on disk, not inside {found!r}: install the "
                           "package with pip (not as a zip)")
    return found


def in_source_checkout() -> bool:
    """Tell whether the package runs from a source checkout (pyproject.toml beside it) rather than an install."""
    return (Path(__file__).resolve().parents[2] / "pyproject.toml").is_file()


CODEBOOK_FILE = resource_path("codebook.toml")
FEEDS_FILE = resource_path("feeds.toml")
LEXICON_DIR = resource_path("lexicon")
MODEL_DIR = resource_path("models", "radar")
WRITTEN_FILE = resource_path("training", "written.jsonl")
