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


def as_gate(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    """Like `as_array`, but −∞ is allowed (a closed gate, an empty stabilizer: exp(−∞) = 0); NaN and +∞ are not."""
    array = _float_array(name, value)
    if array.shape != tuple(shape):
        raise ValueError(f"{name} has shape {shape_text(array.shape)}, expected {shape_text(shape)}")
    bad = np.isnan(array) | (array == np.inf)
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{name} has the value {array[where]} at index {where}, expected a number or -inf")
    return array


def is_state(state, cls) -> bool:
    """Whether `state` has every field of `cls` (a NamedTuple), by name."""
    return all(hasattr(state, field) for field in cls._fields)


def as_state(
    name: str,
    cls,
    state,
    shapes: dict[str, tuple[int, ...]],
    suffix: str = "",
    *,
    meanings: dict[str, str] | None = None,
    gates: tuple[str, ...] = (),
):
    """`state` as a `cls` (a NamedTuple) of finite float64 arrays of the given shapes, or ValueError.

    The messages name the state (`name`) when it is not a `cls` at all, else the field, followed by `suffix`
    (run's initial state names its fields h0, c0, ...) and its meaning, if any. Fields in `gates` may be −∞
    (`as_gate`: the mLSTM's empty stabilizer); a field of shape () comes back a float."""
    if not is_state(state, cls):
        raise ValueError(f"{name} is {_describe(state)}, expected a {cls.__name__}({', '.join(cls._fields)})")
    meanings = meanings or {}
    values = []
    for field in cls._fields:
        label, value, shape = f"{field}{suffix}", getattr(state, field), shapes[field]
        array = (
            as_gate(label, value, shape) if field in gates else as_array(label, value, shape, meanings.get(field, ""))
        )
        values.append(array if shape else float(array))
    return cls(*values)


def step_inputs(x, state, rounding, cls, *, width: int, hidden_size: int, meaning: str = "input_size"):
    """What `step` checks in every cell whose state is vectors: the rounding, x (width,) and `state` a `cls`
    whose fields are each (hidden_size,), all finite. Returns (x, state) as float64."""
    check_rounding(rounding)
    x = as_array("x", x, (width,), meaning)
    return x, as_state("state", cls, state, dict.fromkeys(cls._fields, (hidden_size,)))


def run_inputs(
    xs,
    state0,
    rounding,
    cls,
    *,
    width: int,
    hidden_size: int,
    meaning: str = "time steps, input_size",
    suffix: str = "0",
):
    """What `run` checks in every cell whose state is vectors: the rounding, xs (T, width) with T >= 1, and
    `state0` a `cls` of (hidden_size,) fields (their names followed by `suffix`), or None for zeros (zero_state).
    Returns (xs, state) as float64."""
    check_rounding(rounding)
    xs = as_sequence("inputs", xs, width, meaning)
    if state0 is None:
        return xs, cls(*(np.zeros(hidden_size) for _ in cls._fields))
    return xs, as_state("state0", cls, state0, dict.fromkeys(cls._fields, (hidden_size,)), suffix)


def as_nonnegative(name: str, value) -> float:
    """`value` as a float >= 0 (finite), or ValueError."""
    number = float(as_array(name, value, ()))
    if number < 0:
        raise ValueError(f"{name} is {number}, expected a number >= 0")
    return number


def check_rounding(rounding) -> None:
    if not callable(rounding):
        raise ValueError(
            f"rounding is {_describe(rounding)}, expected a function such as reference.exact or reference.hand"
        )


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
