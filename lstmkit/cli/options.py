"""Options shared by the verbs, and command-line options made from a dataclass.

    add_options(parser, TrainConfig)                   # --steps, --batch-size, ... with TrainConfig's defaults
    config = TrainConfig(**typed(TrainConfig, args))   # the flags given, back into a validated TrainConfig
    add_task_options(parser)                           # --task, --task-arg NAME=VALUE, --cache-dir
    check_device(args.device)                          # cpu, cuda, cuda:N; cuda only where torch finds a GPU

The dataclass stays the single source of truth: a new field appears on the command line by itself.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import textwrap
from functools import cache


@cache
def field_docs(cls) -> dict[str, str]:
    """The string literal written under each field of a dataclass (its attribute docstring)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, after in itertools.pairwise(body):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_options(parser, cls, skip: tuple[str, ...] = ()) -> None:
    """One `--field-name` per dataclass field not in `skip`, typed by the field's default.

    A flag left out is absent from the parsed namespace (not filled with the default), so a verb can
    tell what was typed: `lstmkit train --resume` takes the stored settings and refuses different ones.
    """
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = field.default
        help_text = docs.get(field.name, "").replace("%", "%%").rstrip(".")
        parser.add_argument(
            flag(field.name),
            dest=field.name,
            type=type(default),
            default=argparse.SUPPRESS,
            metavar=field.name.upper(),
            help=f"{help_text} (default {default})",
        )


def typed(cls, args) -> dict:
    """The fields of `cls` that were given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


DEFAULT_CACHE = "~/.cache/lstmkit"

OUTPUT_HELP = "write here instead of standard output (a file is replaced atomically; - is standard output)"


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


def check_device(device: str) -> None:
    import torch

    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device {device!r} is not one of cpu, cuda, cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device} asked for, but torch finds no CUDA GPU here (torch {torch.__version__})")
