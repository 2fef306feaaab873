"""A run, by name: a task and its arguments, a model config and a training config -> a run folder, and back.

    task = make_task("adding", {"length": 100}, cache_dir)
    model = new_model(ModelConfig("lstm"), task.spec, seed=0)
    train(model, task, TrainConfig(), run_dir, meta=run_meta("adding", {"length": 100}, task, config))
    run = load_run(run_dir)                     # model with the newest weights, its meta, its spec

The run's meta.json (inside each checkpoint) holds everything needed to rebuild it: the task's name and
arguments, the task's spec (output kind and sizes), the model config, the training config and, for a
character model, the vocabulary, so `lstmkit generate` works without the dataset.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import torch

from lstmkit import __version__
from lstmkit.checkpoint import LOCK_NAME, CheckpointError, load_weights, read_checkpoint
from lstmkit.models import ModelConfig, SequenceModel, check_fits
from lstmkit.tasks import REAL, TASKS
from lstmkit.tasks.base import TaskSpec


def task_arguments(name: str) -> dict[str, object]:
    """A task's keyword arguments and their defaults (the cache folder of real tasks is not one)."""
    check_task_name(name)
    parameters = inspect.signature(TASKS[name]).parameters.values()
    return {p.name: p.default for p in parameters if p.name != "cache_dir"}


def check_task_name(name: str) -> None:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}, expected one of {', '.join(TASKS)}")


def parse_task_args(pairs: list[str]) -> dict[str, object]:
    """["length=100", "vocab_size=64"] -> {"length": 100, "vocab_size": 64}; numbers become int or float."""
    args: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"task argument {pair!r} is not NAME=VALUE (e.g. length=100)")
        args[key.replace("-", "_")] = _number(text)
    return args


def _number(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def make_task(name: str, args: dict[str, object], cache_dir: str | Path | None = None):
    """The task `name` built with `args`; unknown names and arguments list the valid ones."""
    allowed = task_arguments(name)
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        valid = ", ".join(f"{k}={v}" for k, v in allowed.items()) or "none"
        raise ValueError(f"task {name} has no argument {', '.join(unknown)}; its arguments (defaults): {valid}")
    if name in REAL:
        if cache_dir is None:
            raise ValueError(f"task {name} reads a real dataset and needs a cache folder")
        return TASKS[name](cache_dir, **args)
    return TASKS[name](**args)


def new_model(config: ModelConfig, spec: TaskSpec, seed: int) -> SequenceModel:
    """The model with its initial weights drawn from `seed` (the same seed gives the same model); sizes that cannot
    fit in memory are refused before anything is allocated (models.check_fits)."""
    check_fits(config, spec, batch_size=1, length=1)
    torch.manual_seed(seed)
    return SequenceModel(config, spec)


def sequence_length(task) -> int:
    """The time steps of one training batch of `task`, drawn from a generator of its own (for size estimates)."""
    return int(task.batch(1, torch.Generator().manual_seed(0), "train").x.shape[1])


def run_meta(task_name: str, task_args: dict, task, model_config: ModelConfig) -> dict:
    meta = {
        "lstmkit": __version__,
        "task": {"name": task_name, "args": task_args},
        "spec": asdict(task.spec),
        "model": model_config.to_dict(),
    }
    vocab = getattr(task, "vocab", None)
    if vocab is not None and hasattr(vocab, "chars"):
        meta["vocab"] = list(vocab.chars)
    return meta


def fresh_run_dir(base: str | Path) -> Path:
    """`base`, or base-2, base-3, ... when it already holds something: a new run never writes over an old one.

    The folder returned is claimed: RUN/.lock is created in it with O_EXCL (atomic), so two runs starting at the
    same moment are given two different folders (the lock itself is taken by `RunLock` when training starts)."""
    base = Path(base)
    candidate, n = base, 1
    while not _claim(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _claim(folder: Path) -> bool:
    """Whether `folder` was empty (or missing) and is now ours: the first to create its .lock file wins."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            return False
        os.close(os.open(folder / LOCK_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:  # claimed by another run, or a file of that name: taken
        return False
    except OSError as error:  # a file where a parent folder should be, a read-only folder: no candidate would do
        raise ValueError(f"cannot write {folder}: {error.strerror or error}") from None
    return True


class Run(NamedTuple):
    model: SequenceModel
    """With the checkpoint's weights, in eval mode."""
    meta: dict
    spec: TaskSpec
    path: Path
    """The checkpoint folder that was loaded."""


def load_run(path: str | Path) -> Run:
    """The newest checkpoint of a run folder (or a given checkpoint folder), rebuilt and loaded.

    Needs meta.json and model.safetensors only (state.pt, for resuming, may be damaged or missing)."""
    checkpoint = read_checkpoint(Path(path))
    meta = checkpoint.meta  # checked against its schema (lstmkit.run_files)
    missing = [key for key in ("task", "spec", "model") if key not in meta]
    if missing:
        raise CheckpointError(
            f"{checkpoint.path} was not written by lstmkit train: meta.json lacks {', '.join(missing)}"
        )
    config, spec = ModelConfig(**meta["model"]), TaskSpec(**meta["spec"])
    try:
        check_fits(config, spec, batch_size=1, length=1, training=False)
        model = SequenceModel(config, spec)
    except ValueError as error:
        raise CheckpointError(
            f"checkpoint {checkpoint.path}: meta.json describes no model lstmkit can build ({error})"
        ) from None
    load_weights(checkpoint.path, model)
    return Run(model.eval(), meta, model.spec, checkpoint.path)


def task_of(run: Run, cache_dir: str | Path | None = None):
    """The task the run was trained on, rebuilt from its name and arguments."""
    return make_task(run.meta["task"]["name"], run.meta["task"]["args"], cache_dir)
