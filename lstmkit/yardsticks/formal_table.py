"""The formal-language table: every model family on the Chomsky-hierarchy tasks, trained on short words and
tested on longer ones (the xLSTM paper's Figure 4, after Delétang et al. 2023).

    table = run_table(Path("runs/yardsticks/formal"), workers=2)     # `make yardsticks`; cells already done are kept
    python -m lstmkit.yardsticks formal --only parity,even-pairs --rows lstm,slstm

One cell = one model trained on one task under one budget (BUDGET), then scored on the task's test split
(words of 40..256 symbols where training saw 3..40): token accuracy over the answer positions of EVAL_EXAMPLES
words drawn from a fixed seed. Every cell uses the same recipe: AdamW, lr 3e-3 with warm-up and cosine decay, batch
32, and a length curriculum (words of 3..10 for the first CURRICULUM_FRACTION of the steps, then 3..40), because
without one the sLSTM stays at chance on parity in any budget we tried (see the README).

The normalised score of a cell is its accuracy rescaled per task between chance (0) and the table's best row (1),
(acc - chance) / (best - chance) clipped to [0, 1]; a task on which no row beats chance by render.NOISE scores 0 for
every row. The paper's Figure 4 rank-normalises per task between the worst and the best model; with every row at
chance that would rank noise, so chance, measured, takes the worst row's place. A row's score is its mean over
tasks. Chance is the accuracy of always giving the most frequent answer of the test split, measured on the same
examples.

Each cell runs in a process of its own on one thread (torch.set_num_threads(1)), `workers` at a time, and writes
OUT/cells/TASK--ROW.json when it ends, so an interrupted table resumes where it stopped; OUT/table.json,
OUT/table.md and OUT/table.png are remade from the cells at the end (lstmkit.yardsticks.render).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import replace
from pathlib import Path

import torch

from lstmkit.checkpoint import write_text_atomic
from lstmkit.experiment import make_task, new_model
from lstmkit.models import ModelConfig, parameter_count
from lstmkit.train import TrainConfig, evaluate, train

LEVELS = {
    "regular": ("parity", "even-pairs", "cycle-navigation", "modular-arithmetic"),
    "context-free": ("modular-arithmetic-brackets", "reverse-string", "stack-manipulation", "solve-equation"),
    "context-sensitive": ("duplicate-string", "missing-duplicate", "bucket-sort"),
}
"""The tasks by level of the Chomsky hierarchy, in the table's column order: the xLSTM paper's, as far as they fit
the CPU budget. Registered but left out of the table, to keep it near an hour and a half on 2 cores: odds-first,
binary-addition, binary-multiplication, compute-sqrt (`--only` runs them)."""

ROWS = {
    "rnn": ModelConfig("rnn", hidden_size=64),
    "lstm": ModelConfig("lstm", hidden_size=64),
    "slstm": ModelConfig("slstm", hidden_size=64, num_layers=2, num_heads=1),
    "mlstm": ModelConfig("mlstm", hidden_size=64, num_layers=2, num_heads=1),
    "xlstm": ModelConfig("xlstm", hidden_size=64, blocks="ms", num_heads=1),
    "mamba": ModelConfig("mamba", hidden_size=64, num_layers=2),
    "mamba2": ModelConfig("mamba2", hidden_size=64, num_layers=2, num_heads=4),
    "transformer": ModelConfig("transformer", hidden_size=64, num_layers=2, num_heads=4),
}
"""The rows: width 64, two layers or blocks each (the xLSTM: one mLSTM and one sLSTM block), one head for the xLSTM
family's cells as the paper's formal-language models have."""

BUDGET = TrainConfig(
    steps=3000, batch_size=32, lr=3e-3, warmup=100, eval_every=500, eval_batches=2, checkpoint_every=3000
)
"""Every cell's training config (the curriculum is added per task: see `cell_config`)."""
CURRICULUM_FRACTION = 0.4
"""The share of the steps trained on words of 3..10 symbols."""
SHORT = 10
EVAL_EXAMPLES = 512
"""Test words per cell: 16 batches of 32 from a fixed seed; the accuracy's standard error is ≤ 0.022."""


def tasks_present() -> list[str]:
    from lstmkit.tasks import TASKS

    return [task for names in LEVELS.values() for task in names if task in TASKS]


def tasks_known() -> list[str]:
    """The table's tasks, then every other synthetic formal-language task (for `--only`)."""
    from lstmkit.tasks import SYNTHETIC

    extra = [t for t in SYNTHETIC if t not in tasks_present() and t not in ("adding", "temporal-order", "copy", "mqar")]
    return [*tasks_present(), *extra]


def cell_config(steps: int) -> TrainConfig:
    short = int(steps * CURRICULUM_FRACTION)
    return replace(BUDGET, steps=steps, curriculum=f"max_length={SHORT}@{short}" if short else "")


def run_cell(task_name: str, row: str, out: Path, steps: int) -> dict:
    """Train ROWS[row] on `task_name` (run folder OUT/runs/TASK--ROW) and score it on the test split."""
    torch.set_num_threads(1)
    task, config = make_task(task_name, {}), cell_config(steps)
    model = new_model(ROWS[row], task.spec, config.seed)
    tic = time.perf_counter()
    run_dir = out / "runs" / f"{task_name}--{row}"
    train(model, task, config, run_dir, resume=(run_dir / "latest").exists(), progress=False)
    seconds = time.perf_counter() - tic
    test = evaluate(model, task, replace(config, eval_batches=EVAL_EXAMPLES // config.batch_size), split="test")
    cell = {
        "task": task_name,
        "row": row,
        "accuracy": test["accuracy"],
        "loss": test["loss"],
        "chance": chance(task, config),
        "steps": steps,
        "curriculum": config.curriculum,
        "seconds": round(seconds, 1),
        "parameters": parameter_count(ROWS[row], task.spec),
    }
    (out / "cells").mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "cells" / f"{task_name}--{row}.json", json.dumps(cell, indent=2) + "\n")
    return cell


def chance(task, config: TrainConfig) -> float:
    """The accuracy of always giving the most frequent answer, on the very test examples a cell is scored on."""
    generator = torch.Generator().manual_seed(config.seed + 1_000_003)  # evaluate()'s seed: the same examples
    counts: dict[int, int] = {}
    for _ in range(EVAL_EXAMPLES // config.batch_size):
        batch = task.batch(config.batch_size, generator, "test")
        for answer in batch.y[batch.mask].tolist():
            counts[answer] = counts.get(answer, 0) + 1
    return max(counts.values()) / sum(counts.values())


def _cell_job(job: tuple[str, str, str, int]) -> dict:
    task_name, row, out, steps = job
    return run_cell(task_name, row, Path(out), steps)


def run_table(
    out: Path,
    workers: int = 2,
    tasks: list[str] | None = None,
    rows: list[str] | None = None,
    steps: int = 0,
    train_cells: bool = True,
) -> list[dict]:
    """Every cell not yet in OUT/cells, `workers` processes at a time, with a progress bar (none when not
    `train_cells`); then the table files, of the tasks whose every row is done."""
    from rich.progress import Progress

    tasks = tasks or tasks_present()
    rows = rows or list(ROWS)
    unknown = sorted(set(rows) - set(ROWS)) + sorted(set(tasks) - set(tasks_known()))
    if unknown:
        raise ValueError(
            f"unknown rows or tasks {', '.join(unknown)}; rows: {', '.join(ROWS)}; tasks: {', '.join(tasks_known())}"
        )
    steps = steps or BUDGET.steps
    todo = [(t, r, str(out), steps) for t in tasks for r in rows if not (out / "cells" / f"{t}--{r}.json").exists()]
    if train_cells and todo:
        out.mkdir(parents=True, exist_ok=True)
        with Progress() as bar, multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
            job = bar.add_task(f"formal table: {len(todo)} cells to train", total=len(todo))
            for cell in pool.imap_unordered(_cell_job, todo):
                bar.update(job, advance=1, description=f"{cell['task']} · {cell['row']}: {cell['accuracy']:.3f}")
    return render_cells(out, tasks, rows)


def render_cells(out: Path, tasks: list[str], rows: list[str]) -> list[dict]:
    """table.json, table.md and table.png from OUT/cells, for the tasks whose every row has a cell."""
    from lstmkit.yardsticks.render import write_table

    cells = (
        [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))] if (out / "cells").exists() else []
    )
    done = [t for t in tasks if all(any(c["task"] == t and c["row"] == r for c in cells) for r in rows)]
    cells = [c for c in cells if c["task"] in done and c["row"] in rows]
    if not cells:
        raise ValueError(f"no task of the table has every row trained in {out / 'cells'} yet")
    write_table(cells, out, done, rows, LEVELS)
    return cells
