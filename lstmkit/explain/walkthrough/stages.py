"""The seeds' walkthrough as data: numbered stages of rows, built from reference traces.

For the LSTM, each time step t has the seeds' six stages (`shared/seeds/000_*.txt`):

    Initialize · Linear transform · Non-linear transform · Update memory · Candidate output · Update hidden state

preceded once by [1] Given (sizes, weights, inputs). The RNN and GRU walkthroughs use the same frame
with their own stages. The sLSTM adds the stabilized exponential gates and the normalizer; the mLSTM
shows the projections, the outer product k vᵀ written into the matrix memory C, and the retrieval q̂ᵀC.
The diagonal SSM and Mamba show Initialize · Discretize (Δ, Ā, B̄) · Update state · Output at every step,
then, once for the whole sequence (t = ALL_STEPS), the convolution or matrix view and the family resemblance.
The xLSTM cells' stages are in xlstm_stages.py, the state-space cells' in ssm_stages.py, the Row they are
made of in rows.py.
Renderers (text, markdown, json, html) only read a `Walkthrough`; nothing here
computes anything that the reference trace does not already hold, except the labels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.explain.walkthrough.example_file import STATE_SPACE, to_dict
from lstmkit.explain.walkthrough.rows import Row, affine, eq
from lstmkit.explain.walkthrough.ssm_stages import DISCRETE, mamba_stages, mamba_whole, ssm_stages, ssm_whole
from lstmkit.explain.walkthrough.xlstm_stages import mlstm_stages, slstm_stages
from lstmkit.reference import MODES, gru, lstm, mamba, mlstm, rnn, slstm, ssm
from lstmkit.reference.examples import Example

SEED_TYPO = (
    "One seed text writes the input term as C'1 .* o1 (candidate times the output gate); "
    "the correct term, used here and in the other seed, is C'1 .* i1 (candidate times the input gate)."
)


ALL_STEPS = -1
"""A stage's t when it shows every time step at once (the state-space cells' convolution and matrix views)."""


class Stage(NamedTuple):
    number: int
    """The bracketed step number, [1], [2], ... counted over the whole walkthrough."""
    t: int
    """Time step: 0 for [1] Given, ALL_STEPS for a stage about the whole sequence (after the last step)."""
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
    steps = trace(example, MODES[mode])
    stages = [Stage(1, 0, "Given", _given_rows(example))]
    weights = _weights(example)
    for t, (s, x) in enumerate(zip(steps, example.xs, strict=True), start=1):
        for title, rows, note in STAGES[example.cell](s, t, x, weights):
            stages.append(Stage(len(stages) + 1, t, title, rows, note))
    for title, rows, note in WHOLE.get(example.cell, _nothing)(example, steps, MODES[mode]):
        stages.append(Stage(len(stages) + 1, ALL_STEPS, title, rows, note))
    return Walkthrough(example.cell, mode, example, steps, stages)


RUN = {
    "lstm": lstm.run,
    "gru": gru.run,
    "rnn": rnn.run,
    "slstm": slstm.run_cell,
    "mlstm": mlstm.run_cell,
    "ssm": ssm.run,
    "mamba": mamba.run,
}
"""cell -> run(params, xs, state0, rounding) -> [step trace]; Mamba's also takes gate=z."""


def _weights(example: Example) -> dict:
    """What the per-step stages read: the spec's weights (the seeds' concatenated layout), or for the state-space
    cells their parameters (C × N even with one channel; the SSM's discretization too)."""
    if example.cell in STATE_SPACE:
        return example.params.checked()._asdict()
    return {name: np.asarray(w) for name, w in to_dict(example)["weights"].items()}


def _nothing(example: Example, steps: list, rounding):
    return ()


WHOLE: dict = {"ssm": ssm_whole, "mamba": mamba_whole}
"""cell -> stages(example, steps, rounding) yielding (title, rows, note) about the whole sequence, after the
per-step stages (the SSM's convolution view, Mamba's matrix view)."""


def trace(example: Example, rounding) -> list:
    """The reference's step traces of an example, with Mamba's gate when it has one."""
    run = RUN[example.cell]
    if example.gate is None:
        return run(example.params, example.xs, example.state0, rounding)
    return run(example.params, example.xs, example.state0, rounding, gate=example.gate)


def _given_rows(ex: Example) -> list[Row]:
    spec = to_dict(ex)
    if ex.cell in STATE_SPACE:
        return _state_space_given_rows(ex, spec)
    sizes = f"{spec['input_size']}, {spec['hidden_size']}"
    rows = [Row("Sizes", "input size, hidden size", np.array([spec["input_size"], spec["hidden_size"]]))]
    if ex.cell == "mlstm":
        rows = [
            Row(
                "Sizes",
                f"input, value (= hidden) and key size: {sizes}, {spec['key_size']}",
                np.array([spec["input_size"], spec["hidden_size"], spec["key_size"]]),
            )
        ]
    if ex.cell == "slstm":
        rows.append(Row("Heads", "memory mixing inside each head", np.array(spec["num_heads"])))
    rows += [Row(f"X{t}", f"input at t = {t}", np.asarray(x)) for t, x in enumerate(ex.xs, start=1)]
    names = {"c": "C"} if ex.cell == "lstm" else {}
    rows += [Row(f"{names.get(k, k)}0", "initial state", np.asarray(v)) for k, v in ex.state0._asdict().items()]
    for name, w in spec["weights"].items():
        how = ACTS_ON.get(name, "acts on [h, x]" if np.ndim(w) == 2 else "bias")
        rows.append(Row(name, how, np.asarray(w)))
    return rows


ACTS_ON = {
    "W_in": "acts on x",
    "W_hn": "acts on h",  # the GRU candidate's parts
    "W_q": "q = W_q x",
    "W_k": "k = W_k x",
    "W_v": "v = W_v x",
    "w_i": "ĩ = w_i · x + b_i",
    "w_f": "f̃ = w_f · x + b_f",
}
"""How a weight is used, where it is not a matrix acting on [h, x] or a bias."""


def _state_space_given_rows(ex: Example, spec: dict) -> list[Row]:
    """Sizes (C channels, state size N), the inputs (and Mamba's gate inputs), h0, the weights and their use."""
    rows = [Row("Sizes", "input channels C, state size N", np.array([spec["input_size"], spec["state_size"]]))]
    rows += [Row(f"X{t}", f"input at t = {t}", np.asarray(x)) for t, x in enumerate(ex.xs, start=1)]
    if ex.gate is not None:
        rows += [Row(f"z{t}", f"gate input at t = {t}", np.asarray(z)) for t, z in enumerate(ex.gate, start=1)]
    rows.append(Row("h0", "initial state", np.asarray(spec["initial_state"]["h"])))
    uses = MAMBA_USES
    if ex.cell == "ssm":
        a_formula, b_formula, _ = DISCRETE[spec["discretization"]]
        step = f"the step Δ; {spec['discretization']}: Ā = {a_formula}, B̄ = {b_formula}"
        uses = {**SSM_USES, "delta": step}
    return rows + [Row(name, uses[name], np.asarray(w)) for name, w in spec["weights"].items()]


SSM_USES = {
    "A": "decay rates, negative: ΔA = Δ ⊙ A",
    "B": "input weights: B̄ from B by the discretization",
    "C": "read-out: y_t = Σ_n C ⊙ h_t + D x_t",
    "D": "skip: D x_t",
}
MAMBA_USES = {
    "A": "decay rates, negative (A = -exp(A_log)): Ā_t = exp(Δ_t A)",
    "W_delta": "Δ_t = softplus(W_delta x_t + b_delta)",
    "b_delta": "Δ_t = softplus(W_delta x_t + b_delta)",
    "W_B": "B_t = W_B x_t",
    "W_C": "C_t = W_C x_t",
    "D": "skip: y_t = h_t C_t + D x_t",
}
"""How each state-space weight is used (the Given stage)."""


def _initialize(s, t: int, x: np.ndarray):
    """The Initialize stage of any cell: the previous hidden state (and memory, if the cell has one), the input."""
    p = t - 1
    first = "given" if t == 1 else f"copied from step {p}"
    rows = [Row(f"h{p}", f"previous hidden state ({first})", s.h_prev)]
    if hasattr(s, "c_prev"):
        rows.append(Row(f"C{p}", f"previous memory ({first})", s.c_prev))
    rows.append(Row(f"X{t}", "current input", x))
    return "Initialize", rows, ""


def _lstm_stages(s: lstm.LSTMStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    p = t - 1
    hx = f"[h{p}, X{t}]"
    yield _initialize(s, t, x)
    yield (
        "Linear transform",
        [
            Row(f"[h{p}, X{t}]", "concatenation", s.hx),
            Row(f"pre f{t}", f"W_f [h{p}, X{t}] + b_f", s.pre_f, terms=affine(w, "f", hx, s.hx)),
            Row(f"pre i{t}", f"W_i [h{p}, X{t}] + b_i", s.pre_i, terms=affine(w, "i", hx, s.hx)),
            Row(f"pre o{t}", f"W_o [h{p}, X{t}] + b_o", s.pre_o, terms=affine(w, "o", hx, s.hx)),
            Row(f"pre C'{t}", f"W_c [h{p}, X{t}] + b_c", s.pre_g, terms=affine(w, "c", hx, s.hx)),
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
            Row("Forget", f"C{p} .* f{t}", s.forget_term, terms=eq(("", f"C{p}", s.c_prev), ("⊙", f"f{t}", s.f))),
            Row("Input", f"C'{t} .* i{t}", s.input_term, terms=eq(("", f"C'{t}", s.g), ("⊙", f"i{t}", s.i))),
            Row(
                f"Memory C{t}",
                f"C{p} .* f{t} + C'{t} .* i{t}",
                s.c,
                terms=eq(("", "Forget", s.forget_term), ("+", "Input", s.input_term)),
            ),
        ],
        SEED_TYPO if t == 1 else "",
    )
    yield "Candidate output", [Row(f"o'{t}", f"tanh(C{t})", s.tanh_c, s.c)], ""
    terms = eq(("", f"o'{t}", s.tanh_c), ("⊙", f"o{t}", s.o))
    yield (
        "Update hidden state",
        [Row(f"h{t}", f"o'{t} .* o{t}", s.h, terms=terms)],
        f"h{t} is also the output at t = {t}.",
    )


def _rnn_stages(s: rnn.RNNStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    p = t - 1
    yield _initialize(s, t, x)
    yield (
        "Linear transform",
        [
            Row(f"[h{p}, X{t}]", "concatenation", s.hx),
            Row(
                f"pre h{t}",
                f"W [h{p}, X{t}] + b",
                s.pre,
                terms=eq(("", "W", w["W"]), ("·", f"[h{p}, X{t}]", s.hx), ("+", "b", w["b"])),
            ),
        ],
        "One weight matrix: the RNN is the LSTM's candidate path alone, with no gates and no memory.",
    )
    yield "Update hidden state", [Row(f"h{t}", "tanh", s.h, s.pre)], f"h{t} is also the output at t = {t}."


def _gru_stages(s: gru.GRUStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    p = t - 1
    hx = f"[h{p}, X{t}]"
    yield _initialize(s, t, x)
    yield (
        "Linear transform",
        [
            Row(f"[h{p}, X{t}]", "concatenation", s.hx),
            Row(f"pre r{t}", f"W_r [h{p}, X{t}] + b_r", s.pre_r, terms=affine(w, "r", hx, s.hx)),
            Row(f"pre z{t}", f"W_z [h{p}, X{t}] + b_z", s.pre_z, terms=affine(w, "z", hx, s.hx)),
            Row("input part of n", f"W_in X{t} + b_in", s.xn, terms=affine(w, "in", f"X{t}", x)),
            Row("hidden part of n", f"W_hn h{p} + b_hn", s.hn, terms=affine(w, "hn", f"h{p}", s.h_prev)),
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
            Row(
                "Reset",
                f"r{t} .* (W_hn h{p} + b_hn)",
                s.reset_term,
                terms=eq(("", f"r{t}", s.r), ("⊙", "hidden part of n", s.hn)),
            ),
            Row(
                f"pre n{t}",
                f"W_in X{t} + b_in + r{t} .* (W_hn h{p} + b_hn)",
                s.pre_n,
                terms=eq(("", "input part of n", s.xn), ("+", "Reset", s.reset_term)),
            ),
            Row(f"Candidate n{t}", "tanh", s.n, s.pre_n),
        ],
        "The reset gate scales the hidden part only (PyTorch's GRU).",
    )
    yield (
        "Update hidden state",
        [
            Row("New", f"(1 - z{t}) .* n{t}", s.new_term, terms=eq(("", f"1 - z{t}", 1 - s.z), ("⊙", f"n{t}", s.n))),
            Row("Keep", f"z{t} .* h{p}", s.keep_term, terms=eq(("", f"z{t}", s.z), ("⊙", f"h{p}", s.h_prev))),
            Row(
                f"h{t}",
                f"(1 - z{t}) .* n{t} + z{t} .* h{p}",
                s.h,
                terms=eq(("", "New", s.new_term), ("+", "Keep", s.keep_term)),
            ),
        ],
        "z plays the LSTM's forget gate and 1 - z its input gate; there is no separate memory.",
    )


STAGES = {
    "lstm": _lstm_stages,
    "rnn": _rnn_stages,
    "gru": _gru_stages,
    "slstm": slstm_stages,
    "mlstm": mlstm_stages,
    "ssm": ssm_stages,
    "mamba": mamba_stages,
}
