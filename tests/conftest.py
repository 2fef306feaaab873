"""Fixtures shared by several test files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstmkit.cli import main

TINY = ["--hidden-size", "8", "--batch-size", "8", "--eval-every", "5", "--eval-batches", "1", "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder of 4 steps of an LSTM on the adding problem (one per test module: tests may write into it)."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    argv = ["train", "--task", "adding", "--task-arg", "length=12", *TINY, "--steps", "4", "--checkpoint-every", "4"]
    assert main([*argv, "--run-dir", str(run)]) == 0
    return run
