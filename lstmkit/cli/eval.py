"""`lstmkit eval`: a trained run's metrics on a split, beside that split's baselines, as a table or one JSON line.

Three ways to evaluate (lstmkit.evaluation), one per run:

    exact      a real dataset's split, every example once (the default there; --exact insists on it)
    generated  a synthetic task: --examples N fresh examples from a fixed seed (the default there, N = 2,048)
    sampled    --batches N batches drawn with replacement from the run's seed, as the in-run evaluation draws them
"""

from __future__ import annotations

import json

from rich.table import Table

from lstmkit.cli.options import add_cache_option
from lstmkit.cli.output import print_rich
from lstmkit.cli.threads import add_threads_option

MAX_EVAL_BATCHES = 100_000
"""`eval --batches`: more would take hours at any size and print nothing meanwhile (evaluation has no progress bar)."""

EVAL_EXAMPLES = """examples:
  lstmkit eval runs/sentiment-lstm                  # every example of the test split once, and its baselines
  lstmkit eval runs/parity-lstm --examples 10000    # a synthetic task: 10,000 fixed generated examples
  lstmkit eval runs/bard-lstm --split valid --batches 20   # sampled, as the in-run evaluation does
  lstmkit eval runs/adding-lstm --format json"""


def add_verb(verbs) -> None:
    from lstmkit.evaluation import DEFAULT_EXAMPLES, MAX_EXAMPLES

    e = verbs.add_parser("eval", help="a trained run's metrics on a split, beside its baselines", epilog=EVAL_EXAMPLES)
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run folder or one of its step-NNNNNNNN checkpoints")
    e.add_argument("--split", choices=["train", "valid", "test"], default="test")
    how = e.add_mutually_exclusive_group()
    how.add_argument(
        "--exact",
        action="store_true",
        help="every example of the split once (the default for real datasets; refused for synthetic tasks)",
    )
    how.add_argument(
        "--examples",
        type=int,
        metavar="N",
        default=None,
        help=f"synthetic tasks: evaluate N examples generated from a fixed seed (default {DEFAULT_EXAMPLES:,}, "
        f"at most {MAX_EXAMPLES:,})",
    )
    how.add_argument(
        "--batches",
        type=int,
        metavar="N",
        default=None,
        help="sample N batches with replacement from the run's seed, as the in-run evaluation does "
        f"(1 to {MAX_EVAL_BATCHES:,})",
    )
    e.add_argument("--batch-size", type=int, default=None, help="default: the run's training batch size")
    add_cache_option(e)
    e.add_argument("--format", choices=["text", "json"], default="text")
    add_threads_option(e)
    e.set_defaults(run=run_eval)


def run_eval(args) -> int:
    from dataclasses import replace

    from lstmkit.evaluation import MAX_EXAMPLES, is_finite, split_baselines
    from lstmkit.experiment import load_run, sequence_length, task_of
    from lstmkit.models import check_fits
    from lstmkit.tasks.base import BASELINE_METRIC
    from lstmkit.train import TrainConfig

    # checked before the run is loaded: it costs nothing
    if args.batches is not None and not 1 <= args.batches <= MAX_EVAL_BATCHES:
        raise ValueError(f"--batches is {args.batches}, expected an integer from 1 to {MAX_EVAL_BATCHES:,}")
    if args.examples is not None and not 1 <= args.examples <= MAX_EXAMPLES:
        raise ValueError(f"--examples is {args.examples}, expected an integer from 1 to {MAX_EXAMPLES:,}")
    run = load_run(args.run_dir)
    if "train" not in run.meta:
        raise ValueError(
            f"checkpoint {run.path} holds no training config (meta.json lacks train); eval needs its "
            "batch size and seed"
        )
    config = TrainConfig(**run.meta["train"])
    batch_size = config.batch_size if args.batch_size is None else args.batch_size
    try:
        config = replace(config, eval_batches=args.batches or 1, batch_size=batch_size)
    except ValueError as error:  # name the flags: --batches sets eval_batches
        raise ValueError(f"{error} (--batch-size {batch_size})") from None
    task = task_of(run, args.cache_dir)
    mode = check_mode(args, task.spec.name, is_finite(task))
    check_fits(run.model.config, run.spec, config.batch_size, sequence_length(task), training=False)
    metrics = measure(run.model, task, config, args, mode)
    counts = {name: metrics.pop(name) for name in ("examples", "targets") if name in metrics}
    baselines = split_baselines(task, args.split)
    record = {
        "run": str(run.path),
        "task": run.meta["task"],
        "split": args.split,
        "step": run.meta["step"],
        "mode": mode,
        **counts,
        **metrics,
        "baseline": next(iter(baselines.values()), None),
        "baseline_metric": BASELINE_METRIC[task.spec.kind],
        "baselines": baselines,
    }
    if args.format == "json":
        print(json.dumps(record))
        return 0
    print_rich(eval_table(record, f"{run.path} · {task.spec.name}", config.batch_size))
    return 0


def check_mode(args, task_name: str, finite: bool) -> str:
    """ "exact", "generated" or "sampled", from the flags and the task; a flag that does not fit the task is refused."""
    from lstmkit.evaluation import DEFAULT_EXAMPLES

    if args.batches is not None:
        return "sampled"
    if args.exact and not finite:
        raise ValueError(
            f"--exact: task {task_name} generates its examples without end, so its splits have no end either; "
            f"use --examples N (default {DEFAULT_EXAMPLES:,}) or --batches N"
        )
    if args.examples is not None and finite:
        raise ValueError(
            f"--examples: task {task_name}'s splits are fixed sets, evaluated whole by default; "
            "use --batches N to sample instead"
        )
    return "exact" if finite else "generated"


def measure(model, task, config, args, mode: str) -> dict:
    """The metrics, with "examples" (and "targets" where every one was counted) as lstmkit.evaluation gives them."""
    from lstmkit.evaluation import evaluate_split
    from lstmkit.train import evaluate

    if mode == "sampled":
        return {"examples": args.batches * config.batch_size, **evaluate(model, task, config, split=args.split)}
    return evaluate_split(model, task, args.split, config.batch_size, examples=args.examples)


def eval_table(record: dict, title: str, batch_size: int) -> Table:
    """The metrics, then each baseline of the split, under a title that says how the numbers were made."""
    examples, split = record["examples"], record["split"]
    positions = f", {record['targets']:,} scored positions" if record.get("targets", examples) != examples else ""
    how = {
        "exact": f"exact: every example once ({examples:,} examples{positions})",
        "generated": f"{examples:,} generated examples{positions} (fixed seed)",
        "sampled": f"sampled: {examples // batch_size:,} batches of {batch_size} with replacement",
    }[record["mode"]]
    table = Table(title=f"{title} · {split} split · {how}")
    for name in ("metric", "value"):
        table.add_column(name)
    shown = {"run", "task", "split", "step", "mode", "examples", "targets", "baseline", "baseline_metric", "baselines"}
    for name, value in record.items():
        if name not in shown:
            table.add_row(name, f"{value:.4g}")
    for name, value in record["baselines"].items():
        table.add_row(f"{record['baseline_metric']} of {name} ({split} baseline)", f"{value:.4g}")
    return table
