"""The licence file and the lock: every pin in constraints.txt lies in pyproject.toml's ranges, and is installed."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def pins() -> dict[str, str]:
    """Return constraints.txt as {canonical name: exact version}."""
    found = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            found[canonicalize_name(name)] = pinned
    return found


def requirements() -> list[Requirement]:
    """Return every dependency pyproject.toml names (the extras' too), minus the project's own extras."""
    names = PROJECT["dependencies"] + [r for extra in PROJECT["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in names if canonicalize_name(Requirement(r).name) != PROJECT["name"]]


def test_the_licence_file_is_the_mit_licence_pyproject_names():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_every_dependency_is_pinned_inside_its_range():
    locked = pins()
    outside = [f"{r} (locked {locked.get(canonicalize_name(r.name))})" for r in requirements()
               if locked.get(canonicalize_name(r.name)) is None
               or not r.specifier.contains(locked[canonicalize_name(r.name)], prereleases=True)]
    assert outside == []


def test_the_environment_running_the_suite_is_the_locked_one():
    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    drift = {r.name: (pins()[canonicalize_name(r.name)], installed(r.name)) for r in requirements()
             if installed(r.name) != pins()[canonicalize_name(r.name)]}
    assert drift == {}
