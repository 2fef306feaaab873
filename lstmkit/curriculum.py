"""Curricula: the first training steps draw their batches from easier versions of the task.

    TrainConfig(steps=5500, curriculum="max_length=10@2500")
        steps 0 .. 2499 draw parity words of lengths 3 .. 10, steps 2500 .. 5499 the task as given (3 .. 40)
    lstmkit train --task parity --model slstm --steps 5500 --curriculum max_length=10@2500

The text is phases separated by "/", each `NAME=VALUE[,NAME=VALUE...]@STEPS`: the task's arguments NAME are
replaced by VALUE for STEPS training steps. Phases run in the order written; after the last one the task as given
runs until `steps`, so "max_length=10@2500/max_length=20@1000" is three phases. Only training batches follow the
curriculum: validation (and `lstmkit eval`) always use the task as given, the distribution the run is judged on.

Which phase a step is in depends on the step alone, and a phase's task is rebuilt from the task's own arguments
with the phase's replaced, so a run resumed mid-phase draws exactly the batches it would have drawn (the data
generator is restored from the checkpoint). The curriculum text is part of the TrainConfig, so meta.json records it
and `--resume` refuses a different one.

When to use which: a curriculum inside one run is the simple choice when only the data changes between phases. A warm
start (`TrainConfig.init_from`, `lstmkit train --init-from RUN`) makes each phase a run of its own: the next phase may
change the learning rate, the schedule or the budget, and a phase can be inspected (eval, explain) before the next
starts; the optimizer starts afresh in each run. A warm start may also put a trained body under another task's head
(the head then starts fresh, `warm_start`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import NamedTuple

import torch

from lstmkit.checkpoint import load_weights, read_checkpoint, stored_shapes
from lstmkit.models import ModelConfig


class Phase(NamedTuple):
    args: dict[str, object]
    """The task arguments this phase replaces, by name."""
    steps: int
    """How many training steps it lasts."""


def parse_curriculum(text: str) -> tuple[Phase, ...]:
    """ "max_length=10@2500/max_length=20@1000" -> (Phase({"max_length": 10}, 2500), Phase({"max_length": 20}, 1000));
    "" -> (). Numbers become int or float; argument names take dashes or underscores."""
    from lstmkit.experiment import parse_task_args

    if not isinstance(text, str):
        raise ValueError(f"curriculum is {text!r}, expected text such as 'max_length=10@2500'")
    phases = []
    for part in text.split("/") if text.strip() else []:
        arguments, at, steps = part.strip().rpartition("@")
        if not at or not arguments:
            raise ValueError(
                f"curriculum phase {part!r} is not NAME=VALUE[,NAME=VALUE]@STEPS (e.g. max_length=10@2500)"
            )
        if not steps.isdigit() or int(steps) < 1:
            raise ValueError(f"curriculum phase {part!r}: its steps are {steps!r}, expected a positive integer")
        try:
            args = parse_task_args(arguments.split(","))
        except ValueError as error:
            raise ValueError(f"curriculum phase {part!r}: {error}") from None
        phases.append(Phase(args, int(steps)))
    return tuple(phases)


def phase_at(phases: tuple[Phase, ...], step: int) -> int:
    """The index of the phase step `step` is in; len(phases) once every phase is over (the task as given)."""
    end = 0
    for index, phase in enumerate(phases):
        end += phase.steps
        if step < end:
            return index
    return len(phases)


def describe(phases: tuple[Phase, ...], index: int) -> str:
    """The progress bar's words for a phase: "phase 1/2 max_length=10", "phase 2/2 as given"."""
    what = "as given" if index == len(phases) else ",".join(f"{k}={v}" for k, v in phases[index].args.items())
    return f"phase {index + 1}/{len(phases) + 1} {what}"


def task_arguments_of(task) -> dict[str, object]:
    """The arguments `task` was built with, read back from its attributes of the same names (every synthetic task
    keeps its arguments); ValueError when one is not kept, since the task then cannot be rebuilt for a phase."""
    parameters = inspect.signature(type(task)).parameters.values()
    arguments = {}
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(task, p.name):
            raise ValueError(
                f"task {task.spec.name} keeps no attribute {p.name!r} for its argument of that name, so it cannot be "
                "rebuilt for a curriculum phase; train its phases as separate runs with --init-from"
            )
        arguments[p.name] = getattr(task, p.name)
    return arguments


def phase_tasks(task, phases: tuple[Phase, ...]) -> list:
    """One task per phase, each `task` rebuilt with the phase's arguments replaced, then `task` itself (the last
    entry, for the steps after the curriculum). Unknown argument names list the task's arguments."""
    if not phases:
        return [task]
    given = task_arguments_of(task)
    tasks = []
    for phase in phases:
        unknown = sorted(set(phase.args) - set(given))
        if unknown:
            valid = ", ".join(given) or "none"
            raise ValueError(
                f"curriculum: task {task.spec.name} has no argument {', '.join(unknown)}; its arguments: {valid}"
            )
        try:
            tasks.append(type(task)(**{**given, **phase.args}))
        except (ValueError, TypeError) as error:
            raise ValueError(f"curriculum phase {phase_text(phase)}: {error}") from None
        if tasks[-1].spec != task.spec:
            raise ValueError(
                f"curriculum phase {phase_text(phase)} changes the task's outputs or inputs ({tasks[-1].spec} "
                f"instead of {task.spec}); a phase may change the data's difficulty, not the model's shape"
            )
    return [*tasks, task]


def phase_text(phase: Phase) -> str:
    return ",".join(f"{k}={v}" for k, v in phase.args.items()) + f"@{phase.steps}"


HEAD = "head."
"""The names of SequenceModel's head, the one part a warm start may leave fresh."""
WEIGHTLESS = frozenset({"dropout"})
"""Model settings a warm start may change: they shape no weight."""


def warm_start(model, source: str | Path) -> dict:
    """Load the newest weights of run folder `source` (or of checkpoint folder `source`) into `model`. Returns what
    meta.json records: {"checkpoint": its folder, "step": its step, "head": "loaded" or "fresh"}.

    The embedding and body must match (`check_warm_start` says what is refused). The head is loaded when its shape
    is this model's; when that run's task had other outputs (a language model warm-starting a classifier: its
    head predicts the next token, this one the label), the head keeps its fresh initialisation."""
    config = getattr(model, "config", None)
    outputs = model.head.out_features if isinstance(getattr(model, "head", None), torch.nn.Linear) else None
    checkpoint, head = check_warm_start(config.to_dict() if hasattr(config, "to_dict") else None, source, outputs)
    load_weights(checkpoint.path, model, keep="" if head == "loaded" else HEAD)
    return {"checkpoint": str(checkpoint.path), "step": checkpoint.meta["step"], "head": head}


def check_warm_start(model_config: dict | None, source: str | Path, num_outputs: int | None = None):
    """(checkpoint, head) a warm start would load, once read and checked: a model of another configuration is
    refused with the first field that differs (WEIGHTLESS ones may differ; load_weights checks the weights' names
    and shapes too). head is "loaded", or "fresh" when that run's head has other than `num_outputs` outputs."""
    checkpoint = read_checkpoint(Path(source))
    stored = checkpoint.meta.get("model")
    if isinstance(stored, dict) and model_config is not None:
        stored = ModelConfig(**stored).to_dict()  # checked by read_checkpoint; fields added later read as defaults
        differ = [k for k, v in model_config.items() if k not in WEIGHTLESS and stored.get(k) != v]
        if differ:
            key = differ[0]
            raise ValueError(
                f"--init-from {source}: that run's model has {key} {stored.get(key)!r}, this one "
                f"{model_config[key]!r}; a warm start needs the same model configuration"
            )
    shape = stored_shapes(checkpoint.path).get(HEAD + "weight")
    fresh = num_outputs is not None and shape is not None and shape[0] != num_outputs
    return checkpoint, "fresh" if fresh else "loaded"


def warm_start_text(checkpoint, head: str) -> str:
    """The line the CLI prints before a warm-started run trains."""
    kept = "and its head" if head == "loaded" else "but not its head (another task's outputs): the head starts fresh"
    return f"warm start: the weights of {checkpoint.path} (step {checkpoint.meta['step']}) {kept}"
