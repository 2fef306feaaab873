"""Standard output that fails, closes early or is interrupted: one line on stderr, the right exit status.

    > /dev/full          "lstmkit VERB: error: cannot write to standard output: No space left on device", exit 2
    | head               nothing on stderr, exit 0
    Ctrl-C               "lstmkit VERB: interrupted", exit 130; "(a run continues with --resume)" for train only

In-process rows replace sys.stdout with a stream on /dev/full or on a pipe whose reader is gone; two subprocesses
check what only a real process shows: nothing ("Exception ignored ...") from the interpreter's flush at exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstmkit.cli import main

ROOT = Path(__file__).resolve().parents[2]


STDOUT_ROWS = [
    ["walkthrough"],
    ["walkthrough", "--format", "json"],
    ["walkthrough", "--format", "html", "-o", "-"],
    ["walkthrough", "--format", "markdown", "-o", "/dev/stdout"],
    ["gradients", "--length", "5", "--hidden-size", "4", "--input-size", "2"],
    ["gradients", "--length", "5", "--hidden-size", "4", "--input-size", "2", "--format", "png", "-o", "-"],
    ["exercise"],
    ["exercise", "--answers", "-o", "-"],
    ["eval", "{run}", "--batches", "1"],
    ["bench", "--quick", "--only", "gpu", "-o", "{tmp}/bench"],
    ["data", "list", "--cache-dir", "{tmp}/cache"],
]


def _stream_on_full_device():
    return open("/dev/full", "w")  # opened for writing only: /dev/full itself is never touched otherwise


def _stream_on_closed_pipe():
    read, write = os.pipe()
    os.close(read)
    return os.fdopen(write, "w")


@pytest.mark.parametrize("argv", STDOUT_ROWS, ids=[" ".join(a) for a in STDOUT_ROWS])
def test_full_stdout_is_one_line_exit_2(argv, tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    stream = _stream_on_full_device()
    monkeypatch.setattr(sys, "stdout", stream)
    code = main([a.format(run=tiny_run, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    verb = argv[0]
    assert code == 2, f"exit status {code}, stderr {err!r}"
    assert lines[-1] == f"lstmkit {verb}: error: cannot write to standard output: No space left on device", err
    assert "Traceback" not in err and len([line for line in lines if line.startswith("lstmkit")]) == 1, err
    stream.close()  # after the failure stdout points at /dev/null: closing (a flush) is quiet


@pytest.mark.parametrize("argv", STDOUT_ROWS[:8], ids=[" ".join(a) for a in STDOUT_ROWS[:8]])
def test_closed_pipe_is_quiet_exit_0(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    stream = _stream_on_closed_pipe()
    monkeypatch.setattr(sys, "stdout", stream)
    code = main(argv)
    assert code == 0 and capsys.readouterr().err == ""
    stream.close()


LSTMKIT = [sys.executable, "-c", "import sys; from lstmkit.cli import main; sys.exit(main())"]
"""What the `lstmkit` console script runs."""


def _subprocess(argv: list[str], stdout) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LSTMKIT, *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_dev_full_in_a_real_process_is_one_line_and_no_noise_at_exit():
    with open("/dev/full", "w") as full:
        result = _subprocess(["walkthrough", "--format", "json"], full)  # small: fails only at the last flush
    assert result.returncode == 2, result.stderr
    assert result.stderr == "lstmkit walkthrough: error: cannot write to standard output: No space left on device\n"


def test_head_in_a_real_process_is_quiet_exit_0():
    process = subprocess.Popen(
        [*LSTMKIT, "walkthrough", "--format", "html"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert process.stdout.readline().startswith(b"<!DOCTYPE html>")
    process.stdout.close()  # the page is larger than a pipe holds: the writer meets the closed end
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0 and err == "", err


INTERRUPTS = [
    ("walkthrough", ["walkthrough"], "lstmkit.cli.walkthrough.run_walkthrough", ""),
    ("generate", ["generate", "runs/x"], "lstmkit.cli.generate.run_generate", ""),
    ("eval", ["eval", "runs/x"], "lstmkit.cli.eval.run_eval", ""),
    ("compare", ["compare"], "lstmkit.cli.compare.run_compare", ""),
    ("train", ["train"], "lstmkit.cli.train.run_train", " (a run continues with --resume)"),
]


@pytest.mark.parametrize(("verb", "argv", "target", "hint"), INTERRUPTS, ids=[row[0] for row in INTERRUPTS])
def test_ctrl_c_is_one_line_and_suggests_resume_only_where_it_works(verb, argv, target, hint, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err == f"lstmkit {verb}: interrupted{hint}\n"


def test_an_os_error_naming_a_file_is_one_line(monkeypatch, capsys):
    def denied(args):
        raise PermissionError(13, "Permission denied", "/some/run/metrics.jsonl")

    monkeypatch.setattr("lstmkit.cli.walkthrough.run_walkthrough", denied)
    assert main(["walkthrough"]) == 2
    err = capsys.readouterr().err
    assert err == "lstmkit walkthrough: error: cannot use /some/run/metrics.jsonl: Permission denied\n"
