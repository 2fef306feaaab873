"""Plumbing shared by the tests: one numerical comparison, the repository's paths, the CLI runner, one-line
errors, documents between resets, PNG sizes.

`assert_close(actual, expected, what, atol=, rtol=)` is torch.testing.assert_close on tensors, NumPy arrays,
Python numbers and (Named)tuples, lists or dicts of them: shapes always equal (no broadcasting), dtypes equal
unless check_dtype=False, and a failure names `what` (and the field), the largest difference and its index.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lstmkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root."""
CACHE = ROOT / ".cache" / "lstmkit-test"
"""Datasets and downloads the tests fetch once (git-ignored)."""

TINY = ["--hidden-size", "8", "--batch-size", "8", "--eval-every", "5", "--eval-batches", "1", "--quiet"]
"""`lstmkit train` flags for a model that trains in a second (the task and --steps are the caller's)."""

TINY_EVERY_2 = [
    "--task-arg",
    "length=8",
    "--hidden-size",
    "4",
    "--batch-size",
    "4",
    "--eval-every",
    "2",
    "--eval-batches",
    "1",
    "--checkpoint-every",
    "2",
    "--quiet",
]
"""Smaller still, on the adding problem at T = 8, evaluating and checkpointing every 2 steps."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def as_tensor(x) -> torch.Tensor:
    """A detached tensor; NumPy keeps its dtype, and a Python float is float64 (never the float32 default)."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, float):
        return torch.tensor(x, dtype=torch.float64)
    return torch.as_tensor(np.asarray(x))


def assert_close(actual, expected, what: str = "", *, atol: float, rtol: float = 0.0, check_dtype: bool = True) -> None:
    """|actual - expected| <= atol + rtol·|expected| everywhere, the shapes equal; equal infinities are close,
    a NaN never is. Containers are compared field by field (a NamedTuple's field names join `what`)."""
    if actual is None or expected is None:
        assert actual is None and expected is None, f"{what}: {actual!r} vs {expected!r}"
        return
    if isinstance(expected, Mapping):
        assert set(actual) == set(expected), f"{what}: keys {sorted(actual)} vs {sorted(expected)}"
        for key in expected:
            assert_close(actual[key], expected[key], f"{what}[{key!r}]", atol=atol, rtol=rtol, check_dtype=check_dtype)
        return
    if isinstance(expected, tuple | list):
        assert isinstance(actual, tuple | list), f"{what}: a {type(actual).__name__}, expected a sequence"
        assert len(actual) == len(expected), f"{what}: {len(actual)} items, expected {len(expected)}"
        fields = getattr(expected, "_fields", None)
        names = [f".{name}" for name in fields] if fields else [f"[{j}]" for j in range(len(expected))]
        for name, a, b in zip(names, actual, expected, strict=True):
            assert_close(a, b, f"{what}{name}", atol=atol, rtol=rtol, check_dtype=check_dtype)
        return
    a, b = as_tensor(actual), as_tensor(expected)
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
    torch.testing.assert_close(
        a, b, atol=atol, rtol=rtol, check_dtype=check_dtype, check_device=False, msg=lambda m: f"{what}: {m}"
    )


def peak(x) -> float:
    """max(1, max |x| over its finite entries): the scale of a tolerance that is relative to the largest value."""
    t = as_tensor(x).double()
    finite = t[torch.isfinite(t)]
    return max(1.0, float(finite.abs().max())) if finite.numel() else 1.0


def largest_difference(a, b) -> float:
    """max |a - b| of two same-shaped arrays (0 for empty ones)."""
    a, b = as_tensor(a), as_tensor(b)
    assert a.shape == b.shape, f"shapes {tuple(a.shape)} and {tuple(b.shape)} differ"
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def lstmkit(capsys, *argv) -> tuple[int, str, str]:
    """Run `lstmkit ARGV...` in-process: (exit status, stdout, stderr); argparse's own exits give their status."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own refusals (an unknown choice) exit from inside parse_args
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    """A refused command: exit status 2 and one line of stderr (no traceback) holding every needle."""
    assert code == 2, f"exit status {code}, stderr {err!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def one_line(caught: pytest.ExceptionInfo, *words: str) -> str:
    """A raised error's message: one line holding every word."""
    message = str(caught.value)
    assert "\n" not in message, f"more than one line: {message!r}"
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def document_spans(reset_row, length: int) -> list[tuple[int, int]]:
    """The [start, stop) spans of one row's documents: its valid prefix [0, length) cut at each reset inside it
    (a reset at 0 or on padding cuts nothing)."""
    cuts = [t for t in as_tensor(reset_row)[:length].nonzero().flatten().tolist() if t > 0]
    bounds = [0, *cuts, length] if length else []
    return list(itertools.pairwise(bounds))


def png_size(data: bytes, *, at_least: int = 1) -> tuple[int, int]:
    """(width, height) of a PNG that decodes whole, of at least `at_least` bytes."""
    assert data[:8] == PNG_SIGNATURE and len(data) >= at_least, f"not a PNG of {at_least}+ bytes: {data[:16]!r}"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()
        return image.size
