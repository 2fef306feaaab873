"""`lstmkit compare`: several models, one task, one budget: a results table and the learning curves, beside the
task's baselines on the valid split (lstmkit.compare)."""

from __future__ import annotations

from pathlib import Path

from lstmkit.cli.options import add_options, add_task_options, check_device, typed
from lstmkit.cli.threads import add_threads_option

COMPARE_EXAMPLES = """examples:
  lstmkit compare --task adding --models rnn lstm xlstm:ms --hidden-size 32 --steps 800
  lstmkit compare --task parity --models lstm slstm mlstm --steps 3000 --out runs/parity
  lstmkit compare --task timeseries --models lstm xlstm:ms --steps 1000   # rows and dashed lines: its baselines"""


def add_verb(verbs) -> None:
    from lstmkit.models import ModelConfig
    from lstmkit.train import TrainConfig

    c = verbs.add_parser(
        "compare",
        help="several models, one task, one budget: table and learning curves beside the task's baselines",
        epilog=COMPARE_EXAMPLES,
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
    add_threads_option(c)
    c.set_defaults(run=run_compare)


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
