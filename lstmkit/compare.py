"""Several models, one task, one budget: every model trained with the same training config and seed,
then a results table and a picture of the learning curves.

    results = compare("adding", {"length": 100}, [ModelConfig("rnn"), ModelConfig("lstm")], TrainConfig(), out)

    OUT/<model>/           each model's run folder (checkpoints, metrics.jsonl), as `lstmkit train` writes it
    OUT/results.json       one record per model: parameters, final validation metrics, seconds; the baselines
    OUT/results.md         the table, as Markdown: a row per model, then a row per baseline
    OUT/curves.png         training loss and validation metric against step, each of the task's baselines dashed

The baselines are the valid split's (lstmkit.evaluation.split_baselines), as the curves and the final metrics are
validation ones: a real task's named baselines fitted on its train split (e.g. persistence and seasonal naive),
trivial first, strongest last; a synthetic task's trivial predictor where its spec has one.

Models are named on the command line as NAME or xlstm:BLOCKS (e.g. "xlstm:msm").
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from lstmkit.checkpoint import write_bytes_atomic, write_text_atomic
from lstmkit.curriculum import parse_curriculum, phase_tasks
from lstmkit.evaluation import split_baselines
from lstmkit.experiment import fresh_run_dir, make_task, new_model, run_meta, sequence_length
from lstmkit.files import check_output_dir
from lstmkit.models import ModelConfig, check_fits
from lstmkit.run_files import read_records
from lstmkit.tasks.base import BASELINE_METRIC
from lstmkit.train import TrainConfig, train

METRIC = {"regress": "mse", "classify": "accuracy", "tag": "accuracy"}
"""The validation metric a table and plot show first, by task kind (the plot: when the task has no baseline)."""
BASELINE_SPLIT = "valid"
"""The split whose baselines a comparison shows: the one its curves and final metrics are measured on."""


class Result(NamedTuple):
    label: str
    parameters: int
    metrics: dict
    """The final validation metrics (mse, or loss and accuracy)."""
    seconds: float
    run_dir: Path


def parse_models(names: list[str], template: ModelConfig) -> list[ModelConfig]:
    """["rnn", "lstm", "xlstm:ms"] -> configs that share `template`'s sizes."""
    configs = []
    for name in names:
        base, _, blocks = name.partition(":")
        if blocks and base != "xlstm":
            raise ValueError(f"model {name!r}: only xlstm takes a block string (xlstm:BLOCKS, e.g. xlstm:msm)")
        if base == "xlstm" and set(blocks) - set("ms"):
            raise ValueError(f"model {name!r}: blocks are letters m (mLSTM) and s (sLSTM), e.g. xlstm:msm")
        config = replace(template, name=base, blocks=blocks or template.blocks)
        configs.append(config)
    labels = [label_of(c) for c in configs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"models {', '.join(names)} name the same model twice")
    return configs


def label_of(config: ModelConfig) -> str:
    return f"xlstm-{config.blocks}" if config.name == "xlstm" else config.name


def compare(
    task_name: str,
    task_args: dict,
    models: list[ModelConfig],
    config: TrainConfig,
    out_dir: str | Path | None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> list[Result]:
    """Train each model on the same data stream from the same seed; write the table and the plot.

    Everything is checked before anything is written: the task, each model's size (models.check_fits) and the
    output folder (lstmkit.files.check_output_dir); `out_dir` None: runs/compare-TASK, or -2, -3, ... if taken."""
    if config.init_from:
        raise ValueError(
            f"--init-from is {config.init_from!r}: compare trains every model from a fresh start on the same data; "
            "warm-start one model with lstmkit train --init-from"
        )
    task = make_task(task_name, task_args, cache_dir)  # bad names and arguments fail before anything is written
    phase_tasks(task, parse_curriculum(config.curriculum))  # a curriculum's phases build, before anything is written
    length = sequence_length(task)
    for model_config in models:
        check_fits(model_config, task.spec, config.batch_size, length, device=device)
    out_dir = fresh_run_dir(Path("runs") / f"compare-{task_name}") if out_dir is None else Path(out_dir)
    check_output_dir(out_dir)
    results = []
    for model_config in models:
        label = label_of(model_config)
        model = new_model(model_config, task.spec, config.seed)
        params = sum(p.numel() for p in model.parameters())
        if progress:
            print(f"{label}: {params:,} parameters")
        tic = time.perf_counter()
        meta = run_meta(task_name, task_args, task, model_config)
        metrics = train(model, task, config, out_dir / label, meta=meta, device=device, progress=progress)
        results.append(Result(label, params, metrics, time.perf_counter() - tic, out_dir / label))
    records = [
        {"model": r.label, "parameters": r.parameters, "seconds": round(r.seconds, 2), **r.metrics} for r in results
    ]
    baselines = split_baselines(task, BASELINE_SPLIT)
    summary = {
        "task": task_name,
        "task_args": task_args,
        "baseline": task.spec.baseline,
        "baseline_metric": BASELINE_METRIC[task.spec.kind],
        "baseline_split": BASELINE_SPLIT,
        "baselines": baselines,
        "results": records,
    }
    write_text_atomic(out_dir / "results.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out_dir / "results.md", markdown_table(results, task.spec.kind, baselines))
    plot_curves(results, task.spec.kind, baselines, out_dir / "curves.png", title=task_name)
    return results


def columns(kind: str) -> list[str]:
    return ["mse"] if kind == "regress" else ["loss", "accuracy"]


def named(baselines: dict[str, float] | float | None) -> dict[str, float]:
    """The baselines by name; a bare number is a spec's `baseline` alone, the score of a trivial predictor."""
    if baselines is None:
        return {}
    if isinstance(baselines, dict):
        return baselines
    return {"trivial predictor": baselines}


def markdown_table(results: list[Result], kind: str, baselines: dict[str, float] | float | None) -> str:
    """A row per model, then a row per baseline (its value in BASELINE_METRIC[kind]'s column), then a line per
    baseline that names its metric."""
    names, metric, baselines = columns(kind), BASELINE_METRIC[kind], named(baselines)
    lines = [
        "| model | parameters | " + " | ".join(f"valid {n}" for n in names) + " | seconds |",
        "|---|---:|" + "---:|" * len(names) + "---:|",
    ]
    for r in results:
        values = " | ".join(f"{r.metrics[n]:.4g}" for n in names)
        lines.append(f"| {r.label} | {r.parameters:,} | {values} | {r.seconds:.0f} |")
    for name, value in baselines.items():
        values = " | ".join(f"{value:.4g}" if n == metric else "—" for n in names)
        lines.append(f"| baseline: {name} | — | {values} | — |")
    if baselines:
        lines.append(f"\nBaselines, {BASELINE_SPLIT} split (a real task fits its own on the train split):")
        lines += [f"- Baseline ({name}): {metric} {value:.4g}" for name, value in baselines.items()]
    return "\n".join(lines) + "\n"


def read_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl -> {"train loss": [(step, value)], "valid <metric>": [...]}; each line is checked
    (lstmkit.run_files.read_records: CheckpointError naming the line), values that are not numbers are left out."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for record in read_records(run_dir / "metrics.jsonl"):
        for name, value in record.items():
            if name in ("step", "split", "lr") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            curves.setdefault(f"{record['split']} {name}", []).append((record["step"], value))
    return curves


def smooth(values: list[float], width: int) -> list[float]:
    """Trailing mean over `width` points (the training loss is one noisy batch per step)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - width] if i >= width else 0.0)
        out.append(total / min(i + 1, width))
    return out


CURVES_SIZE = (1000, 400)
"""Width and height in pixels of the learning-curve picture."""


BASELINE_COLOURS = ("gray", "black", "tab:brown", "tab:olive", "tab:pink", "tab:cyan")
"""The dashed baselines' colours, trivial first (cycled when a task has more)."""


def plot_curves(
    results: list[Result], kind: str, baselines: dict[str, float] | float | None, path: Path, title: str = ""
) -> None:
    """The models' learning curves (`curves_png`), written atomically."""
    series = [(r.label, read_curves(r.run_dir)) for r in results]
    write_bytes_atomic(path, curves_png(series, kind, baselines, title))


def curves_png(
    series: list[tuple[str, dict]],
    kind: str,
    baselines: dict[str, float] | float | None,
    title: str = "",
    metric: str | None = None,
) -> bytes:
    """`curves_figure` as PNG."""
    buffer = io.BytesIO()
    curves_figure(series, kind, baselines, title, metric).savefig(buffer, format="png")
    return buffer.getvalue()


def curves_figure(
    series: list[tuple[str, dict]],
    kind: str,
    baselines: dict[str, float] | float | None,
    title: str = "",
    metric: str | None = None,
):
    """Two panels: smoothed training loss, and the validation `metric` of each (label, read_curves(...)) series;
    `metric` defaults to the baselines' (BASELINE_METRIC[kind]) when there are baselines, else METRIC[kind]. Each
    baseline is a dashed line, named, on each panel that shows its metric (the training loss is a loss or MSE)."""
    from matplotlib.figure import Figure  # no pyplot: no global state

    baselines = named(baselines)
    metric = metric or (BASELINE_METRIC[kind] if baselines else METRIC[kind])
    width, height = CURVES_SIZE
    fig = Figure(figsize=(width / 100, height / 100), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    for label, curves in series:
        if curves.get("train loss"):
            steps, values = zip(*curves["train loss"], strict=True)
            left.plot(steps, smooth(list(values), max(1, len(values) // 50)), label=label)
        if curves.get(f"valid {metric}"):
            steps, values = zip(*curves[f"valid {metric}"], strict=True)
            right.plot(steps, values, marker="o", markersize=3, label=label)
    if not right.lines:
        right.text(0.5, 0.5, "no evaluation yet", ha="center", va="center", transform=right.transAxes)
    loss_like = BASELINE_METRIC[kind] in ("mse", "loss")  # the training loss is measured in it too
    for axis in [left] * loss_like + [right] * (BASELINE_METRIC[kind] == metric):
        for n, (name, value) in enumerate(baselines.items()):
            colour = BASELINE_COLOURS[n % len(BASELINE_COLOURS)]
            axis.axhline(value, color=colour, linestyle="--", linewidth=1, label=f"baseline: {name}")
    for axis, what in ((left, "training"), (right, "validation")):
        if kind == "regress":
            axis.set_yscale("log")
        axis.set(
            xlabel="step",
            ylabel="training loss (smoothed)" if axis is left else f"validation {metric}",
            title=f"{title}: {what}",
        )
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    return fig
