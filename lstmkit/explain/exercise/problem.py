"""A fresh by-hand exercise: a random small example with integer numbers, and its answer key.

The answer key is the reference in hand mode, `walkthrough.build(example, "hand")`: every value rounded
to one decimal, half away from zero, and carried forward, which is what a careful person with pencil and
paper gets. The exact values (`walkthrough.build(example, "exact")`) go beside it in small print.

What is drawn, from `numpy.random.default_rng(seed)` (the same seed always gives the same exercise):

    weight matrices  integers in -2..2     (the spec's layout: W_f, W_i, ... acting on [h_{t-1}, x_t])
    biases           integers in -1..1
    inputs x_t       integers in -2..2     T rows of I numbers
    h0, and c0       integers in -1..1     (c0 for the LSTM and the sLSTM)
    sLSTM            one head, n0 = 1 and m0 = 0 (a memory that already holds c0, so c0 / n0 = c0, as in
                     the seeds' sLSTM; not an empty one)

Dull draws are redrawn: the next draw from the same generator, so a seed still names one exercise. A
draw is dull when

    a gate's weight matrix is all zeros (the gate would ignore h and x), or
    at some time step more than half of the pre-activations (the values σ, tanh or the sLSTM's exp act
    on) have |z| >= 3, where σ is within 0.05 of 0 or 1 and tanh within 0.005 of ±1: most gates of
    that step saturate and the step teaches nothing. A step where every gate saturates never appears.

Sizes are for pencil and paper: 1 to 4 time steps, input and hidden sizes 1 to 4.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.explain import walkthrough
from lstmkit.explain.numbers import dumps
from lstmkit.explain.walkthrough import example_file, stages
from lstmkit.reference.examples import Example
from lstmkit.reference.rounding import hand

CELLS = ("lstm", "gru", "rnn", "slstm")
"""The cells an exercise can use (the mLSTM's matrix memory is too much for one sheet)."""
MAX_STEPS = 4
MAX_SIZE = 4
WEIGHTS = (-2, 2)
"""Range of a weight matrix's integer entries (inclusive)."""
BIASES = (-1, 1)
INPUTS = (-2, 2)
STATE = (-1, 1)
"""Range of h0 and c0."""
SATURATED = 3.0
"""|z| from which σ(z) and tanh(z) count as saturated."""
MAX_DRAWS = 10_000
"""Redraws allowed; the least lively size (4, 4, 4) needs about 15 on average and under 100 in practice."""

PRE_ACTIVATIONS = {
    "lstm": ("pre_i", "pre_f", "pre_g", "pre_o"),
    "gru": ("pre_r", "pre_z", "pre_n"),
    "rnn": ("pre",),
    "slstm": ("pre_i", "pre_f", "pre_z", "pre_o"),
}
"""cell -> the trace fields that a squashing function (σ, tanh, exp) acts on."""


class Exercise(NamedTuple):
    """One exercise: how it was made, the example, and its worked answers in both modes."""

    seed: int
    example: Example
    hand: walkthrough.Walkthrough
    """The answer key: every value rounded to 0.1 and carried forward."""
    exact: walkthrough.Walkthrough
    """The same example at full precision, shown in small print beside the answers."""

    @property
    def command(self) -> str:
        """The command line that makes this exercise again."""
        p = self.example.params
        return (
            f"lstmkit exercise --cell {self.example.cell} --seed {self.seed} --steps {len(self.example.xs)} "
            f"--hidden-size {p.hidden_size} --input-size {p.input_size}"
        )


def make(cell: str, seed: int, steps: int = 2, input_size: int = 2, hidden_size: int = 2) -> Exercise:
    """A random exercise with its answer key (hand mode) and exact values."""
    example = random_example(cell, seed, steps, input_size, hidden_size)
    return Exercise(seed, example, walkthrough.build(example, "hand"), walkthrough.build(example, "exact"))


def spec_text(example: Example) -> str:
    """The example as a spec file (`lstmkit walkthrough --spec`), whole numbers written without '.0'."""
    return dumps(_whole_as_int(example_file.to_dict(example)))


def _whole_as_int(data):
    if isinstance(data, dict):
        return {k: _whole_as_int(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_whole_as_int(v) for v in data]
    return int(data) if isinstance(data, float) and data.is_integer() else data


def random_example(cell: str, seed: int, steps: int = 2, input_size: int = 2, hidden_size: int = 2) -> Example:
    """Small integer weights, inputs and initial state, drawn from `seed`, redrawn while dull (see above)."""
    _check(cell, seed, steps, input_size, hidden_size)
    rng = np.random.default_rng(seed)
    for _ in range(MAX_DRAWS):
        example = example_file.from_dict(_draw(rng, cell, steps, input_size, hidden_size))
        if not is_dull(example):
            return example
    raise ValueError(f"seed {seed} gave no lively {cell} exercise in {MAX_DRAWS} draws, expected one: try another seed")


def _check(cell: str, seed: int, steps: int, input_size: int, hidden_size: int) -> None:
    if cell not in CELLS:
        raise ValueError(f"cell is {cell!r}, expected one of {', '.join(CELLS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed is {seed!r}, expected a non-negative integer")
    for name, value, most in (
        ("steps", steps, MAX_STEPS),
        ("input size", input_size, MAX_SIZE),
        ("hidden size", hidden_size, MAX_SIZE),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= most:
            raise ValueError(f"{name} is {value!r}, expected an integer from 1 to {most} (an exercise by hand)")


def _integers(rng: np.random.Generator, bounds: tuple[int, int], shape) -> list:
    low, high = bounds
    return rng.integers(low, high + 1, shape).tolist()


def _draw(rng: np.random.Generator, cell: str, T: int, I: int, H: int) -> dict:
    """One draw, as a spec (`lstmkit.explain.walkthrough.example_file`); weights in the order the spec lists them."""
    table = example_file.CELLS[cell]
    sizes = {"H": H, "I": I, "H+I": H + I}
    weights = {}
    for name, dims in table.weights.items():
        bounds = WEIGHTS if name.startswith("W") else BIASES
        weights[name] = _integers(rng, bounds, tuple(sizes[d] for d in dims))
    state = {"h": _integers(rng, STATE, H)}
    if "c" in table.state:
        state["c"] = _integers(rng, STATE, H)
    if cell == "slstm":
        state.update(n=[1] * H, m=[0] * H)
    inputs = _integers(rng, INPUTS, (T, I))
    return {
        "cell": cell,
        "input_size": I,
        "hidden_size": H,
        "weights": weights,
        "inputs": inputs,
        "initial_state": state,
    }


def is_dull(example: Example) -> bool:
    """True when a gate's weight matrix is all zeros or a step has mostly saturated pre-activations."""
    weights = example_file.to_dict(example)["weights"]
    if any(not np.any(w) for name, w in weights.items() if name.startswith("W")):
        return True
    with np.errstate(all="ignore"):
        steps = stages.trace(example, hand)
    for s in steps:
        if not all(np.isfinite(np.asarray(v, dtype=float)).all() for v in s):
            return True
        pre = np.concatenate([getattr(s, name) for name in PRE_ACTIVATIONS[example.cell]])
        if np.mean(np.abs(pre) >= SATURATED) > 0.5:
            return True
    return False
