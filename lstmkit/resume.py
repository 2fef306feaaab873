"""The settings of a run: what a fresh run takes, what a resumed run keeps and what it refuses.

    given = Given(task=None, task_args={}, model={}, train={"steps": 4000})   # only what the user typed
    settings = run_settings(given, run_dir="runs/bard", resume=True)          # Settings(task, ..., run_dir)

A fresh run takes what was given and the defaults for the rest (task adding, model lstm, the dataclasses'
defaults); a run folder it names must be one a fresh run may write into. A resumed run keeps the stored
settings: the task (name and arguments), the ModelConfig and the TrainConfig in its newest checkpoint's
meta.json. The rule: a setting left out takes the stored value; a setting given again must equal the stored
one, else the run is refused (it continues as it started, or not at all). Also refused: --resume without a run
folder, a checkpoint folder (RUN/step-N) named instead of its run, a checkpoint whose meta.json lacks the task,
model or train section, and a folder `lstmkit.train.check_run_folder` refuses. `lstmkit train` calls this.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

from lstmkit.checkpoint import CheckpointError, read_checkpoint
from lstmkit.files import check_output_dir
from lstmkit.models import ModelConfig
from lstmkit.run_files import is_step_name
from lstmkit.train import TrainConfig, check_run_folder


class Given(NamedTuple):
    """The settings the user gave; a setting left out is absent (never filled with its default)."""

    task: str | None
    """The task's name, or None."""
    task_args: dict
    """The task's arguments, by name."""
    model: dict
    """ModelConfig fields by name, "name" included when the model was named."""
    train: dict
    """TrainConfig fields by name."""


class Settings(NamedTuple):
    """What a run trains: the task, the model and training configs, and its run folder."""

    task: str
    task_args: dict
    model: ModelConfig
    train: TrainConfig
    run_dir: Path | None
    """None: no folder was named; the caller picks a fresh one."""


def run_settings(given: Given, run_dir: str | Path | None, resume: bool, check_folder: bool = True) -> Settings:
    """The given settings with the defaults, or with `resume` the stored ones (see the module docstring);
    `check_folder`: also refuse a run folder this run must not use (only reads, creates nothing)."""
    if run_dir == "":
        raise ValueError("--run-dir is '', expected a folder name")
    if not resume:
        return fresh_settings(given, run_dir, check_folder)
    return resumed_settings(given, run_dir, check_folder)


def fresh_settings(given: Given, run_dir: str | Path | None, check_folder: bool = True) -> Settings:
    """A new run: what was given, the defaults for the rest; a named folder must not hold a run already."""
    model_config = ModelConfig(**{"name": "lstm", **given.model})
    config = TrainConfig(**given.train)
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None and check_folder:
        check_output_dir(run_dir)
        refuse_checkpoint_folder(run_dir, "")
        check_run_folder(run_dir, resume=False)
    return Settings(given.task or "adding", given.task_args, model_config, config, run_dir)


def resumed_settings(given: Given, run_dir: str | Path | None, check_folder: bool = True) -> Settings:
    """A run continued: the settings stored in its newest checkpoint; a setting given must equal the stored one."""
    if run_dir is None:
        raise ValueError("--resume needs --run-dir, the run to continue")
    run_dir = Path(run_dir)
    refuse_checkpoint_folder(run_dir, "; resume its run with --run-dir {run}")
    checkpoint = read_checkpoint(run_dir)
    meta = checkpoint.meta
    missing = [key for key in ("task", "model", "train") if key not in meta]
    if missing:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} cannot be resumed by lstmkit train: meta.json lacks {', '.join(missing)}"
        )
    if check_folder:
        check_output_dir(run_dir)
        check_run_folder(run_dir, resume=True)
    model_config, config = ModelConfig(**meta["model"]), TrainConfig(**meta["train"])  # fields added later: defaults
    refuse_changes("task", meta["task"], {"name": given.task, "args": given.task_args})
    refuse_changes("model", model_config.to_dict(), given.model)
    refuse_changes("training", asdict(config), given.train)
    return Settings(meta["task"]["name"], meta["task"]["args"], model_config, config, run_dir)


def refuse_checkpoint_folder(path: Path, advice: str) -> None:
    """A checkpoint folder (RUN/step-N) is not a run folder: --run-dir names the run (`advice` may use {run})."""
    parent_is_run = is_step_name(path.name) and os.path.lexists(path.parent / "latest")
    if os.path.lexists(path / "meta.json") or parent_is_run:
        run = path.parent if parent_is_run else "its run folder"
        raise ValueError(
            f"{path} is a checkpoint folder, not a run folder{advice.format(run=run) if advice else ''}; "
            f"--run-dir names the run folder, the one that holds 'latest'"
        )


def refuse_changes(what: str, stored: dict, given: dict) -> None:
    """On resume, a setting given again must equal the stored one (the run continues as it started); a value of
    None or empty counts as not given."""
    different = {k: v for k, v in given.items() if v not in (None, {}, []) and stored.get(k) != v}
    if different:
        key = next(iter(different))
        raise ValueError(
            f"the run's {what} {key} is {stored.get(key)!r}, not {different[key]!r}; leave it out to "
            "resume, or start a new run"
        )
