"""`pip install .` outside the checkout gives a radar that finds its codebook, lexicon, feed list and model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import venv

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the package installed from a copy of the source (not editable); its bin folder."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"  # a copy, so the build's egg-info and build/ never land in the checkout
    shutil.copytree(ROOT / "pipeline", source / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    target = subprocess.run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies come from this test run's environment (nothing is downloaded for them); a .pth line only
    # adds that folder to sys.path, it does not run its .pth files, so the editable checkout stays out of reach.
    with open(os.path.join(target, "radar-test-deps.pth"), "w", encoding="utf-8") as pth:
        pth.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
                   check=True, capture_output=True, cwd=base, timeout=600)
    shutil.rmtree(source)  # what runs below can only come from the installed copy
    return bin_dir, base


@pytest.mark.slow
def test_the_installed_package_runs_from_site_packages(installed):
    bin_dir, base = installed
    where = subprocess.run([bin_dir / "python", "-c", "import pipeline, pipeline.resources as r; "
                            "print(pipeline.__file__); print(r.MODEL_DIR)"],
                           capture_output=True, text=True, check=True, cwd=base).stdout.split()
    assert all("site-packages" in path and str(ROOT) not in path for path in where)


@pytest.mark.slow
def test_radar_score_on_one_line_works_from_a_wheel_install(installed):
    bin_dir, base = installed
    line = json.dumps({"id": "a1", "title": "Bewoners ontwerpen samen met de gemeente hun park",
                       "text": "In vijf avonden tekenden bewoners samen met de gemeente het nieuwe park."})
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_")}
    done = subprocess.run([bin_dir / "radar", "score"], input=line + "\n", capture_output=True, text=True,
                          cwd=base, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    [scored] = [json.loads(out) for out in done.stdout.splitlines()]
    assert scored["id"] == "a1" and 0.0 <= scored["cocreation_score"] <= 1.0 and scored["sector"]
    assert scored["model_version"] and scored["codebook_version"]
    assert not (base / "data").exists()  # scoring created no runtime folder beside the caller


@pytest.mark.slow
def test_radar_train_refuses_to_overwrite_the_model_an_install_ships(installed):
    bin_dir, base = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_")}
    done = subprocess.run([bin_dir / "radar", "train", "--no-written", "--no-reviews"], capture_output=True,
                          text=True, cwd=base, env=env, timeout=300)
    assert done.returncode == 2  # the CLI's exit code for an error in settings or input
    assert "the model the installed package ships; set model_dir" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, no traceback
    # A folder of one's own passes this check: the next complaint is about the (absent) training texts instead.
    env["RADAR_MODEL_DIR"] = str(base / "my-model")
    done = subprocess.run([bin_dir / "radar", "train", "--no-written", "--no-reviews"], capture_output=True,
                          text=True, cwd=base, env=env, timeout=300)
    assert "installed package ships" not in done.stderr


def test_every_shipped_resource_is_declared_as_package_data():
    import tomllib
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = declared["tool"]["setuptools"]["package-data"]["pipeline.resources"]
    resources = ROOT / "pipeline" / "resources"
    shipped = {p.relative_to(resources) for p in resources.rglob("*") if p.is_file() and "__pycache__" not in p.parts
               and p.suffix != ".py"}
    covered = {p.relative_to(resources) for pattern in patterns for p in resources.glob(pattern) if p.is_file()}
    assert shipped and shipped == covered

