"""The seeds' walkthrough as data: numbered stages of rows, built from reference traces.

For the LSTM, each time step t has the seeds' six stages (`shared/seeds/000_*.txt`):

    Initialize · Linear transform · Non-linear transform · Update memory · Candidate output · Update hidden state

preceded once by [1] Given (sizes, weights, inputs). The RNN and GRU walkthroughs use the same frame
with their own stages. The sLSTM adds the stabilized exponential gates and the normalizer; the mLSTM
shows the projections, the outer product k vᵀ written into the matrix memory C, and the retrieval q̂ᵀC.
Renderers (text, markdown, json, html) only read a `Walkthrough`; nothing here
computes anything that the reference trace does not already hold, except the labels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.explain.spec import to_dict
from lstmkit.reference import MODES, gru, lstm, mlstm, rnn, slstm
from lstmkit.reference.examples import Example

SEED_TYPO = (
    "One seed text writes the input term as C'1 .* o1 (candidate times the output gate); "
    "the correct term, used here and in the other seed, is C'1 .* i1 (candidate times the input gate)."
)


class Term(NamedTuple):
    op: str
    """The operator before this term: '' (first), '·' (matrix product), '⊙' (elementwise), '+', '/'."""
    label: str
    value: np.ndarray


def _eq(*parts) -> tuple[Term, ...]:
    """_eq(("", "W_f", W), ("·", "[h0, X1]", hx)) -> the terms of W_f · [h0, X1]."""
    return tuple(Term(op, label, np.asarray(value)) for op, label, value in parts)


class Row(NamedTuple):
    label: str
    """What the value is, e.g. 'Forget gate f1'."""
    formula: str
    """How it is computed, e.g. 'σ(pre_f)'."""
    value: np.ndarray
    """The number(s) shown (a vector, or a matrix in [1] Given)."""
    source: np.ndarray | None = None
    """For a squashing step, the value it came from: shown as 'source → value' like the seeds."""
    terms: tuple[Term, ...] = ()
    """For a value computed from others, the equation's right-hand side, e.g. W_f · [h0, X1] + b_f: the web
    page draws each term as a grid (1-D arrays as columns, like the seeds' figures)."""


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
    steps = RUN[example.cell](example.params, example.xs, example.state0, MODES[mode])
    stages = [Stage(1, 0, "Given", _given_rows(example))]
    weights = {name: np.asarray(w) for name, w in to_dict(example)["weights"].items()}
    for t, (s, x) in enumerate(zip(steps, example.xs, strict=True), start=1):
        for title, rows, note in STAGES[example.cell](s, t, x, weights):
            stages.append(Stage(len(stages) + 1, t, title, rows, note))
    return Walkthrough(example.cell, mode, example, steps, stages)


RUN = {"lstm": lstm.run, "gru": gru.run, "rnn": rnn.run, "slstm": slstm.run_cell, "mlstm": mlstm.run_cell}
"""cell -> run(params, xs, state0, rounding) -> [step trace]."""


def _given_rows(ex: Example) -> list[Row]:
    spec = to_dict(ex)
    sizes = f"{spec['input_size']}, {spec['hidden_size']}"
    rows = [Row("Sizes", "input size, hidden size", np.array([spec["input_size"], spec["hidden_size"]]))]
    if ex.cell == "mlstm":
        rows = [Row("Sizes", f"input, value (= hidden) and key size: {sizes}, {spec['key_size']}",
                    np.array([spec["input_size"], spec["hidden_size"], spec["key_size"]]))]  # fmt: skip
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
    "W_in": "acts on x", "W_hn": "acts on h",  # the GRU candidate's parts
    "W_q": "q = W_q x", "W_k": "k = W_k x", "W_v": "v = W_v x", "w_i": "ĩ = w_i · x + b_i", "w_f": "f̃ = w_f · x + b_f",
}  # fmt: skip
"""How a weight is used, where it is not a matrix acting on [h, x] or a bias."""


def _affine(w: dict[str, np.ndarray], gate: str, label: str, vector: np.ndarray) -> tuple[Term, ...]:
    """W_gate · vector + b_gate."""
    return _eq(("", f"W_{gate}", w[f"W_{gate}"]), ("·", label, vector), ("+", f"b_{gate}", w[f"b_{gate}"]))


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
            Row(f"pre f{t}", f"W_f [h{p}, X{t}] + b_f", s.pre_f, terms=_affine(w, "f", hx, s.hx)),
            Row(f"pre i{t}", f"W_i [h{p}, X{t}] + b_i", s.pre_i, terms=_affine(w, "i", hx, s.hx)),
            Row(f"pre o{t}", f"W_o [h{p}, X{t}] + b_o", s.pre_o, terms=_affine(w, "o", hx, s.hx)),
            Row(f"pre C'{t}", f"W_c [h{p}, X{t}] + b_c", s.pre_g, terms=_affine(w, "c", hx, s.hx)),
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
            Row("Forget", f"C{p} .* f{t}", s.forget_term, terms=_eq(("", f"C{p}", s.c_prev), ("⊙", f"f{t}", s.f))),
            Row("Input", f"C'{t} .* i{t}", s.input_term, terms=_eq(("", f"C'{t}", s.g), ("⊙", f"i{t}", s.i))),
            Row(
                f"Memory C{t}",
                f"C{p} .* f{t} + C'{t} .* i{t}",
                s.c,
                terms=_eq(("", "Forget", s.forget_term), ("+", "Input", s.input_term)),
            ),
        ],
        SEED_TYPO if t == 1 else "",
    )
    yield "Candidate output", [Row(f"o'{t}", f"tanh(C{t})", s.tanh_c, s.c)], ""
    terms = _eq(("", f"o'{t}", s.tanh_c), ("⊙", f"o{t}", s.o))
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
                terms=_eq(("", "W", w["W"]), ("·", f"[h{p}, X{t}]", s.hx), ("+", "b", w["b"])),
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
            Row(f"pre r{t}", f"W_r [h{p}, X{t}] + b_r", s.pre_r, terms=_affine(w, "r", hx, s.hx)),
            Row(f"pre z{t}", f"W_z [h{p}, X{t}] + b_z", s.pre_z, terms=_affine(w, "z", hx, s.hx)),
            Row("input part of n", f"W_in X{t} + b_in", s.xn, terms=_affine(w, "in", f"X{t}", x)),
            Row("hidden part of n", f"W_hn h{p} + b_hn", s.hn, terms=_affine(w, "hn", f"h{p}", s.h_prev)),
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
                terms=_eq(("", f"r{t}", s.r), ("⊙", "hidden part of n", s.hn)),
            ),
            Row(
                f"pre n{t}",
                f"W_in X{t} + b_in + r{t} .* (W_hn h{p} + b_hn)",
                s.pre_n,
                terms=_eq(("", "input part of n", s.xn), ("+", "Reset", s.reset_term)),
            ),
            Row(f"Candidate n{t}", "tanh", s.n, s.pre_n),
        ],
        "The reset gate scales the hidden part only (PyTorch's GRU).",
    )
    yield (
        "Update hidden state",
        [
            Row("New", f"(1 - z{t}) .* n{t}", s.new_term, terms=_eq(("", f"1 - z{t}", 1 - s.z), ("⊙", f"n{t}", s.n))),
            Row("Keep", f"z{t} .* h{p}", s.keep_term, terms=_eq(("", f"z{t}", s.z), ("⊙", f"h{p}", s.h_prev))),
            Row(
                f"h{t}",
                f"(1 - z{t}) .* n{t} + z{t} .* h{p}",
                s.h,
                terms=_eq(("", "New", s.new_term), ("+", "Keep", s.keep_term)),
            ),
        ],
        "z plays the LSTM's forget gate and 1 - z its input gate; there is no separate memory.",
    )


def _slstm_stages(s: slstm.sLSTMStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    p = t - 1
    hx, hx_value = f"[h{p}, X{t}]", np.concatenate([s.h_prev, x])
    first = "given" if t == 1 else f"copied from step {p}"
    yield (
        "Initialize",
        [
            Row(f"h{p}", f"previous hidden state ({first})", s.h_prev),
            Row(f"c{p}", f"previous cell ({first})", s.c_prev),
            Row(f"n{p}", f"previous normalizer ({first})", s.n_prev),
            Row(f"m{p}", f"previous stabilizer ({first})", s.m_prev),
            Row(f"X{t}", "current input", x),
        ],
        "",
    )
    yield (
        "Linear transform",
        [
            Row(hx, "concatenation", hx_value),
            Row(f"ĩ{t}", f"W_i [h{p}, X{t}] + b_i", s.pre_i, terms=_affine(w, "i", hx, hx_value)),
            Row(f"f̃{t}", f"W_f [h{p}, X{t}] + b_f", s.pre_f, terms=_affine(w, "f", hx, hx_value)),
            Row(f"z̃{t}", f"W_z [h{p}, X{t}] + b_z", s.pre_z, terms=_affine(w, "z", hx, hx_value)),
            Row(f"õ{t}", f"W_o [h{p}, X{t}] + b_o", s.pre_o, terms=_affine(w, "o", hx, hx_value)),
        ],
        "The LSTM's four products. The h columns are the memory mixing R (block-diagonal: one block per head).",
    )
    yield (
        "Exponential gates, stabilized",
        [
            Row(f"log f̃{t}", f"log σ(f̃{t})", s.log_f, s.pre_f),
            Row(f"Stabilizer m{t}", f"max(log σ(f̃{t}) + m{p}, ĩ{t})", s.m),
            Row(f"Input gate i{t}", f"exp(ĩ{t} - m{t})", s.i),
            Row(f"Forget gate f{t}", f"exp(log σ(f̃{t}) + m{p} - m{t})", s.f),
            Row(f"Cell input z{t}", "tanh", s.z, s.pre_z),
            Row(f"Output gate o{t}", "σ", s.o, s.pre_o),
        ],
        "The input gate is exp(ĩ), not σ(ĩ): it can grow without bound, so every gate is divided by e^m, the "
        "largest of the two. Both gates are then at most 1 and c, n are scaled alike, which h never sees."
        + (" Where n = 0 the memory is empty and m restarts at ĩ." if s.restart.any() else ""),
    )
    yield (
        "Update memory",
        [
            Row(
                f"Cell c{t}",
                f"f{t} .* c{p} + i{t} .* z{t}",
                s.c,
                terms=_eq(("", f"f{t}", s.f), ("⊙", f"c{p}", s.c_prev), ("+", f"i{t}", s.i), ("⊙", f"z{t}", s.z)),
            ),
            Row(
                f"Normalizer n{t}",
                f"f{t} .* n{p} + i{t}",
                s.n,
                terms=_eq(("", f"f{t}", s.f), ("⊙", f"n{p}", s.n_prev), ("+", f"i{t}", s.i)),
            ),
        ],
        "n adds up the gate weights that c used, so c / n is a weighted average of the inputs z.",
    )
    yield (
        "Update hidden state",
        [
            Row(f"c{t} / n{t}", "normalized cell", s.c_over_n, terms=_eq(("", f"c{t}", s.c), ("/", f"n{t}", s.n))),
            Row(f"h{t}", f"o{t} .* c{t} / n{t}", s.h, terms=_eq(("", f"o{t}", s.o), ("⊙", f"c{t} / n{t}", s.c_over_n))),
        ],
        f"No tanh here: c / n averages tanh values, so it stays between -1 and 1. h{t} is also the output at t = {t}.",
    )


def _mlstm_stages(s: mlstm.mLSTMStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    p = t - 1
    first = "given" if t == 1 else f"copied from step {p}"
    yield (
        "Initialize",
        [
            Row(f"C{p}", f"previous matrix memory ({first})", s.C_prev),
            Row(f"n{p}", f"previous normalizer ({first})", s.n_prev),
            Row(f"m{p}", f"previous stabilizer ({first})", np.array(s.m_prev)),
            Row(f"X{t}", "current input", x),
        ],
        "",
    )
    yield (
        "Query, key, value and gates",
        [
            Row(f"q{t}", f"W_q X{t}", s.q, terms=_eq(("", "W_q", w["W_q"]), ("·", f"X{t}", x))),
            Row(f"k{t}", f"W_k X{t}", s.k, terms=_eq(("", "W_k", w["W_k"]), ("·", f"X{t}", x))),
            Row(f"v{t}", f"W_v X{t}", s.v, terms=_eq(("", "W_v", w["W_v"]), ("·", f"X{t}", x))),
            Row(
                f"ĩ{t}",
                f"w_i · X{t} + b_i",
                np.array(s.pre_i),
                terms=_eq(("", "w_iᵀ", w["w_i"][None]), ("·", f"X{t}", x), ("+", "b_i", w["b_i"])),
            ),
            Row(
                f"f̃{t}",
                f"w_f · X{t} + b_f",
                np.array(s.pre_f),
                terms=_eq(("", "w_fᵀ", w["w_f"][None]), ("·", f"X{t}", x), ("+", "b_f", w["b_f"])),
            ),
        ],
        "No h_{t-1} on the right: the gates and projections see only the input, so all steps can run in parallel.",
    )
    yield (
        "Exponential gates, stabilized",
        [
            Row(f"log f̃{t}", f"log σ(f̃{t})", np.array(s.log_f), np.array(s.pre_f)),
            Row(f"Stabilizer m{t}", f"max(log σ(f̃{t}) + m{p}, ĩ{t})", np.array(s.m)),
            Row(f"Input gate i{t}", f"exp(ĩ{t} - m{t})", np.array(s.i)),
            Row(f"Forget gate f{t}", f"exp(log σ(f̃{t}) + m{p} - m{t})", np.array(s.f)),
        ],
        "One scalar gate per head, stabilized like the sLSTM's.",
    )
    yield (
        "Update memory",
        [
            Row(f"k{t} v{t}ᵀ", "outer product", s.kv, terms=_eq(("", f"k{t}", s.k), ("·", f"v{t}ᵀ", s.v[None]))),
            Row(
                f"Memory C{t}",
                f"f{t} C{p} + i{t} k{t} v{t}ᵀ",
                s.C,
                terms=_eq(
                    ("", f"f{t}", s.f), ("·", f"C{p}", s.C_prev), ("+", f"i{t}", s.i), ("·", f"k{t} v{t}ᵀ", s.kv)
                ),
            ),
            Row(
                f"Normalizer n{t}",
                f"f{t} n{p} + i{t} k{t}",
                s.n,
                terms=_eq(("", f"f{t}", s.f), ("·", f"n{p}", s.n_prev), ("+", f"i{t}", s.i), ("·", f"k{t}", s.k)),
            ),
        ],
        "The memory stores the value v under the key k (a rank-one update), the way a key-value table does.",
    )
    yield (
        "Retrieve",
        [
            Row(f"q̂{t}", f"q{t} / √{len(s.q)}", s.q_scaled),
            Row(
                f"q̂{t}ᵀ C{t}",
                "what the query reads",
                s.num,
                terms=_eq(("", f"q̂{t}ᵀ", s.q_scaled[None]), ("·", f"C{t}", s.C)),
            ),
            Row(
                f"q̂{t}ᵀ n{t}",
                "how much was written under q",
                np.array(s.qn),
                terms=_eq(("", f"q̂{t}ᵀ", s.q_scaled[None]), ("·", f"n{t}", s.n)),
            ),
            Row("Denominator", f"max(|q̂{t}ᵀ n{t}|, exp(-m{t})) + 1e-6", np.array(s.den)),
            Row(
                f"h{t}",
                f"q̂{t}ᵀ C{t} / denominator",
                s.h,
                terms=_eq(("", f"q̂{t}ᵀ C{t}", s.num), ("/", "denominator", np.array(s.den))),
            ),
        ],
        f"h{t} is the cell's output at t = {t}; the paper's output gate σ(W_o x) multiplies it in the layer.",
    )


STAGES = {"lstm": _lstm_stages, "rnn": _rnn_stages, "gru": _gru_stages, "slstm": _slstm_stages, "mlstm": _mlstm_stages}
