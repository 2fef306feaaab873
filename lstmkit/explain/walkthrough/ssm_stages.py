"""The state-space cells' stages of a walkthrough (see stages.py), built from reference traces.

ssm:   Initialize · Discretize · Update state · Output, then (t = 1..T) Convolution view · Family resemblance
mamba: Initialize · Discretize · Update state · Output, then (t = 1..T) Matrix view · Family resemblance

C channels, N state entries per channel; h, ΔA, Ā, B̄ are C × N, x, Δ, y are C long:

    ssm    ΔA = Δ ⊙ A;  Ā, B̄ by the discretization;  h_t = Ā ⊙ h_{t-1} + B̄ x_t;  y_t = Σ_n C ⊙ h_t + D x_t
           all at once: K_k = Σ_n C ⊙ Ā^k ⊙ B̄,  y = K * x + D x  (K's Toeplitz matrix times x)
    mamba  Δ_t = softplus(W_delta x_t + b_delta);  B_t = W_B x_t;  C_t = W_C x_t;  Ā_t = exp(Δ_t A);  B̄_t = Δ_t B_tᵀ
           h_t = Ā_t ⊙ h_{t-1} + B̄_t x_t;  y_t = h_t C_t + D x_t;  out_t = y_t ⊙ SiLU(z_t) when gated
           all at once: M_ts = Σ_n C_t[n] L_ts[n] B_s[n] Δ_s,  L_ts = exp(Σ_{k=s+1..t} Δ_k A) (s ≤ t),  y = M x + D x

One function per stage, each returning (title, rows, note). The per-step stages read `w`, the cell's parameters
(SSMParams or MambaParams as a dict); the whole-sequence ones take the reference's convolution and matrix views.
"""

from __future__ import annotations

import numpy as np

from lstmkit.explain.walkthrough.rows import Row, eq
from lstmkit.reference import mamba, ssm
from lstmkit.reference.examples import Example

DISCRETE = {
    "zoh": ("exp(ΔA)", "(Ā - 1) / A ⊙ B", "Zero-order hold: exact when the input is held for the step Δ."),
    "bilinear": (
        "(1 + ΔA/2) / (1 - ΔA/2)",
        "Δ B / (1 - ΔA/2)",
        "Bilinear (Tustin): the trapezoid rule; Ā turns negative where ΔA < -2.",
    ),
    "zoh-euler": ("exp(ΔA)", "Δ B", "Mamba's choice: zero-order hold for A, Euler's step B̄ = Δ B for B."),
}
"""discretization -> (Ā's formula, B̄'s formula, what it is)."""

OVERWRITTEN = 0.2
"""A Mamba channel whose Ā_t averages at most this over n keeps little of its state: the input overwrites it."""
KEPT = 0.8
"""A Mamba channel whose Ā_t averages at least this keeps its state."""


def ssm_stages(s: ssm.SSMStep, t: int, x: np.ndarray, w: dict):
    """The diagonal SSM's four stages of step t."""
    yield _initialize(s, t, x)
    yield _ssm_discretize(s, t, w)
    yield _update(s, t, "", "A linear recurrence: no σ, no tanh; each state entry is a leaky memory of the input.")
    yield _ssm_output(s, t, w)


def mamba_stages(s: mamba.MambaStep, t: int, x: np.ndarray, w: dict):
    """Mamba's four stages of step t."""
    yield _initialize(s, t, x)
    yield _mamba_discretize(s, t, x, w)
    yield _update(s, t, str(t), _selection(s, t))
    yield _mamba_output(s, t, w)


def _initialize(s, t: int, x: np.ndarray):
    """The previous state, the input (and Mamba's gate input)."""
    p = t - 1
    first = "given" if t == 1 else f"copied from step {p}"
    rows = [Row(f"h{p}", f"previous state, channels × N ({first})", s.h_prev), Row(f"X{t}", "current input", x)]
    if getattr(s, "gate", None) is not None:
        rows.append(Row(f"z{t}", "current gate input", s.gate))
    return "Initialize", rows, ""


def _ssm_discretize(s: ssm.SSMStep, t: int, w: dict):
    """ΔA = Δ ⊙ A, then Ā and B̄ by the discretization's own formulas."""
    a_formula, b_formula, what = DISCRETE[w["discretization"]]
    A, B, half = w["A"], w["B"], 1 - s.dA / 2
    b_terms = {
        "zoh": eq(("", "Ā - 1", s.A_bar - 1), ("/", "A", A), ("⊙", "B", B)),
        "bilinear": eq(("", "Δ", s.delta), ("⊙", "B", B), ("/", "1 - ΔA/2", half)),
        "zoh-euler": eq(("", "Δ", s.delta), ("⊙", "B", B)),
    }[w["discretization"]]
    if w["discretization"] == "bilinear":
        a_bar = Row("Ā", a_formula, s.A_bar, terms=eq(("", "1 + ΔA/2", 1 + s.dA / 2), ("/", "1 - ΔA/2", half)))
    else:
        a_bar = Row("Ā", a_formula, s.A_bar, s.dA)  # exp: a function of ΔA alone
    rows = [
        Row("Δ", "the step, given", s.delta),
        Row("ΔA", "Δ ⊙ A", s.dA, terms=eq(("", "Δ", s.delta), ("⊙", "A", A))),
        a_bar,
        Row("B̄", b_formula, s.B_bar, terms=b_terms),
    ]
    note = (
        f"{what} Each entry of Ā is the share of its state entry that survives one step."
        if t == 1
        else "Ā and B̄ are the same at every step (Δ, A and B do not change): the SSM is time-invariant."
    )
    return "Discretize", rows, note


def _mamba_discretize(s: mamba.MambaStep, t: int, x: np.ndarray, w: dict):
    """Δ_t = softplus(W_delta x_t + b_delta);  B_t, C_t = W_B x_t, W_C x_t;  Ā_t = exp(Δ_t A);  B̄_t = Δ_t B_tᵀ."""
    X, d = f"X{t}", f"Δ{t}"
    rows = [
        Row(
            f"pre Δ{t}",
            f"W_delta {X} + b_delta",
            s.pre_delta,
            terms=eq(("", "W_delta", w["W_delta"]), ("·", X, x), ("+", "b_delta", w["b_delta"])),
        ),
        Row(d, "softplus(a) = log(1 + e^a)", s.delta, s.pre_delta),
        Row(f"B{t}", f"W_B {X}", s.B, terms=eq(("", "W_B", w["W_B"]), ("·", X, x))),
        Row(f"C{t}", f"W_C {X}", s.C, terms=eq(("", "W_C", w["W_C"]), ("·", X, x))),
        Row(
            f"{d} A",
            f"{d} ⊙ A (each channel's row of A times its Δ)",
            s.dA,
            terms=eq(("", d, s.delta), ("⊙", "A", w["A"])),
        ),
        Row(f"Ā{t}", f"exp({d} A)", s.A_bar, s.dA),
        Row(f"B̄{t}", f"{d} B{t}ᵀ", s.B_bar, terms=eq(("", d, s.delta), ("·", f"B{t}ᵀ", s.B[None]))),
    ]
    note = "Δ, B and C come from the input (the diagonal SSM's are fixed): the selection. ZOH for A, Euler for B."
    return "Discretize", rows, note


def _update(s, t: int, at: str, note: str):
    """h_t = Ā ⊙ h_{t-1} + B̄ x_t; `at` is Ā's and B̄'s time index ('' where they do not change)."""
    p, a, b = t - 1, f"Ā{at}", f"B̄{at}"
    keep, write = f"{a} ⊙ h{p}", f"{b} X{t}"
    rows = [
        Row(keep, "what the state keeps", s.A_bar_h, terms=eq(("", a, s.A_bar), ("⊙", f"h{p}", s.h_prev))),
        Row(
            write,
            "what the input writes",
            s.B_bar_x,
            terms=eq(("", b, s.B_bar), ("⊙", f"X{t}", s.x)),
        ),
        Row(f"h{t}", f"{keep} + {write}", s.h, terms=eq(("", keep, s.A_bar_h), ("+", write, s.B_bar_x))),
    ]
    return "Update state", rows, note


def _selection(s: mamba.MambaStep, t: int) -> str:
    """Which channels this step overwrites and which it keeps, read from Δ_t and Ā_t."""
    parts = []
    for c, (delta, a_bar) in enumerate(zip(s.delta, s.A_bar, strict=True)):
        shown = f"Δ = {delta:.2g}, Ā{t} = {_short(a_bar)}"
        if np.mean(a_bar) <= OVERWRITTEN:
            parts.append(f"channel {c + 1}: {shown} ≈ 0, Δ is large: the state is overwritten by the input")
        elif np.mean(a_bar) >= KEPT:
            parts.append(f"channel {c + 1}: {shown} ≈ 1, Δ is small: the state is kept and little of the input enters")
        else:
            parts.append(f"channel {c + 1}: {shown}: the state keeps part of itself and takes part of the input")
    return (
        "Selection, one Δ per channel chosen by the input: "
        + "; ".join(parts)
        + ". A large Δ is the LSTM's forget gate closed and input gate open; a small Δ the other way round."
    )


def _short(a: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.2g}" for v in np.ravel(a)) + "]"


def _ssm_output(s: ssm.SSMStep, t: int, w: dict):
    """y_t = Σ_n C ⊙ h_t + D x_t."""
    h, X = f"h{t}", f"X{t}"
    ones = np.ones(np.shape(s.h)[1])
    rows = [
        Row(f"C {h}", f"Σ_n C ⊙ {h}", s.Ch, terms=eq(("", "C", w["C"]), ("⊙", h, s.h), ("·", "1 (sum over n)", ones))),
        Row(f"D {X}", f"D ⊙ {X}", s.Dx, terms=eq(("", "D", w["D"]), ("⊙", X, s.x))),
        Row(f"y{t}", f"C {h} + D {X}", s.y, terms=eq(("", f"C {h}", s.Ch), ("+", f"D {X}", s.Dx))),
    ]
    return "Output", rows, f"y{t} is the output at t = {t}; D {X} skips past the state."


def _mamba_output(s: mamba.MambaStep, t: int, w: dict):
    """y_t = h_t C_t + D x_t;  out_t = y_t ⊙ SiLU(z_t) when gated."""
    h, X, y = f"h{t}", f"X{t}", f"y{t}"
    rows = [
        Row(f"{h} C{t}", f"Σ_n {h} ⊙ C{t}, per channel", s.y_ssm, terms=eq(("", h, s.h), ("·", f"C{t}", s.C))),
        Row(f"D {X}", f"D ⊙ {X}", s.Dx, terms=eq(("", "D", w["D"]), ("⊙", X, s.x))),
        Row(y, f"{h} C{t} + D {X}", s.y, terms=eq(("", f"{h} C{t}", s.y_ssm), ("+", f"D {X}", s.Dx))),
    ]
    if s.gate is None:
        return "Output", rows, f"{y} is the output at t = {t}."
    silu = f"SiLU(z{t})"
    rows += [
        Row(silu, "SiLU(z) = z σ(z)", s.silu_gate, s.gate),
        Row(f"out{t}", f"{y} ⊙ {silu}", s.y_gated, terms=eq(("", y, s.y), ("⊙", silu, s.silu_gate))),
    ]
    note = f"out{t} is the cell's output at t = {t}: the gate, a second path from the input, scales each channel."
    return "Output", rows, note


def _channel(c: int, channels: int) -> str:
    """A label's suffix naming the channel, where there is more than one."""
    return "" if channels == 1 else f" (channel {c + 1})"


def _agreement(view: np.ndarray, recurrence: np.ndarray, name: str) -> str:
    """How the whole-sequence view's y compares with the recurrence's, from the numbers."""
    gap = float(np.max(np.abs(view - recurrence)))
    if gap < 1e-9:
        return f"{name} equals the recurrence's y1..y{len(view)}."
    return (
        f"By hand {name} differs from the recurrence's y by up to {gap:.2g}: the two round in a different order "
        "(in exact mode they agree)."
    )


def ssm_whole(example: Example, steps: list, rounding):
    """The diagonal SSM after its last step: the convolution view, then the family resemblance."""
    yield _convolution_view(example, steps, rounding)
    yield _ssm_family(steps)


def _convolution_view(example: Example, steps: list, rounding):
    """Ā^k, K, its Toeplitz matrix, K * x, D x and y_conv, per channel."""
    p = example.params.checked()
    conv = ssm.convolution(p, example.xs, example.state0, rounding)
    xs, ys = np.asarray(example.xs, dtype=float), np.array([s.y for s in steps])
    T, channels = conv.kernel.shape
    given_state = bool(np.any(steps[0].h_prev))
    ones = np.ones(p.state_size)
    rows = []
    for c in range(channels):
        on, x = _channel(c, channels), xs[:, c]
        Dx = rounding(p.D[c] * x)
        sums = [("", "K * x", conv.Kx[:, c]), ("+", "D x", Dx)]
        if given_state:
            sums.append(("+", "h0's share", conv.free[:, c]))
        k_terms = eq(("", "Ā^k", conv.powers[:, c]), ("⊙", "B̄", steps[0].B_bar[c][None]), ("⊙", "C", p.C[c][None]))
        rows += [
            Row(f"Ā^k{on}", f"one row per k = 0..{T - 1}", conv.powers[:, c]),
            Row(
                f"K{on}", "K_k = Σ_n C ⊙ Ā^k ⊙ B̄", conv.kernel[:, c], terms=k_terms + eq(("·", "1 (sum over n)", ones))
            ),
            Row(f"Toeplitz matrix{on}", "row t holds K_{t-s} for s ≤ t, 0 above", conv.toeplitz[c]),
            Row(
                f"K * x{on}",
                "Σ_s K_{t-s} x_s",
                conv.Kx[:, c],
                terms=eq(("", "Toeplitz matrix", conv.toeplitz[c]), ("·", "x", x)),
            ),
            Row(f"D x{on}", "D ⊙ x_t", Dx, terms=eq(("", "D", p.D[c]), ("⊙", "x", x))),
        ]
        if given_state:
            rows.append(Row(f"h0's share{on}", "Σ_n C ⊙ Ā^t ⊙ h0", conv.free[:, c]))
        rows += [
            Row(f"y_conv{on}", " + ".join(label for _, label, _ in sums), conv.y[:, c], terms=eq(*sums)),
            Row(f"y (recurrence){on}", f"y1..y{T} from the steps above", ys[:, c]),
        ]
    note = (
        "Ā and B̄ do not change, so each output is a fixed weighting of the inputs so far: K_k is the output k steps "
        "after an input of 1, and y = K * x + D x is one convolution over the whole sequence (S4 computes it with an "
        "FFT). " + _agreement(conv.y, ys, "y_conv")
    )
    return "Convolution view", rows, note


def _ssm_family(steps: list):
    """A fixed Ā is an LSTM whose forget gate never moves."""
    rows = [
        Row("Ā", "the same at every step: a forget gate that never moves", steps[0].A_bar),
        Row("B̄", "the same at every step: a fixed input gate times fixed input weights", steps[0].B_bar),
    ]
    note = (
        "h_t = Ā ⊙ h_{t-1} + B̄ x_t is the LSTM's C_t = f ⊙ C_{t-1} + i ⊙ C̃_t with the forget gate f fixed at Ā and "
        "the write i ⊙ C̃_t = B̄ x_t: an LSTM whose gates never move, with no tanh and no output gate. Being linear and "
        "fixed is what makes the whole sequence one convolution; Mamba (--cell mamba) lets the input choose Δ, so Ā "
        "and B̄ change at every step."
    )
    return "Family resemblance", rows, note


def mamba_whole(example: Example, steps: list, rounding):
    """Mamba after its last step: the matrix view, then the family resemblance."""
    yield _matrix_view(example, steps, rounding)
    yield _mamba_family(steps)


def _matrix_view(example: Example, steps: list, rounding):
    """Δ, B, C of every step, the decays L, the masked matrix M, M x, D x and y_matrix, per channel."""
    p = example.params.checked()
    view = mamba.matrix_view(p, steps, rounding)
    xs, ys = np.array([s.x for s in steps]), np.array([s.y for s in steps])
    deltas, Bs, Cs = (np.array([getattr(s, k) for s in steps]) for k in ("delta", "B", "C"))
    T, channels = ys.shape
    given_state = bool(np.any(steps[0].h_prev))
    rows = [
        Row("Δ_s", f"Δ1..Δ{T}, one row per step", deltas),
        Row("B_s", f"B1..B{T}", Bs),
        Row("C_t", f"C1..C{T}", Cs),
    ]
    for c in range(channels):
        on, x = _channel(c, channels), xs[:, c]
        terms = ()
        for n in range(p.state_size):
            L = f"L{on} n = {n + 1}"
            rows.append(Row(L, f"exp(Σ_k=s+1..t Δ_k A[{c + 1}, {n + 1}]) for s ≤ t, 0 above", view.decay[c, n]))
            terms += eq(
                ("+" if n else "", f"C_t[{n + 1}]", Cs[:, n]),
                ("⊙", L, view.decay[c, n]),
                ("⊙", f"(B_s[{n + 1}] Δ_s)ᵀ", (Bs[:, n] * deltas[:, c])[None]),
            )
        Dx = rounding(p.D[c] * x)
        sums = [("", "M x", view.Mx[:, c]), ("+", "D x", Dx)]
        if given_state:
            sums.append(("+", "h0's share", view.free[:, c]))
        rows += [
            Row(f"M{on}", "M_ts = Σ_n C_t[n] L_ts B_s[n] Δ_s", view.matrix[c], terms=terms),
            Row(f"M x{on}", "Σ_s M_ts x_s", view.Mx[:, c], terms=eq(("", "M", view.matrix[c]), ("·", "x", x))),
            Row(f"D x{on}", "D ⊙ x_t", Dx, terms=eq(("", "D", p.D[c]), ("⊙", "x", x))),
        ]
        if given_state:
            rows.append(Row(f"h0's share{on}", "Σ_n C_t[n] exp(Σ_k=1..t Δ_k A[n]) h0[n]", view.free[:, c]))
        rows += [
            Row(f"y_matrix{on}", " + ".join(label for _, label, _ in sums), view.y[:, c], terms=eq(*sums)),
            Row(f"y (recurrence){on}", f"y1..y{T} from the steps above", ys[:, c]),
        ]
    note = (
        "Δ, B and C change with t, so there is no single kernel, but each y_t is still a weighted sum of x_1..x_t: "
        "M_ts is how much x_s reaches y_t, through the decay L between s and t (Mamba-2's state-space dual). "
        + _agreement(view.y, ys, "y_matrix")
        + (" The gate applies after: out_t = y_t ⊙ SiLU(z_t)." if steps[0].gate is not None else "")
    )
    return "Matrix view", rows, note


def _mamba_family(steps: list):
    """Ā_t plays the mLSTM's forget gate, B̄_t x_t its write, C_t its query."""
    deltas, a_bars = np.array([s.delta for s in steps]), np.array([s.A_bar for s in steps])  # (T, C), (T, C, N)
    T, channels = deltas.shape
    rows = [Row(f"Δ1..Δ{T}", "one step per channel and time: sets Ā_t and B̄_t together", deltas)]
    gate = "one row per step: the forget gate f_t, chosen by the input"
    rows += [Row(f"Ā1..Ā{T}{_channel(c, channels)}", gate, a_bars[:, c]) for c in range(channels)]
    note = (
        "h_t = Ā_t ⊙ h_{t-1} + B̄_t x_t is the mLSTM's C_t = f_t C_{t-1} + i_t k_t v_tᵀ: Ā_t plays the forget gate "
        "f_t, B̄_t x_t = Δ_t x_t B_tᵀ the write i k vᵀ (Δ_t the input gate, B_t the key, x_t the value) and C_t the "
        "query q that reads the state. Mamba-2 makes A one scalar per head, so Ā_t is one number per head like f_t, "
        "and the matrix view becomes the mLSTM's chunkwise computation. No normalizer or stabilizer: Ā = exp(Δ A) "
        f"≤ 1 always (A < 0, Δ > 0); on this page every Ā_t lies between {a_bars.min():.2g} and {a_bars.max():.2g}."
    )
    return "Family resemblance", rows, note
