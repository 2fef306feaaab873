"""The `lstmkit` command: a thin shell over library functions, one verb per subcommand, one file per verb.

    lstmkit walkthrough   the seeds' example, every intermediate of every step        (walkthrough.py)
    lstmkit gradients     vanishing gradients: tanh RNN vs LSTM                       (gradients.py)
    lstmkit train         one model on one task: progress bar, checkpoints, --resume  (train.py)
    lstmkit eval          a trained run's metrics on a split                          (eval.py)
    lstmkit compare       several models, one task, one budget: table and plot        (compare.py)
    lstmkit generate      text from a trained character model                         (generate.py)
    lstmkit data          the real datasets: list, fetch, show                        (data.py)
    lstmkit explain       pictures of a trained model: gates, cells, xLSTM memory     (explain.py)
    lstmkit exercise      a fresh by-hand exercise: worksheet and answer key          (exercise.py)
    lstmkit report        one HTML page for a run: curves, metrics, samples, gates    (report.py)
    lstmkit bench         benchmarks against torch.nn and the xLSTM authors' kernels  (bench.py)

Each verb's file has `add_verb(verbs)`, which adds its subparser and sets `run` to its `run_<verb>(args)`;
options.py holds the options several verbs share, output.py where their output goes, threads.py the
`--threads N` of every verb that computes with torch (default 1; set by `main` around the verb).
`lstmkit VERB --help` lists every option with its default and shows examples. A bad argument, input
file, checkpoint or dataset exits with status 2 and one line saying what is wrong; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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


RESUME_HINTS = {"train": " (a run continues with --resume)"}
"""What the Ctrl-C line adds, by verb: only where the interrupted work can be continued (compare has no --resume;
generate, eval and the rest start afresh)."""


def main(argv: list[str] | None = None) -> int:
    """Run one verb; every outcome ends here with an exit status and at most one line on stderr.

    Standard output is flushed before returning, inside the error handling, so that `> /dev/full` is reported as
    "cannot write to standard output: REASON" (exit 2) and `| head` ends quietly (exit 0); after such a failure
    standard output points at /dev/null, so the interpreter's own flush at exit has nothing left to complain about.
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error, --help, --version: argparse's SystemExit, as usual
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc N` passes them on to torchrun
    if args.verb is None:
        parser.print_help()
        return _flush_stdout("lstmkit", 0)
    prog = f"lstmkit {args.verb}"
    return _flush_stdout(prog, _run(args, prog))


def _run(args, prog: str) -> int:
    from lstmkit.cli.threads import threads_of
    from lstmkit.files import StdoutError
    from lstmkit.train import TrainingDiverged

    try:
        with _watched_stdout(), threads_of(args):  # --threads: checked here, a bad one is a ValueError
            return args.run(args)
    except ValueError as e:  # bad input, incl. CheckpointError and DatasetUnavailable: one line, exit 2
        _say(f"{prog}: error: {e}")
        return 2
    except TrainingDiverged as e:
        _say(f"{prog}: stopped: {e}")
        return 1
    except KeyboardInterrupt:
        _say(f"{prog}: interrupted{RESUME_HINTS.get(args.verb, '')}")
        return 130
    except BrokenPipeError:  # `lstmkit walkthrough | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except StdoutError as e:
        _say(f"{prog}: error: cannot write to standard output: {e.strerror or e}")
        _silence_stdout()
        return 2
    except OSError as e:
        if e.filename is None:  # no file to name: a bug more likely than bad input, keep its traceback
            raise
        _say(f"{prog}: error: cannot use {e.filename}: {e.strerror or e}")
        return 2


def _flush_stdout(prog: str, code: int) -> int:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except OSError as e:
        _say(f"{prog}: error: cannot write to standard output: {e.strerror or e}")
        _silence_stdout()
        return 2
    return code


class _WatchedStream:
    """Standard output as the verb sees it: the same stream, but a failed write or flush raises StdoutError,
    so that `> /dev/full` is told apart from a full disk under a checkpoint."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return _tagged(self._stream.write, text)

    def flush(self) -> None:
        _tagged(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _tagged(call, *arguments):
    from lstmkit.files import StdoutError

    try:
        return call(*arguments)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise StdoutError(e.errno, e.strerror) from e


@contextlib.contextmanager
def _watched_stdout():
    original = sys.stdout
    sys.stdout = _WatchedStream(original)
    try:
        yield
    finally:
        sys.stdout = original


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null: the data Python still buffers for it then goes nowhere, quietly."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream (tests): nothing to silence
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _say(line: str) -> None:
    """One line on stderr (if stderr itself cannot be written, there is nobody left to tell)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def build_parser() -> ArgumentParser:
    from lstmkit.cli import (
        bench,
        compare,
        data,
        eval,
        exercise,
        explain,
        generate,
        gradients,
        report,
        train,
        walkthrough,
    )

    parser = ArgumentParser(
        prog="lstmkit", description="LSTM and xLSTM, from the hand-worked example to trained models."
    )
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    verbs = parser.add_subparsers(dest="verb", title="verbs", parser_class=ArgumentParser)
    order = (walkthrough, gradients, exercise, train, eval, compare, generate, data, explain, report, bench)
    for module in order:  # the order of `lstmkit --help`
        module.add_verb(verbs)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
