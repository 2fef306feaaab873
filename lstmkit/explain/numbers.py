"""How numbers are written in walkthroughs: like the seeds in hand mode, six decimals in exact mode."""

from __future__ import annotations

import numpy as np

DECIMALS = {"hand": 1, "exact": 6}


def number(x: float, mode: str) -> str:
    """0.8 -> '0.8', 1.0 -> '1', -0.0 -> '0'; exact mode keeps six decimals without trailing zeros."""
    text = f"{float(x):.{DECIMALS[mode]}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def vector(a: np.ndarray, mode: str) -> str:
    """[0.8, -1]"""
    return "[" + ", ".join(number(x, mode) for x in np.ravel(a)) + "]"


def matrix_rows(a: np.ndarray, mode: str) -> list[str]:
    """One aligned line per row: ['[ 2  0  1]', '[-1  2  0]']."""
    cells = [[number(x, mode) for x in row] for row in np.atleast_2d(a)]
    width = max(len(c) for row in cells for c in row)
    return ["[" + "  ".join(c.rjust(width) for c in row) + "]" for row in cells]
