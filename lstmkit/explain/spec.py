"""A user's own example for `lstmkit walkthrough --spec FILE.json`: sizes, weights, inputs, initial state.

The file is one JSON object (the `spec` part of `lstmkit walkthrough --format json` is a valid one):

    {
      "cell": "lstm",                        optional; rnn | gru | lstm (else --cell decides)
      "input_size": 3, "hidden_size": 2,
      "weights": {"W_f": [[...], [...]], "b_f": [...], ...},   the concatenated (seeds') layout
      "inputs": [[x11, x12, x13], ...],      T rows of input_size numbers, T >= 1
      "initial_state": {"h": [...], "c": [...]}   optional; zeros when absent (c only for lstm)
    }

Weights, by cell (H = hidden_size, I = input_size; [h, x] has H + I entries):

    lstm  W_f, W_i, W_c, W_o (H, H+I) acting on [h_{t-1}, x_t];  b_f, b_i, b_c, b_o (H)
    gru   W_r, W_z (H, H+I);  b_r, b_z (H);  W_in (H, I), b_in (H);  W_hn (H, H), b_hn (H)
    rnn   W (H, H+I);  b (H)

Every problem is reported as one `SpecError` line naming the field, what was found and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lstmkit.reference import gru, lstm, rnn
from lstmkit.reference.checks import as_array, as_sequence, shape_text
from lstmkit.reference.examples import Example


class SpecError(ValueError):
    """A --spec file that cannot be used; the message is one line."""


# field -> (rows, columns) as expressions in H and I
WEIGHT_SHAPES = {
    "lstm": {
        **{f"W_{g}": ("H", "H+I") for g in "fico"},
        **{f"b_{g}": ("H",) for g in "fico"},
    },
    "gru": {
        "W_r": ("H", "H+I"), "b_r": ("H",), "W_z": ("H", "H+I"), "b_z": ("H",),
        "W_in": ("H", "I"), "b_in": ("H",), "W_hn": ("H", "H"), "b_hn": ("H",),
    },
    "rnn": {"W": ("H", "H+I"), "b": ("H",)},
}  # fmt: skip
CONCAT = {"lstm": lstm.LSTMConcatParams, "gru": gru.GRUConcatParams, "rnn": rnn.RNNConcatParams}
STATES = {"lstm": lstm.LSTMState, "gru": gru.GRUState, "rnn": rnn.RNNState}
MODULES = {"lstm": lstm, "gru": gru, "rnn": rnn}


def load(path: str | Path, cell: str | None = None) -> Example:
    """Read and check a spec file; `cell` (from --cell) must agree with the file's own "cell" if both are given."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec file ({e.strerror})") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None
    try:
        return from_dict(data, cell)
    except ValueError as e:
        raise SpecError(f"{path}: {e}") from None


def _reject_constant(name: str):
    raise SpecError(f"{name} is not a number a walkthrough can show, expected finite numbers")


def from_dict(data, cell: str | None = None) -> Example:
    """Build an Example from a parsed spec (see the module docstring), or raise ValueError."""
    if not isinstance(data, dict):
        raise ValueError(f"spec must be a JSON object, got {type(data).__name__}")
    spec_cell = data.get("cell")
    if spec_cell is not None and spec_cell not in CONCAT:
        raise ValueError(f"field 'cell' is {spec_cell!r}, expected one of {', '.join(CONCAT)}")
    if spec_cell is not None and cell is not None and spec_cell != cell:
        raise ValueError(f"field 'cell' is {spec_cell!r} but --cell is {cell!r}; drop one or make them agree")
    cell = spec_cell or cell or "lstm"
    unknown = sorted(set(data) - {"cell", "input_size", "hidden_size", "weights", "inputs", "initial_state"})
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}, expected cell, input_size, hidden_size, weights, inputs")
    I, H = _size(data, "input_size"), _size(data, "hidden_size")
    sizes = {"H": H, "I": I, "H+I": H + I}

    weights = _field(data, "weights", dict)
    expected = WEIGHT_SHAPES[cell]
    unknown = sorted(set(weights) - set(expected))
    if unknown:
        raise ValueError(f"unknown field 'weights.{unknown[0]}' for cell {cell}, expected {', '.join(expected)}")
    arrays = {}
    for name, dims in expected.items():
        shape = tuple(sizes[d] for d in dims)
        if name not in weights:
            raise ValueError(f"missing field 'weights.{name}', expected shape {shape_text(shape)} ({', '.join(dims)})")
        arrays[name] = as_array(f"weights.{name}", weights[name], shape, ", ".join(dims))
    params = MODULES[cell].from_concat(CONCAT[cell](**arrays), input_size=I)

    xs = as_sequence("inputs", _field(data, "inputs", list), I, f"time steps, input_size = {I}")
    State = STATES[cell]
    given = data.get("initial_state", {})
    if not isinstance(given, dict):
        raise ValueError(f"field 'initial_state' must be an object with {', '.join(State._fields)}")
    unknown = sorted(set(given) - set(State._fields))
    if unknown:
        raise ValueError(f"unknown field 'initial_state.{unknown[0]}', expected {', '.join(State._fields)}")
    state0 = State(*(as_array(f"initial_state.{k}", given.get(k, np.zeros(H)), (H,), "H") for k in State._fields))
    return Example(cell, params, xs, state0)


def to_dict(example: Example) -> dict:
    """The spec of an example (the inverse of `from_dict`), as plain JSON-ready lists."""
    concat = MODULES[example.cell].to_concat(example.params)
    return {
        "cell": example.cell,
        "input_size": int(example.params.input_size),
        "hidden_size": int(example.params.hidden_size),
        "weights": {name: np.asarray(a).tolist() for name, a in concat._asdict().items()},
        "inputs": np.asarray(example.xs).tolist(),
        "initial_state": {k: np.asarray(v).tolist() for k, v in example.state0._asdict().items()},
    }


def _size(data: dict, name: str) -> int:
    value = data.get(name)
    if value is None:
        raise ValueError(f"missing field '{name}', expected a positive integer")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"field '{name}' is {value!r}, expected a positive integer")
    return value


def _field(data: dict, name: str, kind: type):
    if name not in data:
        raise ValueError(f"missing field '{name}'")
    value = data[name]
    if not isinstance(value, kind):
        expected = "an object" if kind is dict else "a list"
        raise ValueError(f"field '{name}' must be {expected}, got {type(value).__name__}")
    return value
