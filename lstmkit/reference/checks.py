"""Input checks for the reference cells: every failure names what was found and what was expected.

The reference raises `ValueError` with one readable line, e.g.
``W_ih has shape (8, 4), expected (8, 3) (4·hidden_size, input_size)``.
"""

from __future__ import annotations

import numpy as np


def as_array(name: str, value, shape: tuple[int, ...], meaning: str = "") -> np.ndarray:
    """Return `value` as a float64 array of exactly `shape`, all finite, or raise ValueError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {_describe(value)}") from None
    if array.shape != tuple(shape):
        hint = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} has shape {_shape(array.shape)}, expected {_shape(shape)}{hint}")
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{name} has a non-finite value {array[where]} at index {where}, expected finite numbers")
    return array


def as_sequence(name: str, value, width: int, meaning: str = "time steps, input_size") -> np.ndarray:
    """Return `value` as a float64 (T, width) array with T >= 1, or raise ValueError."""
    shape = np.shape(value)
    if len(shape) != 2 or shape[1] != width:
        raise ValueError(f"{name} has shape {_shape(shape)}, expected (T, {width}) ({meaning})")
    if shape[0] == 0:
        raise ValueError(f"{name} has 0 time steps, expected at least 1")
    return as_array(name, value, shape, meaning)


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
