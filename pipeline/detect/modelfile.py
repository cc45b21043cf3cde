"""Model files: a directory of model.skops, card.json and card.md, written as one and loaded only when safe.

Loading checks, in this order and before skops reads anything: the card's codebook version, the
SHA-256 of model.skops against the card, and then every type the file names against an exact
allowlist (skops can call a trusted function with stored arguments while loading, so a prefix such
as `numpy.` would let a crafted file run code). The file is read into memory once, so the bytes
that were checked are the bytes that are loaded.

The hash catches a model file that was swapped, damaged or edited without its card; someone who can
rewrite both can also rewrite the hash, which is why the type allowlist is the real guard.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from collections.abc import Callable

import skops.io as sio

from pipeline.codebook import load_codebook
from pipeline.errors import ModelError, ModelMissing

MODEL_FILE = "model.skops"
CARD_FILE = "card.json"
# A trained model is a few MB; a file far beyond that is not ours and is not read into memory.
MAX_MODEL_BYTES = 512 * 1024 * 1024


def save_parts(parts: dict, directory: Path, card: dict, extra_files: dict[str, str] | None,
               render_card_md: Callable[[dict], str]) -> Path:
    """Write model.skops, card.json (with the file's SHA-256), card.md and extra files; swap them in as one.

    The card is updated in place with `model_sha256`. A nightly run loading the model meanwhile sees
    the old model and card or the new ones, never a new model with an old card.
    """
    staging = directory.with_name(f".{directory.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    sio.dump(parts, staging / MODEL_FILE, compression=8)
    card["model_sha256"] = hashlib.sha256((staging / MODEL_FILE).read_bytes()).hexdigest()
    (staging / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (staging / "card.md").write_text(render_card_md(card), encoding="utf-8")
    for name, text in (extra_files or {}).items():
        (staging / name).write_text(text, encoding="utf-8")
    swap_directory(staging, directory)
    return directory


def swap_directory(staging: Path, directory: Path) -> None:
    """Replace directory by staging with two renames, removing the old one afterwards."""
    retired = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if directory.exists():
        directory.rename(retired)
    staging.rename(directory)
    shutil.rmtree(retired, ignore_errors=True)


def load_parts(directory: Path, trusted_types: frozenset[str]) -> tuple[dict, dict]:
    """Return (parts, card) of a saved model after checking its codebook, its hash and its types."""
    card_path, model_path = directory / CARD_FILE, directory / MODEL_FILE
    if not card_path.is_file() or not model_path.is_file():
        raise ModelMissing(f"no trained model in {directory}: run `radar train` first")
    card = read_card(card_path)
    check_codebook(card, directory)
    data = read_checked_bytes(model_path, card)
    try:
        refuse_untrusted_types(sio.get_untrusted_types(data=data), trusted_types, model_path)
        parts = sio.loads(data, trusted=sorted(trusted_types))
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file must stop scoring, not crash the run
        raise ModelError(f"cannot load {model_path}: {exc!r}; retrain with `radar train`") from exc
    if not isinstance(parts, dict):
        raise ModelError(f"{model_path} does not hold a radar model; retrain with `radar train`")
    return parts, card


def read_card(card_path: Path) -> dict:
    """Return the model card, or raise ModelError when it is unreadable or not a JSON object."""
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the model card {card_path}: {exc}; retrain with `radar train`") from exc
    if not isinstance(card, dict):
        raise ModelError(f"the model card {card_path} is not a JSON object; retrain with `radar train`")
    return card


def check_codebook(card: dict, directory: Path) -> None:
    """Refuse a model trained for another codebook version than this code's."""
    codebook = load_codebook()
    if card.get("codebook_version") != codebook.version:
        raise ModelError(f"the model in {directory} was trained for codebook version {card.get('codebook_version')!r}, "
                         f"but this code uses version {codebook.version!r}: retrain with `radar train`")


def read_checked_bytes(model_path: Path, card: dict) -> bytes:
    """Return the model file's bytes when their SHA-256 is the one on the card."""
    expected = card.get("model_sha256")
    if not isinstance(expected, str) or not expected:
        raise ModelError(f"the model card beside {model_path} records no model_sha256 (written by an older "
                         "version): retrain with `radar train`")
    try:
        if model_path.stat().st_size > MAX_MODEL_BYTES:
            raise ModelError(f"{model_path} is larger than {MAX_MODEL_BYTES} bytes, so it is not a radar model; "
                             "retrain with `radar train`")
        data = model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {model_path}: {exc}; retrain with `radar train`") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise ModelError(f"{model_path} does not match its card (sha256 {actual[:12]}..., card says "
                         f"{expected[:12]}...): it was changed after training; restore it or retrain with `radar train`")
    return data


def refuse_untrusted_types(untrusted: list[str], trusted_types: frozenset[str], model_path: Path) -> None:
    """Raise ModelError naming every type skops asks about that is not on the exact allowlist."""
    refused = sorted(set(untrusted) - trusted_types)
    if refused:
        raise ModelError(f"{model_path} holds types that the radar's trained models never contain: "
                         f"{refused[:10]!r}; not loading it (retrain with `radar train`)")
