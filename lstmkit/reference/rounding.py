"""Exact mode and hand mode: what happens to every intermediate the walkthrough shows.

*Exact mode* keeps float64. *Hand mode* rounds each shown intermediate to one decimal and carries the
rounded value forward, as a person with pencil and paper does. Rounding is half away from zero
(0.25 -> 0.3, -0.25 -> -0.3), the way it is taught, not NumPy's half-to-even; and -0.0 shows as 0.

A rounding is any function Array -> Array; the cells' `step` takes one and applies it to each
intermediate it records.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Rounding = Callable[[np.ndarray], np.ndarray]


def exact(a: np.ndarray) -> np.ndarray:
    """Keep every digit (float64)."""
    return a


def hand(a: np.ndarray) -> np.ndarray:
    """Round to one decimal, half away from zero, as by hand."""
    scaled = np.round(np.abs(a) * 10.0, 9)  # 9 digits absorb float noise: 0.35*10 = 3.4999999999999996
    return np.sign(a) * np.floor(scaled + 0.5) / 10.0 + 0.0  # + 0.0 turns -0.0 into 0.0


MODES: dict[str, Rounding] = {"exact": exact, "hand": hand}
