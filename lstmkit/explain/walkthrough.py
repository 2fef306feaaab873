"""The seeds' walkthrough as data: numbered stages of rows, built from reference traces.

For the LSTM, each time step t has the seeds' six stages (`shared/seeds/000_*.txt`):

    Initialize · Linear transform · Non-linear transform · Update memory · Candidate output · Update hidden state

preceded once by [1] Given (sizes, weights, inputs). The RNN and GRU walkthroughs use the same frame
with their own stages. Renderers (text, markdown, json) only read a `Walkthrough`; nothing here
computes anything that the reference trace does not already hold, except the labels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.explain.spec import to_dict
from lstmkit.reference import MODES, gru, lstm, rnn
from lstmkit.reference.examples import Example

SEED_TYPO = (
    "One seed text writes the input term as C'1 .* o1 (candidate times the output gate); "
    "the correct term, used here and in the other seed, is C'1 .* i1 (candidate times the input gate)."
)


class Row(NamedTuple):
    label: str
    """What the value is, e.g. 'Forget gate f1'."""
    formula: str
    """How it is computed, e.g. 'σ(pre_f)'."""
    value: np.ndarray
    """The number(s) shown (a vector, or a matrix in [1] Given)."""
    source: np.ndarray | None = None
    """For a squashing step, the value it came from: shown as 'source → value' like the seeds."""


class Stage(NamedTuple):
    number: int
    """The bracketed step number, [1], [2], ... counted over the whole walkthrough."""
    t: int
    """Time step (0 for [1] Given)."""
    title: str
    rows: list[Row]
    note: str = ""


class Walkthrough(NamedTuple):
    cell: str
    mode: str
    example: Example
    steps: list
    """The reference traces, one per time step."""
    stages: list[Stage]


def build(example: Example, mode: str = "hand") -> Walkthrough:
    """Run the example's cell in `mode` (hand | exact) and lay its traces out as numbered stages."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}, expected one of {', '.join(MODES)}")
    cell = {"lstm": lstm, "gru": gru, "rnn": rnn}[example.cell]
    steps = cell.run(example.params, example.xs, example.state0, MODES[mode])
    stages = [Stage(1, 0, "Given", _given_rows(example))]
    for t, s in enumerate(steps, start=1):
        for title, rows, note in STAGES[example.cell](s, t):
            stages.append(Stage(len(stages) + 1, t, title, rows, note))
    return Walkthrough(example.cell, mode, example, steps, stages)


def _given_rows(ex: Example) -> list[Row]:
    spec = to_dict(ex)
    rows = [Row("Sizes", "input d, hidden d", np.array([spec["input_size"], spec["hidden_size"]]))]
    rows += [Row(f"X{t}", f"input at t = {t}", np.asarray(x)) for t, x in enumerate(ex.xs, start=1)]
    rows += [Row(f"{k}0", "initial state", np.asarray(v)) for k, v in _state_names(ex).items()]
    for name, w in spec["weights"].items():
        how = "bias" if np.ndim(w) == 1 else ACTS_ON.get(name, "acts on [h, x]")
        rows.append(Row(name, how, np.asarray(w)))
    return rows


ACTS_ON = {"W_in": "acts on x", "W_hn": "acts on h"}  # the GRU candidate's parts; every other W acts on [h, x]


def _state_names(ex: Example) -> dict[str, np.ndarray]:
    names = {"h": "h", "c": "C"}
    return {names[k]: v for k, v in ex.state0._asdict().items()}


def _initialize(s, t: int):
    """The Initialize stage of any cell: the previous hidden state (and memory, if the cell has one), the input."""
    p = t - 1
    first = "given" if t == 1 else f"copied from step {p}"
    rows = [Row(f"h{p}", f"previous hidden state ({first})", s.h_prev)]
    if hasattr(s, "c_prev"):
        rows.append(Row(f"C{p}", f"previous memory ({first})", s.c_prev))
    rows.append(Row(f"X{t}", "current input", s.x))
    return "Initialize", rows, ""


def _lstm_stages(s: lstm.LSTMStep, t: int):
    p = t - 1
    yield _initialize(s, t)
    yield (
        "Linear transform",
        [
            Row(f"[h{p}, X{t}]", "concatenation", s.hx),
            Row(f"pre f{t}", f"W_f [h{p}, X{t}] + b_f", s.pre_f),
            Row(f"pre i{t}", f"W_i [h{p}, X{t}] + b_i", s.pre_i),
            Row(f"pre o{t}", f"W_o [h{p}, X{t}] + b_o", s.pre_o),
            Row(f"pre C'{t}", f"W_c [h{p}, X{t}] + b_c", s.pre_g),
        ],
        "Four weight matrices times the concatenation of the previous hidden state and the current input.",
    )
    yield (
        "Non-linear transform",
        [
            Row(f"Forget gate f{t}", "σ", s.f, s.pre_f),
            Row(f"Input gate i{t}", "σ", s.i, s.pre_i),
            Row(f"Output gate o{t}", "σ", s.o, s.pre_o),
            Row(f"Candidate memory C'{t}", "tanh", s.g, s.pre_g),
        ],
        "σ gives gate values between 0 and 1; tanh gives candidate memory between -1 and 1.",
    )
    yield (
        "Update memory",
        [
            Row("Forget", f"C{p} .* f{t}", s.forget_term),
            Row("Input", f"C'{t} .* i{t}", s.input_term),
            Row(f"Memory C{t}", f"C{p} .* f{t} + C'{t} .* i{t}", s.c),
        ],
        SEED_TYPO if t == 1 else "",
    )
    yield "Candidate output", [Row(f"o'{t}", f"tanh(C{t})", s.tanh_c, s.c)], ""
    yield "Update hidden state", [Row(f"h{t}", f"o'{t} .* o{t}", s.h)], f"h{t} is also the output at t = {t}."


def _rnn_stages(s: rnn.RNNStep, t: int):
    p = t - 1
    yield _initialize(s, t)
    yield (
        "Linear transform",
        [
            Row(f"[h{p}, X{t}]", "concatenation", s.hx),
            Row(f"pre h{t}", f"W [h{p}, X{t}] + b", s.pre),
        ],
        "One weight matrix: the RNN is the LSTM's candidate path alone, with no gates and no memory.",
    )
    yield "Update hidden state", [Row(f"h{t}", "tanh", s.h, s.pre)], f"h{t} is also the output at t = {t}."


def _gru_stages(s: gru.GRUStep, t: int):
    p = t - 1
    yield _initialize(s, t)
    yield (
        "Linear transform",
        [
            Row(f"[h{p}, X{t}]", "concatenation", s.hx),
            Row(f"pre r{t}", f"W_r [h{p}, X{t}] + b_r", s.pre_r),
            Row(f"pre z{t}", f"W_z [h{p}, X{t}] + b_z", s.pre_z),
            Row("input part of n", f"W_in X{t} + b_in", s.xn),
            Row("hidden part of n", f"W_hn h{p} + b_hn", s.hn),
        ],
        "",
    )
    yield (
        "Non-linear transform",
        [
            Row(f"Reset gate r{t}", "σ", s.r, s.pre_r),
            Row(f"Update gate z{t}", "σ", s.z, s.pre_z),
        ],
        "",
    )
    yield (
        "Candidate",
        [
            Row("Reset", f"r{t} .* (W_hn h{p} + b_hn)", s.reset_term),
            Row(f"pre n{t}", f"W_in X{t} + b_in + r{t} .* (W_hn h{p} + b_hn)", s.pre_n),
            Row(f"Candidate n{t}", "tanh", s.n, s.pre_n),
        ],
        "The reset gate scales the hidden part only (PyTorch's GRU).",
    )
    yield (
        "Update hidden state",
        [
            Row("New", f"(1 - z{t}) .* n{t}", s.new_term),
            Row("Keep", f"z{t} .* h{p}", s.keep_term),
            Row(f"h{t}", f"(1 - z{t}) .* n{t} + z{t} .* h{p}", s.h),
        ],
        "z plays the LSTM's forget gate and 1 - z its input gate; there is no separate memory.",
    )


STAGES = {"lstm": _lstm_stages, "rnn": _rnn_stages, "gru": _gru_stages}
