"""The `lstmkit` command: a thin shell over library functions, one verb per subcommand.

    lstmkit walkthrough   the seeds' example, every intermediate of every step        (explain_verbs.py)
    lstmkit gradients     vanishing gradients: tanh RNN vs LSTM                       (explain_verbs.py)
    lstmkit train         one model on one task: progress bar, checkpoints, --resume  (train_verbs.py)
    lstmkit eval          a trained run's metrics on a split                          (train_verbs.py)
    lstmkit compare       several models, one task, one budget: table and plot        (train_verbs.py)
    lstmkit generate      text from a trained character model                         (generate_verb.py)
    lstmkit data          the real datasets: list, fetch, show                        (data_verb.py)
    lstmkit explain       pictures of a trained model: gates, cells, xLSTM memory     (explain_run_verb.py)
    lstmkit exercise      a fresh by-hand exercise: worksheet and answer key          (exercise_verb.py)
    lstmkit report        one HTML page for a run: curves, metrics, samples, gates    (report_verb.py)
    lstmkit bench         benchmarks against torch.nn and the xLSTM authors' kernels  (bench_verb.py)

`lstmkit VERB --help` lists every option with its default and shows examples. A bad argument, input
file, checkpoint or dataset exits with status 2 and one line saying what is wrong; never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from lstmkit import __version__


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump), exit status 2, and examples keep their lines."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # `--nproc` is passed on to torchrun by exact name
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc N` passes them on to torchrun
    if args.verb is None:
        parser.print_help()
        return 0
    from lstmkit.train import TrainingDiverged

    try:
        return args.run(args)
    except ValueError as e:  # bad input, incl. CheckpointError and DatasetUnavailable: one line, exit 2
        print(f"lstmkit {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"lstmkit {args.verb}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lstmkit {args.verb}: interrupted (a run continues with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lstmkit walkthrough | head`
        return 0


def build_parser() -> ArgumentParser:
    from lstmkit.cli import (
        bench_verb,
        data_verb,
        exercise_verb,
        explain_run_verb,
        explain_verbs,
        generate_verb,
        report_verb,
        train_verbs,
    )

    parser = ArgumentParser(
        prog="lstmkit", description="LSTM and xLSTM, from the hand-worked example to trained models."
    )
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    verbs = parser.add_subparsers(dest="verb", title="verbs", parser_class=ArgumentParser)
    groups = (explain_verbs, exercise_verb, train_verbs, generate_verb, data_verb, explain_run_verb, report_verb)
    for module in (*groups, bench_verb):
        module.add_verbs(verbs)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
