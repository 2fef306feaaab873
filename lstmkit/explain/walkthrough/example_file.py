"""A user's own example for `lstmkit walkthrough --spec FILE.json`: sizes, weights, inputs, initial state.

The file is one JSON object (the `spec` part of `lstmkit walkthrough --format json` is a valid one):

    {
      "cell": "lstm",                        optional; rnn | gru | lstm | slstm | mlstm | ssm | mamba (else --cell)
      "input_size": 3, "hidden_size": 2,
      "weights": {"W_f": [[...], [...]], "b_f": [...], ...},   the concatenated (seeds') layout
      "inputs": [[x11, x12, x13], ...],      T rows of input_size numbers, T >= 1
      "initial_state": {"h": [...], "c": [...]}   optional; zeros when absent
    }

Weights and state, by cell (H = hidden_size, I = input_size; [h, x] has H + I entries):

    lstm   W_f, W_i, W_c, W_o (H, H+I) acting on [h_{t-1}, x_t];  b_f, b_i, b_c, b_o (H)    state h, c (H)
    gru    W_r, W_z (H, H+I);  b_r, b_z (H);  W_in (H, I), b_in (H);  W_hn (H, H), b_hn (H)  state h (H)
    rnn    W (H, H+I);  b (H)                                                                state h (H)
    slstm  W_i, W_f, W_z, W_o (H, H+I);  b_i, b_f, b_z, b_o (H);  optional "num_heads" (default 1):
           the h columns must be block-diagonal, one block per head                         state h, c, n, m (H)
    mlstm  needs "key_size" K;  W_q, W_k (K, I), W_v (H, I);  w_i, w_f (I);  b_i, b_f numbers
                                                                       state C (K, H), n (K), m (a number)

The state-space cells have "state_size" N in place of "hidden_size", and C = input_size channels:

    ssm    "discretization": "zoh" | "bilinear" | "zoh-euler" (default zoh);  A, B, C (C, N);  D, delta (C)
           with input_size 1: A, B, C (N) and D, delta numbers;  A negative, delta positive    state h (C, N)
    mamba  A (C, N) negative;  W_delta (C, C);  b_delta (C);  W_B, W_C (N, C);  D (C);
           optional "gate": T rows of C numbers z_t (the output is y ⊙ SiLU(z))              state h (C, N)

Limits (a walkthrough shows every entry of every matrix at every step, so a spec must stay readable): at most
MAX_STEPS time steps, sizes (input, hidden, key) at most MAX_SIZE, numbers within ±MAX_ABS, a file of at most
MAX_BYTES. The seeds' examples and every exercise are far inside them.

Every problem is reported as one `SpecError` line naming the field, what was found and what was expected:
a wrong type (a list where an object belongs, a string where numbers belong, true, null), ragged rows, NaN or
±Infinity (also 1e999, which JSON reads as infinity), a size or a step count over its limit.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lstmkit.reference import gru, lstm, mamba, mlstm, rnn, slstm, ssm
from lstmkit.reference.checks import as_array, as_sequence, shape_text
from lstmkit.reference.examples import Example


class SpecError(ValueError):
    """A --spec file that cannot be used; the message is one line."""


class CellSpec(NamedTuple):
    """What a spec file holds for one cell, and how it becomes the reference's parameters."""

    weights: dict[str, tuple[str, ...]]
    """Field -> shape, as expressions in H, I, H+I and K."""
    state: dict[str, tuple[str, ...]]
    """Initial-state field -> shape."""
    State: type
    params: Callable
    """(weights as arrays, sizes) -> the reference's parameters."""
    weights_of: Callable
    """The reference's parameters -> the spec's weights (the inverse)."""


def _gate_weights(gates: str) -> dict[str, tuple[str, ...]]:
    return {**{f"W_{g}": ("H", "H+I") for g in gates}, **{f"b_{g}": ("H",) for g in gates}}


CELLS = {
    "lstm": CellSpec(
        _gate_weights("fico"),
        {"h": ("H",), "c": ("H",)},
        lstm.LSTMState,
        lambda w, n: lstm.from_concat(lstm.LSTMConcatParams(**w), n["I"]),
        lstm.to_concat,
    ),
    "gru": CellSpec(
        {
            "W_r": ("H", "H+I"),
            "b_r": ("H",),
            "W_z": ("H", "H+I"),
            "b_z": ("H",),
            "W_in": ("H", "I"),
            "b_in": ("H",),
            "W_hn": ("H", "H"),
            "b_hn": ("H",),
        },
        {"h": ("H",)},
        gru.GRUState,
        lambda w, n: gru.from_concat(gru.GRUConcatParams(**w), n["I"]),
        gru.to_concat,
    ),
    "rnn": CellSpec(
        {"W": ("H", "H+I"), "b": ("H",)},
        {"h": ("H",)},
        rnn.RNNState,
        lambda w, n: rnn.from_concat(rnn.RNNConcatParams(**w), n["I"]),
        rnn.to_concat,
    ),
    "slstm": CellSpec(
        _gate_weights("ifzo"),
        {k: ("H",) for k in "hcnm"},
        slstm.sLSTMState,
        lambda w, n: slstm.from_concat(slstm.sLSTMConcatParams(**w), n["I"], n["heads"]),
        slstm.to_concat,
    ),
    "mlstm": CellSpec(
        {"W_q": ("K", "I"), "W_k": ("K", "I"), "W_v": ("H", "I"), "w_i": ("I",), "w_f": ("I",), "b_i": (), "b_f": ()},
        {"C": ("K", "H"), "n": ("K",), "m": ()},
        mlstm.mLSTMState,
        lambda w, n: mlstm.mLSTMCellParams(**{k: float(v) if v.ndim == 0 else v for k, v in w.items()}),
        lambda p: p,
    ),
}
SSM_WEIGHTS = ("A", "B", "C", "D", "delta")
CELLS["ssm"] = CellSpec(
    {"A": ("C", "N"), "B": ("C", "N"), "C": ("C", "N"), "D": ("C",), "delta": ("C",)},
    {"h": ("C", "N")},
    ssm.SSMState,
    lambda w, n: ssm.SSMParams(
        **{k: np.reshape(v, (n["C"], n["N"]) if k in ("A", "B", "C") else (n["C"],)) for k, v in w.items()},
        discretization=n["discretization"],
    ).checked(),
    lambda p: {k: getattr(p, k) for k in SSM_WEIGHTS},
)
CELLS["mamba"] = CellSpec(
    {"A": ("C", "N"), "W_delta": ("C", "C"), "b_delta": ("C",), "W_B": ("N", "C"), "W_C": ("N", "C"), "D": ("C",)},
    {"h": ("C", "N")},
    mamba.MambaState,
    lambda w, n: mamba.MambaParams(**w).checked(),
    lambda p: p._asdict(),
)
STATE_SPACE = ("ssm", "mamba")
"""Cells whose spec has state_size (N) in place of hidden_size, and input_size channels (C)."""

MAX_STEPS = 100
"""Time steps a walkthrough shows (its page grows with steps × sizes²: at both limits the web page is tens of MB)."""
MAX_SIZE = 16
"""Largest input_size, hidden_size and key_size."""
MAX_ABS = 1e6
"""Largest magnitude of a weight, input or state entry."""
MAX_BYTES = 1_000_000
"""Largest spec file read (the largest spec within the other limits is a few hundred kB)."""
MAX_DEPTH = 2
"""Nesting of a field's numbers: a matrix is a list of lists."""
FIELDS = (
    "cell",
    "input_size",
    "hidden_size",
    "state_size",
    "num_heads",
    "key_size",
    "discretization",
    "weights",
    "inputs",
    "gate",
    "initial_state",
)


def load(path: str | Path, cell: str | None = None) -> Example:
    """Read and check a spec file; `cell` (from --cell) must agree with the file's own "cell" if both are given."""
    text = _read(path)
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise SpecError(f"{path}: not valid JSON ({_short(str(e), 80)})") from None
    except RecursionError:
        raise SpecError(f"{path}: lists nested too deeply, expected at most {MAX_DEPTH} levels (a matrix)") from None
    try:
        return from_dict(data, cell)
    except ValueError as e:
        raise SpecError(f"{path}: {e}") from None


def _read(path: str | Path) -> str:
    """The file's text: at most MAX_BYTES, UTF-8, a file (not a folder)."""
    try:
        if os.path.isdir(path):
            raise SpecError(f"{path}: cannot read spec file (it is a folder, expected a JSON file)")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec file ({e.strerror or e})") from None
    if len(data) > MAX_BYTES:
        raise SpecError(
            f"{path}: the spec file is larger than {MAX_BYTES:,} bytes, expected a small JSON file "
            f"(at most {MAX_STEPS} steps, sizes at most {MAX_SIZE})"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start}), expected a JSON file") from None


def _reject_constant(name: str):
    raise SpecError(f"{name} is not a number a walkthrough can show, expected finite numbers")


def from_dict(data, cell: str | None = None) -> Example:
    """Build an Example from a parsed spec (see the module docstring), or raise ValueError."""
    if not isinstance(data, dict):
        raise ValueError(f"spec must be a JSON object, got {type(data).__name__}")
    spec_cell = data.get("cell")
    if isinstance(spec_cell, str) and len(spec_cell) > 20:
        spec_cell = spec_cell[:17] + "..."
    if spec_cell is not None and (not isinstance(spec_cell, str) or spec_cell not in CELLS):
        raise ValueError(f"field 'cell' is {spec_cell!r}, expected one of {', '.join(CELLS)}")
    if spec_cell is not None and cell is not None and spec_cell != cell:
        raise ValueError(f"field 'cell' is {spec_cell!r} but --cell is {cell!r}; drop one or make them agree")
    cell = spec_cell or cell or "lstm"
    allowed = [f for f in FIELDS if _field_applies(f, cell)]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} for cell {cell}, expected {', '.join(allowed)}")
    I, H = _size(data, "input_size"), _size(data, "state_size" if cell in STATE_SPACE else "hidden_size")
    sizes = {"H": H, "I": I, "H+I": H + I, "C": I, "N": H}
    sizes["K"] = _size(data, "key_size") if cell == "mlstm" else H
    sizes["heads"] = _size(data, "num_heads", default=1) if cell == "slstm" else 1
    sizes["discretization"] = _discretization(data) if cell == "ssm" else None

    table = CELLS[cell]
    weights = _field(data, "weights", dict)
    unknown = sorted(set(weights) - set(table.weights))
    if unknown:
        raise ValueError(f"unknown field 'weights.{unknown[0]}' for cell {cell}, expected {', '.join(table.weights)}")
    arrays = {}
    for name, dims in table.weights.items():
        dims = _dims(cell, dims, I)
        shape = tuple(sizes[d] for d in dims)
        meaning = ", ".join(dims) if dims else "a number"
        if name not in weights:
            raise ValueError(f"missing field 'weights.{name}', expected shape {shape_text(shape)} ({meaning})")
        arrays[name] = as_array(f"weights.{name}", _numbers(f"weights.{name}", weights[name]), shape, meaning)
    if cell in STATE_SPACE:
        _check_signs(arrays)
    params = table.params(arrays, sizes)

    inputs = _field(data, "inputs", list)
    if len(inputs) > MAX_STEPS:
        raise ValueError(
            f"field 'inputs' has {len(inputs)} time steps, expected at most {MAX_STEPS} "
            "(a walkthrough shows every step)"
        )
    xs = as_sequence("inputs", _numbers("inputs", inputs), I, f"time steps, input_size = {I}")
    gate = None
    if "gate" in data:
        gate = as_array(
            "gate", _numbers("gate", _field(data, "gate", list)), xs.shape, "time steps as inputs, channels"
        )
    return Example(cell, params, xs, _initial_state(data, cell, sizes), gate)


def _check_signs(arrays: dict[str, np.ndarray]) -> None:
    """A < 0 and delta > 0 on the arrays as the file has them, so the message names the field and the index there."""
    for name, sign, expected in (("A", -1, "negative numbers (a decaying state)"), ("delta", 1, "positive numbers")):
        bad = ~(sign * arrays[name] > 0) if name in arrays else np.array(False)  # mamba has no delta
        if bad.any():
            where = tuple(int(k) for k in np.argwhere(bad)[0])
            at = f" at index {where}" if where else ""
            raise ValueError(f"weights.{name} has {arrays[name][where]:g}{at}, expected {expected}")


def _initial_state(data: dict, cell: str, sizes: dict):
    """The spec's "initial_state" as the cell's state; fields not given are zeros."""
    table, I, H = CELLS[cell], sizes["I"], sizes["H"]
    given = data.get("initial_state", {})
    if not isinstance(given, dict):
        raise ValueError(f"field 'initial_state' must be an object with {', '.join(table.state)}")
    unknown = sorted(set(given) - set(table.state))
    if unknown:
        raise ValueError(f"unknown field 'initial_state.{unknown[0]}', expected {', '.join(table.state)}")
    state = {}
    for k, dims in table.state.items():
        dims = _dims(cell, dims, I)
        shape = tuple(sizes[d] for d in dims)
        given_k = _numbers(f"initial_state.{k}", given[k]) if k in given else np.zeros(shape)
        value = as_array(f"initial_state.{k}", given_k, shape, ", ".join(dims) or "a number")
        state[k] = float(value) if value.ndim == 0 else value
    if cell in STATE_SPACE:
        state["h"] = np.reshape(state["h"], (I, H))
    return table.State(**state)


def _field_applies(field: str, cell: str) -> bool:
    return {
        "num_heads": cell == "slstm",
        "key_size": cell == "mlstm",
        "hidden_size": cell not in STATE_SPACE,
        "state_size": cell in STATE_SPACE,
        "discretization": cell == "ssm",
        "gate": cell == "mamba",
    }.get(field, True)


def _dims(cell: str, dims: tuple[str, ...], input_size: int) -> tuple[str, ...]:
    """A one-channel SSM's spec drops the channel axis: A, B, C and h are (N), D and delta numbers."""
    return tuple(d for d in dims if d != "C") if cell == "ssm" and input_size == 1 else dims


def _discretization(data: dict) -> str:
    value = data.get("discretization", "zoh")
    if value not in ssm.DISCRETIZATIONS:
        raise ValueError(f"field 'discretization' is {_short(value)}, expected one of {', '.join(ssm.DISCRETIZATIONS)}")
    return value


def to_dict(example: Example) -> dict:
    """The spec of an example (the inverse of `from_dict`), as plain JSON-ready lists."""
    p = example.params
    if example.cell in STATE_SPACE:
        return _state_space_dict(example)
    spec = {"cell": example.cell, "input_size": int(p.input_size), "hidden_size": int(p.hidden_size)}
    if example.cell == "slstm":
        spec["num_heads"] = int(p.num_heads)
    if example.cell == "mlstm":
        spec["key_size"] = int(p.key_size)
    weights = CELLS[example.cell].weights_of(p)._asdict()
    spec["weights"] = {name: np.asarray(a).tolist() for name, a in weights.items()}
    spec["inputs"] = np.asarray(example.xs).tolist()
    spec["initial_state"] = {k: np.asarray(v).tolist() for k, v in example.state0._asdict().items()}
    return spec


def _state_space_dict(example: Example) -> dict:
    p, cell = example.params, example.cell
    spec = {"cell": cell, "input_size": int(p.input_size), "state_size": int(p.state_size)}
    if cell == "ssm":
        spec["discretization"] = p.discretization
    squeeze = cell == "ssm" and p.input_size == 1
    weights = CELLS[cell].weights_of(p)
    spec["weights"] = {k: (np.asarray(a)[0] if squeeze else np.asarray(a)).tolist() for k, a in weights.items()}
    spec["inputs"] = np.asarray(example.xs).tolist()
    if example.gate is not None:
        spec["gate"] = np.asarray(example.gate).tolist()
    h = np.asarray(example.state0.h)
    spec["initial_state"] = {"h": (h[0] if squeeze else h).tolist()}
    return spec


def _size(data: dict, name: str, default: int | None = None) -> int:
    value = data.get(name, default)
    if value is None:
        raise ValueError(f"missing field '{name}', expected a positive integer")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"field '{name}' is {_short(value)}, expected a positive integer")
    if name != "num_heads" and value > MAX_SIZE:
        raise ValueError(
            f"field '{name}' is {value}, expected at most {MAX_SIZE} (a walkthrough shows every entry of every matrix)"
        )
    return value


def _numbers(name: str, value, depth: int = 0):
    """`value` itself if it is a number or nested lists of numbers, finite and within ±MAX_ABS; else ValueError.
    Checked before NumPy sees it, which would read "1.5" and true as numbers and fail on 10**400."""
    if isinstance(value, list):
        if depth >= MAX_DEPTH and value:
            raise ValueError(f"{name} has lists nested {depth + 1} deep, expected at most {MAX_DEPTH} (a matrix)")
        for entry in value:
            _numbers(name, entry, depth + 1)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be numbers, got {_short(value)}")
    if not abs(value) <= MAX_ABS:  # also NaN (never <=) and ±inf; an int compares exactly, however long
        shown = (
            f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
            if isinstance(value, int)
            else _short(value)
        )
        raise ValueError(f"{name} has {shown}, expected finite numbers within ±{MAX_ABS:,.0f}")
    return value


def _short(value, most: int = 40) -> str:
    text = json.dumps(value) if isinstance(value, (str, bool, type(None), dict)) else repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def _field(data: dict, name: str, kind: type):
    if name not in data:
        raise ValueError(f"missing field '{name}'")
    value = data[name]
    if not isinstance(value, kind):
        expected = "an object" if kind is dict else "a list"
        raise ValueError(f"field '{name}' must be {expected}, got {type(value).__name__}")
    return value
