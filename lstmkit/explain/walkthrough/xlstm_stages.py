"""The sLSTM's and the mLSTM's stages of a walkthrough (see stages.py), built from reference traces.

sLSTM: Initialize · Linear transform · Exponential gates, stabilized · Update memory · Update hidden state
mLSTM: Initialize · Query, key, value and gates · Exponential gates, stabilized · Update memory · Retrieve

One function per stage, each returning (title, rows, note); slstm_stages and mlstm_stages yield them in order.
"""

from __future__ import annotations

import numpy as np

from lstmkit.explain.walkthrough.rows import Row, affine, eq
from lstmkit.reference import mlstm, slstm


def slstm_stages(s: slstm.sLSTMStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    """The sLSTM's five stages of step t."""
    yield _slstm_initialize(s, t, x)
    yield _slstm_linear(s, t, x, w)
    yield _slstm_gates(s, t)
    yield _slstm_memory(s, t)
    yield _slstm_hidden(s, t)


def _slstm_initialize(s: slstm.sLSTMStep, t: int, x: np.ndarray):
    """The previous h, c, n, m and the input."""
    p = t - 1
    first = "given" if t == 1 else f"copied from step {p}"
    return (
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


def _slstm_linear(s: slstm.sLSTMStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    """ĩ, f̃, z̃, õ: W [h_{t-1}, x_t] + b, one product per gate."""
    p = t - 1
    hx, hx_value = f"[h{p}, X{t}]", np.concatenate([s.h_prev, x])
    return (
        "Linear transform",
        [
            Row(hx, "concatenation", hx_value),
            Row(f"ĩ{t}", f"W_i [h{p}, X{t}] + b_i", s.pre_i, terms=affine(w, "i", hx, hx_value)),
            Row(f"f̃{t}", f"W_f [h{p}, X{t}] + b_f", s.pre_f, terms=affine(w, "f", hx, hx_value)),
            Row(f"z̃{t}", f"W_z [h{p}, X{t}] + b_z", s.pre_z, terms=affine(w, "z", hx, hx_value)),
            Row(f"õ{t}", f"W_o [h{p}, X{t}] + b_o", s.pre_o, terms=affine(w, "o", hx, hx_value)),
        ],
        "The LSTM's four products. The h columns are the memory mixing R (block-diagonal: one block per head).",
    )


def _slstm_gates(s: slstm.sLSTMStep, t: int):
    """m = max(log σ(f̃) + m_{t-1}, ĩ);  i = exp(ĩ - m);  f = exp(log σ(f̃) + m_{t-1} - m);  z, o."""
    p = t - 1
    return (
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


def _slstm_memory(s: slstm.sLSTMStep, t: int):
    """c = f ⊙ c_{t-1} + i ⊙ z;  n = f ⊙ n_{t-1} + i."""
    p = t - 1
    return (
        "Update memory",
        [
            Row(
                f"Cell c{t}",
                f"f{t} .* c{p} + i{t} .* z{t}",
                s.c,
                terms=eq(("", f"f{t}", s.f), ("⊙", f"c{p}", s.c_prev), ("+", f"i{t}", s.i), ("⊙", f"z{t}", s.z)),
            ),
            Row(
                f"Normalizer n{t}",
                f"f{t} .* n{p} + i{t}",
                s.n,
                terms=eq(("", f"f{t}", s.f), ("⊙", f"n{p}", s.n_prev), ("+", f"i{t}", s.i)),
            ),
        ],
        "n adds up the gate weights that c used, so c / n is a weighted average of the inputs z.",
    )


def _slstm_hidden(s: slstm.sLSTMStep, t: int):
    """h = o ⊙ c / n."""
    return (
        "Update hidden state",
        [
            Row(f"c{t} / n{t}", "normalized cell", s.c_over_n, terms=eq(("", f"c{t}", s.c), ("/", f"n{t}", s.n))),
            Row(f"h{t}", f"o{t} .* c{t} / n{t}", s.h, terms=eq(("", f"o{t}", s.o), ("⊙", f"c{t} / n{t}", s.c_over_n))),
        ],
        f"No tanh here: c / n averages tanh values, so it stays between -1 and 1. h{t} is also the output at t = {t}.",
    )


def mlstm_stages(s: mlstm.mLSTMStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    """The mLSTM's five stages of step t."""
    yield _mlstm_initialize(s, t, x)
    yield _mlstm_projections(s, t, x, w)
    yield _mlstm_gates(s, t)
    yield _mlstm_memory(s, t)
    yield _mlstm_retrieve(s, t)


def _mlstm_initialize(s: mlstm.mLSTMStep, t: int, x: np.ndarray):
    """The previous C, n, m and the input."""
    p = t - 1
    first = "given" if t == 1 else f"copied from step {p}"
    return (
        "Initialize",
        [
            Row(f"C{p}", f"previous matrix memory ({first})", s.C_prev),
            Row(f"n{p}", f"previous normalizer ({first})", s.n_prev),
            Row(f"m{p}", f"previous stabilizer ({first})", np.array(s.m_prev)),
            Row(f"X{t}", "current input", x),
        ],
        "",
    )


def _mlstm_projections(s: mlstm.mLSTMStep, t: int, x: np.ndarray, w: dict[str, np.ndarray]):
    """q, k, v = W_q x, W_k x, W_v x;  ĩ, f̃ = w · x + b."""
    return (
        "Query, key, value and gates",
        [
            Row(f"q{t}", f"W_q X{t}", s.q, terms=eq(("", "W_q", w["W_q"]), ("·", f"X{t}", x))),
            Row(f"k{t}", f"W_k X{t}", s.k, terms=eq(("", "W_k", w["W_k"]), ("·", f"X{t}", x))),
            Row(f"v{t}", f"W_v X{t}", s.v, terms=eq(("", "W_v", w["W_v"]), ("·", f"X{t}", x))),
            Row(
                f"ĩ{t}",
                f"w_i · X{t} + b_i",
                np.array(s.pre_i),
                terms=eq(("", "w_iᵀ", w["w_i"][None]), ("·", f"X{t}", x), ("+", "b_i", w["b_i"])),
            ),
            Row(
                f"f̃{t}",
                f"w_f · X{t} + b_f",
                np.array(s.pre_f),
                terms=eq(("", "w_fᵀ", w["w_f"][None]), ("·", f"X{t}", x), ("+", "b_f", w["b_f"])),
            ),
        ],
        "No h_{t-1} on the right: the gates and projections see only the input, so all steps can run in parallel.",
    )


def _mlstm_gates(s: mlstm.mLSTMStep, t: int):
    """m = max(log σ(f̃) + m_{t-1}, ĩ);  i = exp(ĩ - m);  f = exp(log σ(f̃) + m_{t-1} - m)."""
    p = t - 1
    return (
        "Exponential gates, stabilized",
        [
            Row(f"log f̃{t}", f"log σ(f̃{t})", np.array(s.log_f), np.array(s.pre_f)),
            Row(f"Stabilizer m{t}", f"max(log σ(f̃{t}) + m{p}, ĩ{t})", np.array(s.m)),
            Row(f"Input gate i{t}", f"exp(ĩ{t} - m{t})", np.array(s.i)),
            Row(f"Forget gate f{t}", f"exp(log σ(f̃{t}) + m{p} - m{t})", np.array(s.f)),
        ],
        "One scalar gate per head, stabilized like the sLSTM's.",
    )


def _mlstm_memory(s: mlstm.mLSTMStep, t: int):
    """C = f C_{t-1} + i k vᵀ;  n = f n_{t-1} + i k."""
    p = t - 1
    return (
        "Update memory",
        [
            Row(f"k{t} v{t}ᵀ", "outer product", s.kv, terms=eq(("", f"k{t}", s.k), ("·", f"v{t}ᵀ", s.v[None]))),
            Row(
                f"Memory C{t}",
                f"f{t} C{p} + i{t} k{t} v{t}ᵀ",
                s.C,
                terms=eq(("", f"f{t}", s.f), ("·", f"C{p}", s.C_prev), ("+", f"i{t}", s.i), ("·", f"k{t} v{t}ᵀ", s.kv)),
            ),
            Row(
                f"Normalizer n{t}",
                f"f{t} n{p} + i{t} k{t}",
                s.n,
                terms=eq(("", f"f{t}", s.f), ("·", f"n{p}", s.n_prev), ("+", f"i{t}", s.i), ("·", f"k{t}", s.k)),
            ),
        ],
        "The memory stores the value v under the key k (a rank-one update), the way a key-value table does.",
    )


def _mlstm_retrieve(s: mlstm.mLSTMStep, t: int):
    """h = q̂ᵀ C / (max(|q̂ᵀ n|, exp(-m)) + 1e-6), q̂ = q / √DK."""
    return (
        "Retrieve",
        [
            Row(f"q̂{t}", f"q{t} / √{len(s.q)}", s.q_scaled),
            Row(
                f"q̂{t}ᵀ C{t}",
                "what the query reads",
                s.num,
                terms=eq(("", f"q̂{t}ᵀ", s.q_scaled[None]), ("·", f"C{t}", s.C)),
            ),
            Row(
                f"q̂{t}ᵀ n{t}",
                "how much was written under q",
                np.array(s.qn),
                terms=eq(("", f"q̂{t}ᵀ", s.q_scaled[None]), ("·", f"n{t}", s.n)),
            ),
            Row("Denominator", f"max(|q̂{t}ᵀ n{t}|, exp(-m{t})) + 1e-6", np.array(s.den)),
            Row(
                f"h{t}",
                f"q̂{t}ᵀ C{t} / denominator",
                s.h,
                terms=eq(("", f"q̂{t}ᵀ C{t}", s.num), ("/", "denominator", np.array(s.den))),
            ),
        ],
        f"h{t} is the cell's output at t = {t}; the paper's output gate σ(W_o x) multiplies it in the layer.",
    )
