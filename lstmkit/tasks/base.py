"""What a task is: a seeded source of batches, plus the loss and metrics that judge a model's output.

Every task, synthetic or real, has the same interface, so one training loop and one set of models
serve all of them:

    task = TASKS["adding"](length=100)            # TASKS: the registry, in lstmkit/tasks/__init__.py
    batch = task.batch(32, generator, split="train")
    output = model(batch.x, batch.lengths)        # the shape `task.spec.kind` asks for
    loss = compute_loss(task.spec, output, batch)
    metrics = compute_metrics(task.spec, output, batch)   # {"mse": ...} or {"loss": ..., "accuracy": ...}

A task is any object with a `spec: TaskSpec` and a method `batch(batch_size, generator, split) -> Batch`
(no base class).

Kinds of output (TaskSpec.kind):
    "regress"   output (B, num_outputs) float: one prediction per sequence, from its last valid step
    "classify"  output (B, num_outputs) logits: one label per sequence, from its last valid step
    "tag"       output (B, T, num_outputs) logits: a label per position; batch.mask says which count
                (a language model is "tag" with the next token as target at every position)

Inputs: token ids (B, T) long when `spec.vocab_size` is set, else vectors (B, T, spec.input_size).
`batch.lengths` (B,) is set for variable-length tasks (right padding), else None.
Splits: "train", "valid", "test"; generators are seeded per split by the caller, so data never depends
on global random state.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

KINDS = ("regress", "classify", "tag")

BASELINE_METRIC = {"regress": "mse", "classify": "accuracy", "tag": "loss"}
"""The metric a task's `baseline` is measured in, by kind: a constant guess's MSE, the majority class's
accuracy, the loss of predicting token frequencies."""
SPLITS = ("train", "valid", "test")

MAX_LENGTH = 1_000_000
"""The longest sequence a task argument may ask for (time steps): a million, so that a batch of 32 such rows
stays near a gigabyte in its largest tensor (int64 ids or float32 pairs)."""
MAX_VOCAB_SIZE = 65_536
"""The largest vocabulary or number of symbols a task argument may ask for (2^16)."""
MAX_BATCH_STEPS = 2**25
"""The most positions (batch_size × time steps) one batch may hold: 33.5 million, 256 MiB per int64 tensor."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    """Registry name, e.g. "adding"."""
    kind: str
    """"regress", "classify" or "tag" (see the module docstring)."""
    num_outputs: int
    """Regression targets, classes, or tag vocabulary size."""
    vocab_size: int | None = None
    """Token inputs (B, T) with ids in [0, vocab_size); None for vector inputs."""
    input_size: int | None = None
    """Vector inputs (B, T, input_size); None for token inputs."""
    baseline: float | None = None
    """The score of a trivial predictor (e.g. the adding problem's constant guess, MSE 0.167), for reports;
    measured in BASELINE_METRIC[kind]."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind is {self.kind!r}, expected one of {', '.join(KINDS)}")
        if (self.vocab_size is None) == (self.input_size is None):
            raise ValueError("exactly one of vocab_size (token inputs) and input_size (vector inputs) must be set")


class Batch(NamedTuple):
    x: Tensor
    """(B, T) long token ids, or (B, T, I) float vectors."""
    y: Tensor
    """regress: (B, O) float; classify: (B,) long; tag: (B, T) long."""
    lengths: Tensor | None = None
    """(B,) long valid lengths (right padding), or None when every row has length T."""
    mask: Tensor | None = None
    """tag only: (B, T) bool, the positions whose targets count; None = all valid positions."""


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    """Raise unless a task argument is an integer (not a bool) in [minimum, maximum]; the task keeps it as given.

    The one-line error names the argument, the value found and what was expected.
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} is {shown(value)}, expected an integer >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} is {value}, expected at most {maximum:,}")


def check_batch_size(batch_size: object, steps: int) -> None:
    """Raise unless batch_size is an integer >= 1 whose batch of `steps` time steps holds at most MAX_BATCH_STEPS
    positions."""
    check_int("batch_size", batch_size, 1)
    if batch_size * steps > MAX_BATCH_STEPS:
        raise ValueError(
            f"batch_size is {batch_size}: {batch_size:,} rows of {steps:,} positions make "
            f"{batch_size * steps:,}, expected at most {MAX_BATCH_STEPS:,} "
            "(use a smaller batch_size or shorter sequences)"
        )


def shown(value: object) -> str:
    """repr(value), cut to 40 characters: an error message quotes what it was given, never pages of it."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def sample_padded(data: Batch, batch_size: int, generator: torch.Generator) -> Batch:
    """Draw `batch_size` rows of a right-padded dataset (with replacement), cut to the longest drawn row."""
    rows = torch.randint(0, len(data.y), (batch_size,), generator=generator)  # (B,)
    lengths = data.lengths[rows]
    return Batch(x=data.x[rows, : int(lengths.max())], y=data.y[rows], lengths=lengths)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split is {split!r}, expected one of {', '.join(SPLITS)}")


def tag_mask(batch: Batch) -> Tensor:
    """The positions that count for a "tag" task: batch.mask, and inside each row's length."""
    B, T = batch.y.shape
    mask = torch.ones(B, T, dtype=torch.bool, device=batch.y.device) if batch.mask is None else batch.mask
    if batch.lengths is not None:
        mask = mask & (torch.arange(T, device=mask.device) < batch.lengths[:, None].to(mask.device))
    return mask


def count_targets(spec: TaskSpec, batch: Batch) -> int:
    """How many targets the loss averages over: rows (regress, classify) or counted positions (tag)."""
    return batch.y.shape[0] if spec.kind != "tag" else int(tag_mask(batch).sum())


def compute_loss(spec: TaskSpec, output: Tensor, batch: Batch) -> Tensor:
    """MSE for regress, cross-entropy for classify and for the counted positions of tag."""
    kind = spec.kind
    if kind == "regress":
        return F.mse_loss(output, batch.y)
    if kind == "classify":
        return F.cross_entropy(output, batch.y)
    mask = tag_mask(batch)
    return F.cross_entropy(output[mask], batch.y[mask])


def compute_metrics(spec: TaskSpec, output: Tensor, batch: Batch) -> dict[str, float]:
    """regress: mse; classify: loss, accuracy; tag: loss, accuracy over the counted positions."""
    kind = spec.kind
    with torch.no_grad():
        if kind == "regress":
            return {"mse": float(F.mse_loss(output, batch.y))}
        if kind == "classify":
            return {
                "loss": float(F.cross_entropy(output, batch.y)),
                "accuracy": float((output.argmax(-1) == batch.y).float().mean()),
            }
        mask = tag_mask(batch)
        logits, targets = output[mask], batch.y[mask]
        return {
            "loss": float(F.cross_entropy(logits, targets)),
            "accuracy": float((logits.argmax(-1) == targets).float().mean()),
        }
