"""A model's metrics on a whole split, exactly, and the baselines of that split.

    metrics = evaluate_split(model, task, "test", batch_size=64)          # a real task: every example once
    metrics = evaluate_split(model, task, "test", 64)                     # a synthetic task: DEFAULT_EXAMPLES
    metrics = evaluate_split(model, task, "test", 64, examples=4096)      # a synthetic task: 4,096 fixed examples
    baselines = split_baselines(task, "test")                             # {"majority class": 0.55, ...}

A finite task (a real dataset: it has `split_size(split)` and `iterate(split, batch_size)`) is gone over once, in
its fixed order, and every metric is the mean over the split's targets, each batch weighted by the targets it holds:

    metric = Σ_b n_b · metric_b / Σ_b n_b,      n_b = count_targets(spec, batch_b)

Every metric is a mean over targets (MSE over rows, each with the same num_outputs values; cross-entropy and
accuracy over rows or counted positions), so this equals one forward over the whole split, whatever the batch size
and however uneven the last batch. The targets counted must add up to `task.split_size(split)` (examples; a tag
task's counted positions), else the task is refused: its iterate and split_size disagree.

A synthetic task generates fresh examples without end, so it has no "whole split": exactly `examples` examples
(default DEFAULT_EXAMPLES) are generated from a fixed seed (EVAL_SEEDS, one per split, out of reach of every training
and in-run evaluation seed), batch_size at a time (the last batch smaller), so the same (examples, batch_size) always
gives the same examples.

Each result also holds "examples" (rows evaluated) and "targets" (what the metrics average over).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lstmkit.tasks.base import Batch, check_int, check_split, compute_metrics, count_targets, tag_mask

EVAL_SEEDS = {"train": 2**64 - 3, "valid": 2**64 - 2, "test": 2**64 - 1}
"""The generator seed of a synthetic task's evaluation examples, by split: above every training seed (< 2^63) and
every in-run evaluation seed (seed + 1,000,003), so evaluation never sees a training batch."""

DEFAULT_EXAMPLES = 2_048
"""A synthetic task's evaluation examples unless told: an accuracy to within about ±1 % (its standard error at
0.5 is 1.1 %)."""
MAX_EXAMPLES = 10_000_000
"""The most generated examples one evaluation may ask for: more would run for hours with nothing printed."""


def is_finite(task) -> bool:
    """Whether the task holds a fixed set of examples per split (a real dataset) rather than generating them."""
    return hasattr(task, "iterate") and hasattr(task, "split_size")


def evaluate_split(
    model: torch.nn.Module, task, split: str, batch_size: int, device="cpu", examples: int | None = None
) -> dict:
    """The split's metrics (as compute_metrics names them) plus "examples" and "targets"; see the module docstring.

    A finite task takes no `examples` (all are evaluated); a synthetic task generates `examples` (None:
    DEFAULT_EXAMPLES)."""
    check_split(split)
    check_int("batch_size", batch_size, 1)
    if is_finite(task):
        if examples is not None:
            raise ValueError(
                f"task {task.spec.name} has a fixed {split} split of {task.split_size(split):,} examples, all of "
                "which are evaluated: examples is only for generated (synthetic) tasks"
            )
        return _weighted_mean(model, task, task.iterate(split, batch_size), device, task.split_size(split))
    examples = DEFAULT_EXAMPLES if examples is None else examples
    check_int("examples", examples, 1, MAX_EXAMPLES)
    return _weighted_mean(model, task, _generated(task, split, batch_size, examples), device, None)


def _generated(task, split: str, batch_size: int, examples: int) -> Iterator[Batch]:
    """`examples` fresh examples of the split from EVAL_SEEDS[split], batch_size at a time, the last batch smaller."""
    generator = torch.Generator().manual_seed(EVAL_SEEDS[split])
    for start in range(0, examples, batch_size):
        yield task.batch(min(batch_size, examples - start), generator, split)


def _weighted_mean(model: torch.nn.Module, task, batches: Iterator[Batch], device, expected: int | None) -> dict:
    """Σ_b n_b · metric_b / Σ_b n_b over the batches (a batch without a counted target adds nothing)."""
    spec = task.spec
    totals: dict[str, float] = {}
    rows = targets = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                batch = Batch(*(None if t is None else t.to(device) for t in batch))
                n = count_targets(spec, batch)
                rows += batch.y.shape[0]
                targets += n
                if n == 0:  # a tag batch whose positions are all masked: its means are 0/0
                    continue
                for name, value in compute_metrics(spec, model(batch.x, batch.lengths), batch).items():
                    totals[name] = totals.get(name, 0.0) + n * value
    finally:
        model.train(was_training)
    counted = targets if spec.kind == "tag" else rows
    if expected is not None and counted != expected:
        raise ValueError(
            f"task {spec.name}: iterate gave {counted:,} {'positions' if spec.kind == 'tag' else 'examples'}, but "
            f"split_size says {expected:,} (the task's iterate and split_size disagree)"
        )
    if targets == 0:
        raise ValueError(f"task {spec.name}: the split holds no target to score")
    return {**{name: total / targets for name, total in totals.items()}, "examples": rows, "targets": targets}


def split_baselines(task, split: str) -> dict[str, float]:
    """The named baselines of a split, in BASELINE_METRIC[task.spec.kind], trivial first, strongest last.

    A real task fits its own on the training split and scores them on `split` (`task.baselines(split)`); a
    synthetic task has only its spec's analytic score of a trivial predictor (e.g. the adding problem's constant
    guess), the same on every split, named "trivial predictor", or else (classify, tag) its answers' frequencies
    (`frequency_baseline`); a finite task without `baselines` has its spec's
    on the valid split only (where it was measured); a task with neither has none."""
    check_split(split)
    if hasattr(task, "baselines"):
        return dict(task.baselines(split))
    if not is_finite(task) and task.spec.baseline is None and task.spec.kind in ("classify", "tag"):
        return frequency_baseline(task, split)
    if task.spec.baseline is None or (is_finite(task) and split != "valid"):
        return {}
    return {"trivial predictor": task.spec.baseline}


def frequency_baseline(task, split: str, examples: int = DEFAULT_EXAMPLES) -> dict[str, float]:
    """A synthetic task's answer counts p, taken over `examples` generated train examples, scored on as many
    generated examples of `split` (its counted targets, with frequencies q): classify, "majority class", the
    accuracy q[argmax p]; tag, "answer frequencies", the loss of predicting p at every counted position,
    −Σ_a q_a log p_a (nats; an answer never seen in train costs as if seen once)."""
    counts = {name: _answer_counts(task, name, examples) for name in ("train", split)}
    p, q = counts["train"] / counts["train"].sum(), counts[split] / counts[split].sum()
    if task.spec.kind == "classify":
        return {"majority class": float(q[p.argmax()])}
    p = torch.maximum(counts["train"], torch.ones(())) / torch.maximum(counts["train"], torch.ones(())).sum()
    return {"answer frequencies": float(-(q * p.log()).sum())}


def _answer_counts(task, split: str, examples: int) -> torch.Tensor:
    """(num_outputs,) float64: how often each answer is the target of a counted position (tag) or a row."""
    counts = torch.zeros(task.spec.num_outputs, dtype=torch.float64)
    for batch in _generated(task, split, 256, examples):
        targets = batch.y[tag_mask(batch)] if task.spec.kind == "tag" else batch.y
        counts += torch.bincount(targets, minlength=task.spec.num_outputs).double()
    return counts
