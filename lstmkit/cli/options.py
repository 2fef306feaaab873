"""Command-line options made from a dataclass: one flag per field, its default and its docstring as help.

    add_options(parser, TrainConfig)            # --steps, --batch-size, --lr, ... with TrainConfig's defaults
    config = from_options(TrainConfig, args)    # back into a validated TrainConfig

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
