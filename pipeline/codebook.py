"""The codebook as data (pipeline/resources/codebook.toml): label names, Dutch display names, descriptions and version."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.resources import CODEBOOK_FILE

CODEBOOK_PATH = CODEBOOK_FILE


@dataclass(frozen=True)
class Codebook:
    """Label sets and descriptions of one codebook version."""

    version: str
    sectors: tuple[str, ...]
    types: tuple[str, ...]
    raw: dict

    def label_of(self, name: str | None) -> str:
        """Return the Dutch display name of a sector or type (its code, capitalised, when it has none)."""
        entry = self._entry(name)
        return entry.get("label") or (name or "").replace("_", " ").capitalize()

    def lead_of(self, type_name: str | None) -> str:
        """Return a type's one-line Dutch explanation for readers outside the tool ('' when it has none)."""
        return self._entry(type_name).get("lead", "")

    def _entry(self, name: str | None) -> dict:
        return next((e for e in self.raw.get("sectors", []) + self.raw.get("types", []) if e["name"] == name), {})


@lru_cache(maxsize=4)
def load_codebook(path: Path = CODEBOOK_PATH) -> Codebook:
    """Read the shipped codebook."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the codebook {path}: {exc}") from exc
    return Codebook(version=str(raw["version"]), sectors=tuple(s["name"] for s in raw["sectors"]),
                    types=tuple(t["name"] for t in raw["types"]), raw=raw)
