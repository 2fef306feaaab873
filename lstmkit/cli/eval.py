"""`lstmkit eval`: a trained run's metrics on a split, as a table or one JSON line."""

from __future__ import annotations

import json

from rich.table import Table

from lstmkit.cli.options import add_cache_option
from lstmkit.cli.output import print_rich

MAX_EVAL_BATCHES = 100_000
"""`eval --batches`: more would take hours at any size and print nothing meanwhile (evaluation has no progress bar)."""

EVAL_EXAMPLES = """examples:
  lstmkit eval runs/adding-lstm
  lstmkit eval runs/parity-lstm --split test --batches 20"""


def add_verb(verbs) -> None:
    e = verbs.add_parser("eval", help="a trained run's metrics on a split", epilog=EVAL_EXAMPLES)
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run folder or one of its step-NNNNNNNN checkpoints")
    e.add_argument("--split", choices=["train", "valid", "test"], default="test")
    e.add_argument("--batches", type=int, default=8, help="batches to average over (default 8)")
    e.add_argument("--batch-size", type=int, default=None, help="default: the run's training batch size")
    add_cache_option(e)
    e.add_argument("--format", choices=["text", "json"], default="text")
    e.set_defaults(run=run_eval)


def run_eval(args) -> int:
    from dataclasses import replace

    from lstmkit.experiment import load_run, sequence_length, task_of
    from lstmkit.models import check_fits
    from lstmkit.train import TrainConfig, evaluate

    if not 1 <= args.batches <= MAX_EVAL_BATCHES:  # checked before the run is loaded: it costs nothing
        raise ValueError(f"--batches is {args.batches}, expected an integer from 1 to {MAX_EVAL_BATCHES:,}")
    run = load_run(args.run_dir)
    if "train" not in run.meta:
        raise ValueError(
            f"checkpoint {run.path} holds no training config (meta.json lacks train); eval needs its "
            "batch size and seed"
        )
    config = TrainConfig(**run.meta["train"])
    batch_size = config.batch_size if args.batch_size is None else args.batch_size
    try:
        config = replace(config, eval_batches=args.batches, batch_size=batch_size)
    except ValueError as error:  # name the flags: --batches sets eval_batches
        raise ValueError(f"{error} (--batches {args.batches}, --batch-size {batch_size})") from None
    task = task_of(run, args.cache_dir)
    check_fits(run.model.config, run.spec, config.batch_size, sequence_length(task), training=False)
    metrics = evaluate(run.model, task, config, split=args.split)
    record = {
        "run": str(run.path),
        "task": run.meta["task"],
        "split": args.split,
        "step": run.meta["step"],
        **metrics,
        "baseline": run.spec.baseline,
    }
    if args.format == "json":
        print(json.dumps(record))
        return 0
    table = Table(title=f"{run.path} · {task.spec.name} · {args.split} split · {args.batches} batches")
    for name in ("metric", "value"):
        table.add_column(name)
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4g}")
    if run.spec.baseline is not None:
        table.add_row("baseline", f"{run.spec.baseline:.4g}")
    print_rich(table)
    return 0
