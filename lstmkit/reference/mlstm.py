"""The mLSTM cell (xLSTM paper, Beck et al. 2024, section 2.3), NumPy float64, one head, traced.

Per step, for one head with query, key, value q_t, k_t (DK,), v_t (DV,) and gate pre-activations
ĩ_t, f̃_t (scalars), as the xLSTM authors' kernels define it:

    m_t = max(log σ(f̃_t) + m_{t-1}, ĩ_t)                         stabilizer
    f = exp(log σ(f̃_t) + m_{t-1} - m_t)    i = exp(ĩ_t - m_t)     stabilized gates
    C_t = f C_{t-1} + i k_t v_tᵀ                                  matrix memory (DK, DV)
    n_t = f n_{t-1} + i k_t                                       normalizer (DK,)
    q̂ = q_t / √DK
    h_t = q̂ᵀ C_t / (max(|q̂ᵀ n_t|, exp(-m_t)) + eps)              retrieval (DV,)

Unlike the sLSTM, h depends on m through the lower bound exp(-m_t) (the stabilized form of the
paper's max(|q̂ᵀn|, 1)), so the initial m matters: the default state is C = 0, n = 0, m = 0 (the
authors' recurrent and chunkwise kernels); m_0 = -∞ gives their parallel kernel, which has no state.
The projections to q, k, v and the gates, and the output gate, belong to the layer (`nn.mLSTMLayer`).
For the walkthrough and exercises, `mLSTMCellParams` holds the smallest such projections (q = W_q x,
k = W_k x, v = W_v x, ĩ = w_i·x + b_i, f̃ = w_f·x + b_f) and `run_cell` runs raw inputs through them.
`step` and `run` take a rounding (hand mode rounds every intermediate to 0.1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference.activations import sigmoid
from lstmkit.reference.checks import (
    as_array,
    as_gate,
    as_nonnegative,
    as_sequence,
    as_state,
    check_rounding,
    is_state,
    shape_text,
)
from lstmkit.reference.rounding import Rounding, exact
from lstmkit.reference.slstm import log_sigmoid

EPS = 1e-6


class mLSTMState(NamedTuple):
    C: np.ndarray
    """Matrix memory (DK, DV)."""
    n: np.ndarray
    """Normalizer (DK,)."""
    m: float
    """Stabilizer (a scalar per head)."""


class mLSTMStep(NamedTuple):
    """Every intermediate of one step."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    pre_i: float
    pre_f: float
    C_prev: np.ndarray
    n_prev: np.ndarray
    m_prev: float
    log_f: float
    m: float
    i: float
    f: float
    kv: np.ndarray
    """k_t v_tᵀ (DK, DV), the outer product written into memory."""
    C: np.ndarray
    n: np.ndarray
    q_scaled: np.ndarray
    num: np.ndarray
    """q̂ᵀ C_t (DV,)."""
    qn: float
    """q̂ᵀ n_t."""
    den: float
    """max(|q̂ᵀ n_t|, exp(-m_t)) + eps."""
    h: np.ndarray


def step(
    q, k, v, pre_i: float, pre_f: float, state: mLSTMState, eps: float = EPS, rounding: Rounding = exact
) -> mLSTMStep:
    """One step; `rounding` is applied to each computed intermediate (hand mode rounds to 0.1).

    Checked as `run` checks its inputs: q, k (DK,), v (DV,), state.C (DK, DV), state.n (DK,) finite; pre_i,
    pre_f and state.m numbers or −∞ (a closed gate, an empty stabilizer), never NaN or +∞."""
    check_rounding(rounding)
    if np.ndim(q) != 1 or np.ndim(v) != 1:
        raise ValueError(
            f"q has shape {shape_text(np.shape(q))} and v {shape_text(np.shape(v))}, expected (DK,) and (DV,)"
        )
    DK, DV = np.shape(q)[0], np.shape(v)[0]
    q, k, v = as_array("q", q, (DK,)), as_array("k", k, (DK,), "DK, as q"), as_array("v", v, (DV,))
    pre_i, pre_f = float(as_gate("pre_i", pre_i, ())), float(as_gate("pre_f", pre_f, ()))
    state = _as_state("state", state, DK, DV, "")
    return _step(q, k, v, pre_i, pre_f, state, eps=as_nonnegative("eps", eps), rounding=rounding)


MEANINGS = {"C": "DK, DV", "n": "DK"}
"""What the state's shapes are, for the messages."""


def _as_state(name: str, state, DK: int, DV: int, suffix: str) -> mLSTMState:
    """`state` with C (DK, DV) and n (DK,) finite float64 and m a float (−∞ allowed); fields named with `suffix`.
    Not an mLSTMState: the message names its type, not its value (a matrix memory's repr spans lines)."""
    if not is_state(state, mLSTMState):
        raise ValueError(f"{name} is a {type(state).__name__}, expected an mLSTMState(C, n, m)")
    shapes = {"C": (DK, DV), "n": (DK,), "m": ()}
    return as_state(name, mLSTMState, state, shapes, suffix, meanings=MEANINGS, gates=("m",))


def _step(q, k, v, pre_i: float, pre_f: float, state: mLSTMState, *, eps: float, rounding: Rounding) -> mLSTMStep:
    r = rounding
    log_f = float(r(log_sigmoid(np.float64(pre_f))))
    m = float(r(np.float64(max(log_f + state.m, pre_i))))
    f = float(r(np.exp(log_f + state.m - m)))
    i = float(r(np.exp(pre_i - m)))
    kv = r(np.outer(k, v))
    C = r(f * state.C + i * kv)
    n = r(f * state.n + i * k)
    q_scaled = r(q / np.sqrt(len(q)))
    num = r(q_scaled @ C)
    qn = float(r(q_scaled @ n))
    den = float(r(np.float64(max(abs(qn), np.exp(-m)) + eps)))
    h = r(num / den)
    return mLSTMStep(
        q=q,
        k=k,
        v=v,
        pre_i=pre_i,
        pre_f=pre_f,
        C_prev=state.C,
        n_prev=state.n,
        m_prev=state.m,
        log_f=log_f,
        m=m,
        i=i,
        f=f,
        kv=kv,
        C=C,
        n=n,
        q_scaled=q_scaled,
        num=num,
        qn=qn,
        den=den,
        h=h,
    )


def zero_state(DK: int, DV: int, m: float = 0.0) -> mLSTMState:
    return mLSTMState(np.zeros((DK, DV)), np.zeros(DK), m)


def run(
    qs, ks, vs, pre_is, pre_fs, state0: mLSTMState | None = None, eps: float = EPS, rounding: Rounding = exact
) -> list[mLSTMStep]:
    """One head over T steps: qs, ks (T, DK), vs (T, DV), pre_is, pre_fs (T,).

    q, k, v and the state's C and n must be finite; the gates and m may be −∞, never NaN or +∞."""
    check_rounding(rounding)
    if np.ndim(qs) != 2 or np.ndim(vs) != 2:
        raise ValueError(
            f"qs has shape {shape_text(np.shape(qs))} and vs {shape_text(np.shape(vs))}, expected (T, DK) and (T, DV)"
        )
    (T, DK), DV = np.shape(qs), np.shape(vs)[1]
    qs = as_sequence("qs", qs, DK, "time steps, DK")
    ks = as_array("ks", ks, (T, DK), "time steps, DK as qs")
    vs = as_array("vs", vs, (T, DV), "time steps as qs, DV")
    pre_is, pre_fs = as_gate("pre_is", pre_is, (T,)), as_gate("pre_fs", pre_fs, (T,))
    state = zero_state(DK, DV) if state0 is None else _as_state("state0", state0, DK, DV, "0")
    eps = as_nonnegative("eps", eps)
    steps = []
    for t in range(T):
        s = _step(qs[t], ks[t], vs[t], float(pre_is[t]), float(pre_fs[t]), state, eps=eps, rounding=rounding)
        steps.append(s)
        state = mLSTMState(s.C, s.n, s.m)
    return steps


class mLSTMCellParams(NamedTuple):
    """One head with the smallest input projections, as the walkthrough shows it (I input size)."""

    W_q: np.ndarray
    """(DK, I): q_t = W_q x_t."""
    W_k: np.ndarray
    """(DK, I): k_t = W_k x_t."""
    W_v: np.ndarray
    """(DV, I): v_t = W_v x_t."""
    w_i: np.ndarray
    """(I,): ĩ_t = w_i · x_t + b_i."""
    w_f: np.ndarray
    """(I,): f̃_t = w_f · x_t + b_f."""
    b_i: float
    b_f: float

    @property
    def input_size(self) -> int:
        return np.shape(self.W_q)[1]

    @property
    def hidden_size(self) -> int:
        """DV, the width of h."""
        return np.shape(self.W_v)[0]

    @property
    def key_size(self) -> int:
        return np.shape(self.W_q)[0]


def run_cell(p: mLSTMCellParams, xs, state0: mLSTMState | None = None, rounding: Rounding = exact) -> list[mLSTMStep]:
    """Run raw inputs xs (T, I) through the projections (rounded like every intermediate), then `run`."""
    I, DK, DV = p.input_size, p.key_size, p.hidden_size
    xs = as_sequence("inputs", xs, I)
    r = rounding
    qs = r(xs @ as_array("W_q", p.W_q, (DK, I)).T)
    ks = r(xs @ as_array("W_k", p.W_k, (DK, I)).T)
    vs = r(xs @ as_array("W_v", p.W_v, (DV, I)).T)
    pre_is = r(xs @ as_array("w_i", p.w_i, (I,)) + float(p.b_i))
    pre_fs = r(xs @ as_array("w_f", p.w_f, (I,)) + float(p.b_f))
    return run(qs, ks, vs, pre_is, pre_fs, state0=state0, rounding=rounding)


class mLSTMGrads(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    pre_i: np.ndarray
    pre_f: np.ndarray
    state0: mLSTMState


def backward(steps: list[mLSTMStep], dhs, dstate: mLSTMState | None = None) -> mLSTMGrads:
    """Backpropagation through time, exact (the normalizer is differentiated, not held constant).

    dnum = dh / den   dden = -dh · num / den²
    den = max(|qn|, e^{-m}) + eps: dden goes to qn (times sign qn) or to m (times -e^{-m})
    dq̂ = dqn n + C dnum   dn += dqn q̂   dC += q̂ dnumᵀ
    df = ⟨dC, C_{t-1}⟩ + dn · n_{t-1}   di = kᵀ dC v + dn · k   dk = i (dC v + dn)   dv = i dCᵀ k
    dĩ = di i   dlog_f = df f   dm_{t-1} = df f   dm_t -= di i + df f ; max routes dm_t
    """
    T = len(steps)
    DK, DV = steps[0].C.shape
    dq, dk, dv = np.zeros((T, DK)), np.zeros((T, DK)), np.zeros((T, DV))
    dpre_i, dpre_f = np.zeros(T), np.zeros(T)
    dhs = np.asarray(dhs, dtype=np.float64)
    if dstate is None:
        dC_next, dn_next, dm_next = np.zeros((DK, DV)), np.zeros(DK), 0.0
    else:
        dC_next, dn_next, dm_next = np.asarray(dstate.C, float), np.asarray(dstate.n, float), float(dstate.m)
    for t in reversed(range(T)):
        s = steps[t]
        dnum = dhs[t] / s.den
        dden = -float(dhs[t] @ s.num) / s.den**2
        dm = dm_next
        if abs(s.qn) >= np.exp(-s.m):
            dqn = dden * np.sign(s.qn)
        else:
            dqn, dm = 0.0, dm - dden * np.exp(-s.m)
        dC = dC_next + np.outer(s.q_scaled, dnum)
        dn = dn_next + dqn * s.q_scaled
        dq[t] = (dqn * s.n + s.C @ dnum) / np.sqrt(DK)
        df = float(np.sum(dC * s.C_prev) + dn @ s.n_prev)
        di = float(s.k @ dC @ s.v + dn @ s.k)
        dk[t] = s.i * (dC @ s.v + dn)
        dv[t] = s.i * (dC.T @ s.k)
        dpre_i[t] = di * s.i
        dlog_f = df * s.f
        dm_prev = df * s.f
        dm -= di * s.i + df * s.f
        if s.log_f + s.m_prev > s.pre_i:
            dlog_f += dm
            dm_prev += dm
        else:
            dpre_i[t] += dm
        dpre_f[t] = dlog_f * float(sigmoid(np.float64(-s.pre_f)))
        dC_next, dn_next, dm_next = s.f * dC, s.f * dn, dm_prev
    return mLSTMGrads(q=dq, k=dk, v=dv, pre_i=dpre_i, pre_f=dpre_f, state0=mLSTMState(dC_next, dn_next, dm_next))
