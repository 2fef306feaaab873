"""Fixtures shared by several test files, and NumPy made strict: an overflow, a division by 0 or an invalid operation
in the reference is an error (a test that means to exercise one says so with `np.errstate`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main
from tests.helpers import TINY

np.seterr(all="raise", under="ignore")  # underflow to 0 (e^-800) is no bug


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder of 4 steps of an LSTM on the adding problem (one per test module: tests may write into it)."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    argv = ["train", "--task", "adding", "--task-arg", "length=12", *TINY, "--steps", "4", "--checkpoint-every", "4"]
    assert main([*argv, "--run-dir", str(run)]) == 0
    return run
