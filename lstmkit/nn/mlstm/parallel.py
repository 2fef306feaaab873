"""mLSTM, parallel form: all T steps at once through a T×T gate matrix (O(T²) time and memory).

Unrolling the recurrence from an initial state (C_0, n_0, m_0), with F_t = Σ_{r≤t} log σ(f̃_r):

    D_ts = F_t - F_s + ĩ_s  (s ≤ t)         log weight of step s's key-value in C_t
    g_t  = F_t + m_0                         log weight of the initial state in C_t
    m_t  = max(g_t, max_s D_ts)              the recurrent stabilizer, unrolled
    C_t  = e^{g_t - m_t} C_0 + Σ_s e^{D_ts - m_t} k_s v_sᵀ       (and n_t likewise)
    h_t  = q̂_tᵀ C_t / (max(|q̂_tᵀ n_t|, e^{-m_t}) + eps)

so h = ((q̂ Kᵀ ⊙ W) V + w0 ⊙ q̂ C_0) / (max(|rowsum(q̂ Kᵀ ⊙ W) + w0 ⊙ q̂ n_0|, e^{-m}) + eps) with
W_ts = e^{D_ts - m_t} and w0_t = e^{g_t - m_t}. Keeping the initial-state term makes this form equal
to the recurrent and chunkwise forms for any state (the xLSTM authors' parallel kernel has none; it
is the case m_0 = -inf). Works on any leading batch shape (..., T, D).

Masks (see `state`). Padding enters through the gates: ĩ_s := -inf and f̃_s := +inf (log σ = 0), so a
padded step adds nothing and forgets nothing. A reset closes the forget gate, which must not put -inf
into the sum F (-inf - (-inf) is NaN); instead, with segment ids S_t = Σ_{r≤t} reset_r,

    D_ts = -inf unless S_s = S_t             nothing crosses a reset
    g_t  = -inf unless S_t = 0               the initial state lives until the first reset

Only padding can leave a row with no weight at all (padding from the empty state, m_t = -inf; with
resets alone D_tt = ĩ_t is finite); with padding the exponentials use m_t := 0 there, which keeps forward
and backward finite (h_t = 0, the state stays empty). Without masks none of this runs: values and
gradients are bit for bit those of the unmasked code.

At the extremes (`state`): e^{-m_t} is computed with m_t clamped to m ≥ `m_floor` (`lower_bound`); f̃ = -inf
("forget everything") becomes a reset of that head at that step (`forget_all_as_reset`), since -inf in F
would make F_t - F_s NaN; float16 and bfloat16 run in float32 (`in_float32`).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.masks import check_masks
from lstmkit.nn.mlstm.state import (
    check_inputs,
    forget_all_as_reset,
    in_float32,
    lower_bound,
    mLSTMState,
    no_steps,
)


def parallel_with_state(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    *,
    eps: float,
    detach_normalizer: bool,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, mLSTMState]:
    """The parallel form without input checks, on shapes (..., T, D); used by the chunkwise form too.

    reset, valid: bool (..., T), broadcastable against i (e.g. (B, 1, T) for heads).
    """
    T, DK = q.shape[-2], q.shape[-1]
    i, f, reset = mask_gates(i, f, reset, valid)
    F_cum = F.logsigmoid(f).cumsum(-1)  # (..., T)
    allowed = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()  # s ≤ t
    if reset is not None:
        S = reset.cumsum(-1)  # (..., T) segment ids
        allowed = allowed & (S[..., :, None] == S[..., None, :])  # (..., T, T)
    D = torch.where(allowed, F_cum[..., :, None] - F_cum[..., None, :] + i[..., None, :], -torch.inf)  # (..., T, T)
    g = F_cum + state.m[..., None]  # (..., T)
    if reset is not None:
        g = torch.where(S == 0, g, -torch.inf)
    m = torch.maximum(g, D.amax(-1))  # (..., T)
    m_safe = m if valid is None else finite_or_zero(m)
    W = torch.exp(D - m_safe[..., None])
    w0 = torch.exp(g - m_safe)[..., None]  # (..., T, 1)
    q_scaled = q * DK**-0.5
    SW = (q_scaled @ k.transpose(-1, -2)) * W  # (..., T, T)
    num = SW @ v + w0 * (q_scaled @ state.C)  # (..., T, DV)
    qn = SW.sum(-1, keepdim=True) + w0 * (q_scaled @ state.n[..., :, None])  # (..., T, 1)
    den = torch.maximum(qn.abs(), lower_bound(m_safe)[..., None]) + eps
    if detach_normalizer:
        den = den.detach()
    return num / den, final_state(k, v, i, F_cum, state, reset=reset, valid=valid)


def final_state(
    k: Tensor,
    v: Tensor,
    i: Tensor,
    F_cum: Tensor,
    state: mLSTMState,
    *,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> mLSTMState:
    """C_T, n_T, m_T from the last row of the unrolled weights: a_s = F_T - F_s + ĩ_s.

    With a reset, a_s needs S_s = S_T and g needs S_T = 0. Padding must already be in i, F_cum and reset
    (`mask_gates`); `valid` here only guards the rows that got no weight at all (m = -inf).
    """
    a = F_cum[..., -1:] - F_cum + i  # (..., T)
    g = F_cum[..., -1] + state.m  # (...)
    if reset is not None:
        S = reset.cumsum(-1)  # (..., T) segment ids
        a = torch.where(S == S[..., -1:], a, -torch.inf)
        g = torch.where(S[..., -1] == 0, g, -torch.inf)
    m = torch.maximum(g, a.amax(-1))  # stays -inf where nothing was ever written
    m_safe = m if valid is None else finite_or_zero(m)
    w = torch.exp(a - m_safe[..., None])[..., :, None]  # (..., T, 1)
    w0 = torch.exp(g - m_safe)
    C = w0[..., None, None] * state.C + (k * w).transpose(-1, -2) @ v  # (..., DK, DV)
    n = w0[..., None] * state.n + (k * w).sum(-2)  # (..., DK)
    return mLSTMState(C, n, m)


def mask_gates(
    i: Tensor, f: Tensor, reset: Tensor | None, valid: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Padding into the gates: ĩ := -inf, f̃ := +inf where not valid; a reset on padding is dropped."""
    if valid is None:
        return i, f, reset
    i = torch.where(valid, i, -torch.inf)
    f = torch.where(valid, f, torch.inf)
    return i, f, None if reset is None else reset & valid


def finite_or_zero(m: Tensor) -> Tensor:
    """m, with -inf (no weight at all) replaced by 0 so that exp(x - m) and exp(-m) stay finite."""
    return torch.where(m == -torch.inf, 0.0, m)


def mlstm_parallel(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState | None = None,
    eps: float = 1e-6,
    *,
    detach_normalizer: bool = False,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, mLSTMState]:
    """h (B, NH, T, DV) and the final state, all steps at once. See `mlstm_recurrent` for the arguments."""
    state = check_inputs(q, k, v, i, f, state)
    check_masks(reset, valid, (q.shape[0], q.shape[2]), "(B, T)")
    if q.shape[2] == 0:
        return no_steps(q, v, state)
    reset, valid = (None if x is None else x[:, None] for x in (reset, valid))  # (B, 1, T): broadcast over heads
    f, reset = forget_all_as_reset(f, reset)  # reset (B, NH, T) where some f̃ = -inf
    body = functools.partial(
        parallel_with_state, eps=eps, detach_normalizer=detach_normalizer, reset=reset, valid=valid
    )
    return in_float32(body, q, k, v, i, f, state)
