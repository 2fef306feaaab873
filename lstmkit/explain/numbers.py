"""How numbers are written: like the seeds in hand mode, six decimals in exact mode; JSON that people can read
(indented objects, but each list of numbers on one line)."""

from __future__ import annotations

import json
import re

import numpy as np

_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-0-9.eE+]*(?:,\s*-?[0-9][-0-9.eE+]*)*)\s*\]")
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


def dumps(data) -> str:
    """json.dumps(indent=1) with innermost number lists collapsed: "h": [0.7, 0.0]."""
    text = json.dumps(data, indent=1, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
