"""Checkpoints that survive a crash: a folder per step, written under a temporary name and renamed.

    RUN_DIR/step-00000500/model.safetensors   the weights (safetensors: no pickle, shared tensors kept)
                         /state.pt            optimizer state and RNG states: tensors and numbers only,
                                              read with torch.load(weights_only=True), never arbitrary objects
                         /meta.json           model and training configs, task, step, metrics
    RUN_DIR/latest                            the name of the newest complete checkpoint folder

A crash at any moment leaves either the previous checkpoint or the new one, never half of one:
the folder is complete before it is renamed into place, and `latest` is replaced atomically after.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from lstmkit.files import write_atomic


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or from a different model (the message says which)."""


class Checkpoint(NamedTuple):
    path: Path
    meta: dict
    state: dict
    """{"optimizer": optimizer.state_dict(), "rng": {name: ByteTensor}}."""


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename over it (see `lstmkit.files.write_atomic`)."""
    write_atomic(path, text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it (see `lstmkit.files.write_atomic`)."""
    write_atomic(path, data)


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, optimizer, meta: dict, rng: dict,
                    keep: int = 2) -> Path:  # fmt: skip
    """Write RUN_DIR/step-NNNNNNNN atomically, point `latest` at it, keep the newest `keep` folders."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=run_dir))
    try:
        save_model(model, str(tmp / "model.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "rng": rng}, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2))
        final = run_dir / name
        if final.exists():  # the same step written again after a resume: move the old one aside first
            old = run_dir / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            shutil.rmtree(old)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(run_dir / "latest", name + "\n")
    for older in sorted(run_dir.glob("step-*"))[:-keep]:
        shutil.rmtree(older, ignore_errors=True)
    return final


def find_checkpoint(path: Path) -> Path:
    """A run folder (its `latest`) or a checkpoint folder -> the checkpoint folder."""
    path = Path(path)
    if (path / "meta.json").exists():
        return path
    latest = path / "latest"
    if not latest.exists():
        raise CheckpointError(f"no checkpoint in {path}: expected a run folder with a 'latest' file "
                              "or a step-NNNNNNNN checkpoint folder")  # fmt: skip
    return path / latest.read_text().strip()


def read_checkpoint(path: Path) -> Checkpoint:
    """Read meta.json and state.pt (safely); the weights are loaded by `load_weights`."""
    folder = find_checkpoint(path)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        state = torch.load(folder / "state.pt", weights_only=True, map_location="cpu")
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint {folder} is incomplete: {Path(error.filename).name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint {folder} is corrupt: meta.json is not valid JSON ({error})") from None
    except Exception as error:  # torch.load's errors on damaged or foreign files vary by version
        raise CheckpointError(f"checkpoint {folder} is corrupt: state.pt cannot be read ({error})") from None
    return Checkpoint(folder, meta, state)


def load_weights(folder: Path, model: torch.nn.Module) -> None:
    """Load model.safetensors into `model`, strictly; a clear error when it is corrupt or from another model."""
    path = Path(folder) / "model.safetensors"
    if not path.exists():
        raise CheckpointError(f"checkpoint {folder} is incomplete: model.safetensors is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {folder} is corrupt: model.safetensors cannot be read ({error})") from None
    expected = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    wrong = sorted(k for k in expected.keys() & stored.keys() if expected[k] != stored[k])
    missing, unexpected = sorted(expected.keys() - stored.keys()), sorted(stored.keys() - expected.keys())
    if wrong or (missing and not _tied(model, missing)) or unexpected:
        detail = "; ".join(part for part in (
            f"shapes differ for {wrong[:3]}" if wrong else "", f"missing {missing[:3]}" if missing else "",
            f"unexpected {unexpected[:3]}" if unexpected else "") if part)  # fmt: skip
        raise CheckpointError(f"checkpoint {folder} is from a different model: {detail}")
    load_model(model, str(path), strict=True)


def _tied(model: torch.nn.Module, missing: list[str]) -> bool:
    """safetensors stores a tensor shared by two names once; the other name is then legitimately absent."""
    every_name = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    return set(missing) <= every_name - dict(model.named_parameters()).keys()
