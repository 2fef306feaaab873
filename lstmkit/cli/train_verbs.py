"""`lstmkit train`, `lstmkit eval` and `lstmkit compare`: one model, a trained run, several models side by side."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from rich.table import Table

from lstmkit.cli.options import add_options, typed
from lstmkit.cli.output import print_rich

DEFAULT_CACHE = "~/.cache/lstmkit"
MAX_EVAL_BATCHES = 100_000
"""`eval --batches`: more would take hours at any size and print nothing meanwhile (evaluation has no progress bar)."""

TRAIN_EXAMPLES = """examples:
  lstmkit train --task adding --model lstm --steps 1000
  lstmkit train --task parity --model xlstm --blocks ms --hidden-size 64 --steps 3000
  lstmkit train --task mqar --task-arg length=128 --task-arg num_pairs=8 --model mlstm
  lstmkit train --task shakespeare --model lstm --hidden-size 256 --run-dir runs/bard
  lstmkit train --run-dir runs/bard --resume            # continue where it stopped, same settings
  lstmkit train --task adding --model lstm --nproc 2    # data-parallel over 2 processes (torchrun, gloo)"""

EVAL_EXAMPLES = """examples:
  lstmkit eval runs/adding-lstm
  lstmkit eval runs/parity-lstm --split test --batches 20"""

COMPARE_EXAMPLES = """examples:
  lstmkit compare --task adding --models rnn lstm xlstm:ms --hidden-size 32 --steps 800
  lstmkit compare --task parity --models lstm slstm mlstm --steps 3000 --out runs/parity"""


def add_task_options(parser) -> None:
    from lstmkit.experiment import TASKS

    parser.add_argument("--task", default=argparse.SUPPRESS, help=f"one of {', '.join(TASKS)} (default adding)")
    parser.add_argument(
        "--task-arg",
        action="append",
        default=argparse.SUPPRESS,
        metavar="NAME=VALUE",
        help="a task argument, repeatable, e.g. --task-arg length=200 (see `lstmkit data` "
        "and the README for each task's arguments)",
    )
    add_cache_option(parser)


def add_cache_option(parser) -> None:
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE, help=f"where real datasets are kept ({DEFAULT_CACHE})")


def add_verbs(verbs) -> None:
    from lstmkit.models import MODEL_NAMES, ModelConfig
    from lstmkit.train import TrainConfig

    t = verbs.add_parser(
        "train", help="train one model on one task, with checkpoints and a progress bar", epilog=TRAIN_EXAMPLES
    )
    add_task_options(t)
    t.add_argument("--model", default=argparse.SUPPRESS, help=f"one of {', '.join(MODEL_NAMES)} (default lstm)")
    add_options(t, ModelConfig, skip=("name",))
    add_options(t, TrainConfig)
    t.add_argument("--run-dir", help="the run folder (default runs/TASK-MODEL, or TASK-MODEL-2, ... if taken)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its newest checkpoint")
    t.add_argument("--device", default="cpu", help="cpu, or cuda when a GPU is present (default cpu)")
    t.add_argument("--nproc", type=int, default=1, help="processes for data-parallel training (default 1)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=run_train)

    e = verbs.add_parser("eval", help="a trained run's metrics on a split", epilog=EVAL_EXAMPLES)
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run folder or one of its step-NNNNNNNN checkpoints")
    e.add_argument("--split", choices=["train", "valid", "test"], default="test")
    e.add_argument("--batches", type=int, default=8, help="batches to average over (default 8)")
    e.add_argument("--batch-size", type=int, default=None, help="default: the run's training batch size")
    add_cache_option(e)
    e.add_argument("--format", choices=["text", "json"], default="text")
    e.set_defaults(run=run_eval)

    c = verbs.add_parser(
        "compare", help="several models, one task, one budget: table and learning curves", epilog=COMPARE_EXAMPLES
    )
    add_task_options(c)
    c.add_argument(
        "--models",
        nargs="+",
        default=["rnn", "lstm", "xlstm:ms"],
        help="model names; xlstm:BLOCKS picks the blocks (default rnn lstm xlstm:ms)",
    )
    add_options(c, ModelConfig, skip=("name", "blocks"))
    add_options(c, TrainConfig)
    c.add_argument("--out", help="output folder (default runs/compare-TASK, or -2, -3, ... if taken)")
    c.add_argument("--device", default="cpu", help="cpu, or cuda when a GPU is present (default cpu)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(run=run_compare)


def check_device(device: str) -> None:
    import torch

    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device {device!r} is not one of cpu, cuda, cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device} asked for, but torch finds no CUDA GPU here (torch {torch.__version__})")


def run_train(args) -> int:
    """Every check first (settings, task, sizes, the run folder), then the folder is claimed and training starts."""
    from lstmkit import distributed
    from lstmkit.experiment import fresh_run_dir, make_task, new_model, run_meta, sequence_length
    from lstmkit.files import check_output_dir
    from lstmkit.models import check_fits
    from lstmkit.train import train

    check_device(args.device)
    if args.nproc < 1:
        raise ValueError(f"--nproc is {args.nproc}, expected a positive integer")
    ranked = distributed.launched_by_torchrun()
    task_name, task_args, model_config, config, run_dir = train_settings(args, checked=not ranked)
    if args.nproc > 1 and config.batch_size % args.nproc:
        raise ValueError(
            f"--batch-size {config.batch_size} does not split over --nproc {args.nproc} processes "
            f"evenly; choose a multiple of {args.nproc}"
        )
    task = make_task(task_name, task_args, args.cache_dir)  # fails here, before any process starts
    try:
        check_fits(model_config, task.spec, config.batch_size, sequence_length(task), device=args.device)
    except ValueError as error:  # on --resume the sizes come from the run's meta.json: blame it
        raise ValueError(f"the run's meta.json in {run_dir}: {error}" if args.resume else str(error)) from None
    if run_dir is None:  # an explicit --run-dir was checked by train_settings
        run_dir = fresh_run_dir(Path("runs") / f"{task_name}-{model_config.name}")
        check_output_dir(run_dir)
    if args.nproc > 1 and not ranked:
        return launch(args, run_dir)
    device = distributed.init(args.device) if ranked else args.device
    rank, _ = distributed.rank_and_world()
    model = new_model(model_config, task.spec, config.seed)
    meta = run_meta(task_name, task_args, task, model_config)
    completed = False
    try:
        metrics = train(
            model, task, config, run_dir, resume=args.resume, meta=meta, device=device, progress=not args.quiet
        )
        completed = True
    finally:
        distributed.finish(completed)
    if rank == 0:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "step")
        baseline = f" (baseline {task.spec.baseline:.4g})" if task.spec.baseline is not None else ""
        print(f"step {metrics['step']}: valid {shown}{baseline}\nrun folder: {run_dir}")
    return 0


def train_settings(args, checked: bool) -> tuple:
    """(task name, task args, ModelConfig, TrainConfig, run folder or None for the default) from the command line,
    or from the run's checkpoint with --resume; `checked`: also refuse a run folder this run must not use."""
    from lstmkit.checkpoint import CheckpointError, read_checkpoint
    from lstmkit.experiment import parse_task_args
    from lstmkit.files import check_output_dir
    from lstmkit.models import ModelConfig
    from lstmkit.train import TrainConfig, check_run_folder

    given_task = {"name": getattr(args, "task", None), "args": parse_task_args(getattr(args, "task_arg", []))}
    given_model, given_train = typed(ModelConfig, args), typed(TrainConfig, args)
    if hasattr(args, "model"):
        given_model["name"] = args.model
    if args.run_dir == "":
        raise ValueError("--run-dir is '', expected a folder name")
    if not args.resume:
        model_config = ModelConfig(**{"name": "lstm", **given_model})
        config = TrainConfig(**given_train)
        run_dir = Path(args.run_dir) if args.run_dir is not None else None
        if run_dir is not None and checked:
            check_output_dir(run_dir)
            refuse_checkpoint_folder(run_dir, "")
            check_run_folder(run_dir, resume=False)
        return given_task["name"] or "adding", given_task["args"], model_config, config, run_dir
    if args.run_dir is None:
        raise ValueError("--resume needs --run-dir, the run to continue")
    run_dir = Path(args.run_dir)
    refuse_checkpoint_folder(run_dir, "; resume its run with --run-dir {run}")
    checkpoint = read_checkpoint(run_dir)
    meta = checkpoint.meta
    missing = [key for key in ("task", "model", "train") if key not in meta]
    if missing:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} cannot be resumed by lstmkit train: meta.json lacks {', '.join(missing)}"
        )
    if checked:
        check_output_dir(run_dir)
        check_run_folder(run_dir, resume=True)
    refuse_changes("task", meta["task"], given_task)
    refuse_changes("model", meta["model"], given_model)
    refuse_changes("training", meta["train"], given_train)
    model_config, config = ModelConfig(**meta["model"]), TrainConfig(**meta["train"])
    return meta["task"]["name"], meta["task"]["args"], model_config, config, run_dir


def refuse_checkpoint_folder(path: Path, advice: str) -> None:
    """A checkpoint folder (RUN/step-N) is not a run folder: --run-dir names the run (`advice` may use {run})."""
    from lstmkit.run_files import is_step_name

    parent_is_run = is_step_name(path.name) and os.path.lexists(path.parent / "latest")
    if os.path.lexists(path / "meta.json") or parent_is_run:
        run = path.parent if parent_is_run else "its run folder"
        raise ValueError(
            f"{path} is a checkpoint folder, not a run folder{advice.format(run=run) if advice else ''}; "
            f"--run-dir names the run folder, the one that holds 'latest'"
        )


def refuse_changes(what: str, stored: dict, given: dict) -> None:
    """On --resume, a setting typed again must equal the stored one (the run continues as it started)."""
    different = {k: v for k, v in given.items() if v not in (None, {}, []) and stored.get(k) != v}
    if different:
        key = next(iter(different))
        raise ValueError(
            f"the run's {what} {key} is {stored.get(key)!r}, not {different[key]!r}; leave it out to "
            "resume, or start a new run"
        )


def launch(args, run_dir: Path) -> int:
    """Start torchrun with the same command line, the run folder fixed (so every process uses the same one),
    holding the run folder's lock until it returns (the ranks know it is their launcher's, see distributed.py)."""
    from lstmkit.checkpoint import RunLock
    from lstmkit.distributed import launch_command, launch_environment
    from lstmkit.train import check_run_folder

    argv = strip_option(args.argv, "--nproc")
    argv = [*strip_option(argv, "--run-dir"), "--run-dir", str(run_dir)]
    with RunLock(run_dir):
        check_run_folder(run_dir, args.resume)  # again, now that no other process can change it
        return subprocess.call(launch_command(args.nproc, argv), env=launch_environment(run_dir))


def strip_option(argv: list[str], name: str) -> list[str]:
    """argv without `name VALUE` or `name=VALUE`."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == name:
            skip = True
        elif not item.startswith(name + "="):
            out.append(item)
    return out


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


def run_compare(args) -> int:
    from lstmkit.compare import compare, parse_models
    from lstmkit.experiment import parse_task_args
    from lstmkit.models import ModelConfig
    from lstmkit.train import TrainConfig

    check_device(args.device)
    task_name = getattr(args, "task", "adding")
    task_args = parse_task_args(getattr(args, "task_arg", []))
    template = ModelConfig(**{"name": "lstm", **typed(ModelConfig, args)})
    models = parse_models(args.models, template)
    config = TrainConfig(**typed(TrainConfig, args))
    if args.out == "":
        raise ValueError("--out is '', expected a folder name")
    out = Path(args.out) if args.out is not None else None
    if out is not None:  # compare() checks the folder is writable (lstmkit.files.check_output_dir)
        if out.is_dir() and any(out.iterdir()):
            raise ValueError(f"output folder {out} is not empty; choose another --out (nothing is overwritten)")
    results = compare(
        task_name, task_args, models, config, out, args.cache_dir, progress=not args.quiet, device=args.device
    )
    out = results[0].run_dir.parent
    print("\n" + (out / "results.md").read_text(), end="")
    print(f"\noutputs: {out}/results.md, {out}/results.json, {out}/curves.png, one run folder per model in {out}/")
    return 0
