"""`lstmkit train`: one model on one task, with a progress bar, checkpoints and --resume (lstmkit/train.py);
what a resumed run keeps and refuses is `lstmkit.resume`'s to decide."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from lstmkit.cli.options import add_options, add_task_options, check_device, typed
from lstmkit.cli.threads import add_threads_option

TRAIN_EXAMPLES = """examples:
  lstmkit train --task adding --model lstm --steps 1000
  lstmkit train --task parity --model xlstm --blocks ms --hidden-size 64 --steps 3000
  lstmkit train --task mqar --task-arg length=128 --task-arg num_pairs=8 --model mlstm
  lstmkit train --task shakespeare --model lstm --hidden-size 256 --run-dir runs/bard
  lstmkit train --run-dir runs/bard --resume            # continue where it stopped, same settings
  lstmkit train --task parity --model slstm --steps 5500 --curriculum max_length=10@2500
                                                        # lengths 3-10 for 2,500 steps, then 3-40
  lstmkit train --task parity --model slstm --init-from runs/parity-slstm --lr 1e-3   # a warm start
  lstmkit train --task adding --model lstm --nproc 2    # data-parallel over 2 processes (torchrun, gloo)"""


def add_verb(verbs) -> None:
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
    add_threads_option(t)  # torchrun's ranks get it with the rest of the command line (launch)
    t.set_defaults(run=run_train)


def run_train(args) -> int:
    """Every check first (settings, task, sizes, the run folder), then the folder is claimed and training starts."""
    from lstmkit import distributed
    from lstmkit.curriculum import check_warm_start, parse_curriculum, phase_tasks, warm_start_text
    from lstmkit.experiment import fresh_run_dir, make_task, new_model, run_meta, sequence_length
    from lstmkit.files import check_output_dir
    from lstmkit.models import check_fits
    from lstmkit.resume import run_settings
    from lstmkit.train import train

    check_device(args.device)
    if args.nproc < 1:
        raise ValueError(f"--nproc is {args.nproc}, expected a positive integer")
    ranked = distributed.launched_by_torchrun()
    settings = run_settings(given_settings(args), args.run_dir, args.resume, check_folder=not ranked)
    task_name, task_args, model_config, config, run_dir = settings
    if args.nproc > 1 and config.batch_size % args.nproc:
        raise ValueError(
            f"--batch-size {config.batch_size} does not split over --nproc {args.nproc} processes "
            f"evenly; choose a multiple of {args.nproc}"
        )
    task = make_task(task_name, task_args, args.cache_dir)  # fails here, before any process starts
    phase_tasks(task, parse_curriculum(config.curriculum))  # every phase's task builds
    warm = None
    if config.init_from and not args.resume:
        warm = check_warm_start(model_config.to_dict(), config.init_from, task.spec.num_outputs)
    try:
        check_fits(model_config, task.spec, config.batch_size, sequence_length(task), device=args.device)
    except ValueError as error:  # on --resume the sizes come from the run's meta.json: blame it
        raise ValueError(f"the run's meta.json in {run_dir}: {error}" if args.resume else str(error)) from None
    if run_dir is None:  # an explicit --run-dir was checked by run_settings
        run_dir = fresh_run_dir(Path("runs") / f"{task_name}-{model_config.name}")
        check_output_dir(run_dir)
    if args.nproc > 1 and not ranked:
        return launch(args, run_dir)
    device = distributed.init(args.device) if ranked else args.device
    rank, _ = distributed.rank_and_world()
    model = new_model(model_config, task.spec, config.seed)
    meta = run_meta(task_name, task_args, task, model_config)
    if warm is not None and rank == 0:
        print(warm_start_text(*warm), flush=True)
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


def given_settings(args):
    """The settings typed on the command line (lstmkit.resume.Given); a flag left out is absent, not its default."""
    from lstmkit.experiment import parse_task_args
    from lstmkit.models import ModelConfig
    from lstmkit.resume import Given
    from lstmkit.train import TrainConfig

    task_args = parse_task_args(getattr(args, "task_arg", []))
    model = typed(ModelConfig, args)
    if hasattr(args, "model"):
        model["name"] = args.model
    return Given(task=getattr(args, "task", None), task_args=task_args, model=model, train=typed(TrainConfig, args))


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
