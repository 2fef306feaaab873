"""The `lstmkit` command: a thin shell over library functions, one verb per subcommand.

    lstmkit walkthrough [--cell lstm|gru|rnn] [--mode hand|exact] [--spec FILE] [--format text|markdown|json] [-o FILE]
    lstmkit gradients   [--length T] [--hidden-size H] [--input-size I] [--forget-bias B ...] [--seed S] [--format ...]

A bad argument or input file exits with status 2 and one line saying what is wrong; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from lstmkit import __version__


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except ValueError as e:  # bad input: one line, exit 2
        print(f"lstmkit {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lstmkit walkthrough | head`
        return 0


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lstmkit", description="LSTM and xLSTM, from the hand-worked example to trained models."
    )
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    verbs = parser.add_subparsers(dest="verb", title="verbs", parser_class=ArgumentParser)

    w = verbs.add_parser("walkthrough", help="the seeds' step-by-step example, every intermediate of every step")
    w.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=None, help="which cell (default: lstm)")
    w.add_argument("--mode", choices=["hand", "exact"], default="hand", help="hand: round to 0.1 and carry forward")
    w.add_argument("--spec", metavar="FILE.json", help="your own sizes, weights, inputs and initial state")
    w.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    w.add_argument("-o", "--output", metavar="FILE", help="write here (atomically) instead of standard output")
    w.set_defaults(run=run_walkthrough)

    g = verbs.add_parser("gradients", help="vanishing gradients: tanh RNN vs LSTM, gradient norm by lag")
    g.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    g.add_argument("--hidden-size", type=int, default=32)
    g.add_argument("--input-size", type=int, default=8)
    g.add_argument(
        "--forget-bias", type=float, nargs="+", default=[0.0, 2.0], metavar="B", help="LSTM forget-gate biases"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    g.add_argument("-o", "--output", metavar="FILE", help="write here (atomically) instead of standard output")
    g.set_defaults(run=run_gradients)
    return parser


def run_walkthrough(args) -> int:
    from lstmkit.explain import render, spec, walkthrough
    from lstmkit.reference import examples

    example = spec.load(args.spec, args.cell) if args.spec else examples.EXAMPLES[args.cell or "lstm"]()
    w = walkthrough.build(example, args.mode)
    if args.format == "text" and args.output is None:
        Console(highlight=False).print(render.renderables(w))
        return 0
    emit(render.FORMATS[args.format](w), args.output)
    return 0


def run_gradients(args) -> int:
    from lstmkit.explain import gradients, gradients_render

    curves = gradients.gradient_by_lag(args.length, args.hidden_size, args.input_size, args.forget_bias, args.seed)
    if args.format == "text" and args.output is None:
        Console(highlight=False).print(gradients_render.renderables(curves))
        return 0
    emit(gradients_render.FORMATS[args.format](curves), args.output)
    return 0


def emit(text: str, output: str | None) -> None:
    """Print, or write to `output` atomically (a temporary file in the same folder, then rename)."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    target = Path(output)
    if not target.parent.is_dir():
        raise ValueError(f"cannot write {output}: folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
