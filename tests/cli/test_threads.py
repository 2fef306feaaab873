"""`--threads N` (lstmkit/cli/threads.py): every verb that computes with torch takes it, the verb runs with exactly
N torch threads (1 when it is left out), the process gets its own count back, torchrun's ranks get it on their
command line, and a bad N is one line with exit status 2."""

from __future__ import annotations

import importlib

import pytest
import torch

from lstmkit.cli import main
from lstmkit.cli.threads import DEFAULT_THREADS
from tests.helpers import TINY

VERBS = {
    # verb: the arguments it needs besides --threads (its run function is replaced: only the option is tested)
    "train": [],
    "eval": ["RUN"],
    "compare": [],
    "generate": ["RUN"],
    "explain": ["RUN"],
    "report": ["RUN"],
    "bench": [],
}


def spy_on(monkeypatch, verb: str) -> list[int]:
    """Replace `run_<verb>` by a call that records torch's thread count; returns the records."""
    seen: list[int] = []
    module = importlib.import_module(f"lstmkit.cli.{verb}")

    def run(args) -> int:
        seen.append(torch.get_num_threads())
        return 0

    monkeypatch.setattr(module, f"run_{verb}", run)
    return seen


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_runs_with_the_threads_asked_and_gives_them_back(verb, monkeypatch):
    seen = spy_on(monkeypatch, verb)
    before = torch.get_num_threads()
    assert main([verb, *VERBS[verb], "--threads", "3"]) == 0
    assert seen == [3]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("verb", [v for v in VERBS if v != "bench"])
def test_the_default_is_one_thread(verb, monkeypatch):
    seen = spy_on(monkeypatch, verb)
    torch.set_num_threads(2)
    try:
        assert main([verb, *VERBS[verb]]) == 0
        assert seen == [DEFAULT_THREADS] == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], (1, 2)), (["--quick"], (1,)), (["--threads", "3"], (3,)), (["--quick", "--threads", "2"], (2,))],
)
def test_bench_measures_at_1_and_2_threads_unless_told(argv, expected, monkeypatch, tmp_path):
    import lstmkit.bench.suite as suite

    calls = []
    monkeypatch.setattr(suite, "run", lambda *args, threads, **kwargs: calls.append(threads))
    assert main(["bench", *argv, "-o", str(tmp_path / "out")]) == 0
    assert calls == [expected]


def test_a_real_training_step_sees_the_threads(monkeypatch, tmp_path):
    import lstmkit.train

    real, seen = lstmkit.train.train, []

    def train(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(lstmkit.train, "train", train)
    argv = ["train", "--task", "adding", "--task-arg", "length=6", *TINY, "--steps", "2", "--eval-every", "2"]
    assert main([*argv, "--checkpoint-every", "2", "--run-dir", str(tmp_path / "run"), "--threads", "2"]) == 0
    assert seen == [2]


def test_torchrun_gets_the_threads(monkeypatch, tmp_path):
    import lstmkit.cli.train as cli_train

    commands = []
    monkeypatch.setattr(cli_train.subprocess, "call", lambda command, env: commands.append(command) or 0)
    argv = ["train", "--task", "adding", "--task-arg", "length=6", *TINY, "--steps", "2", "--nproc", "2"]
    assert main([*argv, "--run-dir", str(tmp_path / "run"), "--threads", "2"]) == 0
    (command,) = commands
    assert command[command.index("--threads") + 1] == "2" and "--nproc" not in command[command.index("lstmkit") :]


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("value", ["0", "-1", "5000"])
def test_a_bad_count_is_one_line(verb, value, monkeypatch, capsys):
    seen = spy_on(monkeypatch, verb)
    assert main([verb, *VERBS[verb], "--threads", value]) == 2
    err = capsys.readouterr().err
    assert f"lstmkit {verb}: error: --threads is {value}, expected 1 to 1024" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and seen == []


@pytest.mark.parametrize("verb", VERBS)
def test_a_count_that_is_no_number_is_one_line(verb, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb, *VERBS[verb], "--threads", "many"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads: invalid int value: 'many'" in err and len(err.strip().splitlines()) == 1
