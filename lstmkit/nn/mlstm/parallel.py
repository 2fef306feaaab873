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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.mlstm.state import check_inputs, mLSTMState


def parallel_with_state(
    q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState, eps: float, detach_normalizer: bool
) -> tuple[Tensor, mLSTMState]:
    """The parallel form without input checks, on shapes (..., T, D); used by the chunkwise form too."""
    T, DK = q.shape[-2], q.shape[-1]
    F_cum = F.logsigmoid(f).cumsum(-1)  # (..., T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    D = torch.where(causal, F_cum[..., :, None] - F_cum[..., None, :] + i[..., None, :], -torch.inf)  # (..., T, T)
    g = F_cum + state.m[..., None]  # (..., T)
    m = torch.maximum(g, D.amax(-1))  # (..., T)
    W = torch.exp(D - m[..., None])
    w0 = torch.exp(g - m)[..., None]  # (..., T, 1)
    q_scaled = q * DK**-0.5
    SW = (q_scaled @ k.transpose(-1, -2)) * W  # (..., T, T)
    num = SW @ v + w0 * (q_scaled @ state.C)  # (..., T, DV)
    qn = SW.sum(-1, keepdim=True) + w0 * (q_scaled @ state.n[..., :, None])  # (..., T, 1)
    den = torch.maximum(qn.abs(), torch.exp(-m)[..., None]) + eps
    if detach_normalizer:
        den = den.detach()
    return num / den, _final_state(k, v, i, F_cum, state)


def _final_state(k: Tensor, v: Tensor, i: Tensor, F_cum: Tensor, state: mLSTMState) -> mLSTMState:
    """C_T, n_T, m_T from the last row of the unrolled weights: a_s = F_T - F_s + ĩ_s."""
    a = F_cum[..., -1:] - F_cum + i  # (..., T)
    g = F_cum[..., -1] + state.m  # (...)
    m = torch.maximum(g, a.amax(-1))
    w = torch.exp(a - m[..., None])[..., :, None]  # (..., T, 1)
    w0 = torch.exp(g - m)
    C = w0[..., None, None] * state.C + (k * w).transpose(-1, -2) @ v  # (..., DK, DV)
    n = w0[..., None] * state.n + (k * w).sum(-2)  # (..., DK)
    return mLSTMState(C, n, m)


def mlstm_parallel(
    q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState | None = None, eps: float = 1e-6,
    detach_normalizer: bool = False,
) -> tuple[Tensor, mLSTMState]:  # fmt: skip
    """h (B, NH, T, DV) and the final state, all steps at once. See `mlstm_recurrent` for the arguments."""
    state = check_inputs(q, k, v, i, f, state)
    return parallel_with_state(q, k, v, i, f, state, eps, detach_normalizer)
