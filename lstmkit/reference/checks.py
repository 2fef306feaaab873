"""Input checks for the reference cells: every failure names what was found and what was expected.

The reference raises `ValueError` with one readable line, e.g.
``W_ih has shape (8, 4), expected (8, 3) (4·hidden_size, input_size)``.
"""

from __future__ import annotations

import numpy as np


def as_array(name: str, value, shape: tuple[int, ...], meaning: str = "") -> np.ndarray:
    """Return `value` as a float64 array of exactly `shape`, all finite, or raise ValueError."""
    array = _float_array(name, value)
    if array.shape != tuple(shape):
        hint = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} has shape {shape_text(array.shape)}, expected {shape_text(shape)}{hint}")
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{name} has a non-finite value {array[where]} at index {where}, expected finite numbers")
    return array


def as_sequence(name: str, value, width: int, meaning: str = "time steps, input_size") -> np.ndarray:
    """Return `value` as a float64 (T, width) array with T >= 1, or raise ValueError."""
    shape = _float_array(name, value).shape
    if len(shape) != 2 or shape[1] != width:
        raise ValueError(f"{name} has shape {shape_text(shape)}, expected (T, {width}) ({meaning})")
    if shape[0] == 0:
        raise ValueError(f"{name} has 0 time steps, expected at least 1")
    return as_array(name, value, shape, meaning)


def _float_array(name: str, value) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    if isinstance(value, (list, tuple)) and all(isinstance(row, (list, tuple)) for row in value):
        lengths = [len(row) for row in value]
        if len(set(lengths)) > 1:
            k = next(k for k, n in enumerate(lengths) if n != lengths[0])
            raise ValueError(f"{name} has rows of different lengths: row {k} has {lengths[k]}, row 0 has {lengths[0]}")
    raise ValueError(f"{name} must be numbers, got {_describe(value)}")


def shape_text(shape: tuple[int, ...]) -> str:
    """(2, 5) and (2,) as Python writes them."""
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
