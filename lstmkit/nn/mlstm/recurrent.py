"""mLSTM, recurrent form: the definition, one step at a time (O(T) time, O(1) memory in T).

    m_t = max(log σ(f̃_t) + m_{t-1}, ĩ_t)
    f = exp(log σ(f̃_t) + m_{t-1} - m_t)    i = exp(ĩ_t - m_t)
    C_t = f C_{t-1} + i k_t v_tᵀ            n_t = f n_{t-1} + i k_t
    h_t = q̂_tᵀ C_t / (max(|q̂_tᵀ n_t|, exp(-m_t)) + eps),   q̂ = q / √DK

(xLSTM paper eqs. 19-27 with the stabilizer of its appendix; the xLSTM authors' recurrent kernel.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.mlstm.state import check_inputs, mLSTMState


def mlstm_step(
    q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState, eps: float = 1e-6,
    detach_normalizer: bool = False,
) -> tuple[Tensor, mLSTMState]:  # fmt: skip
    """One step: q, k (B, NH, DK), v (B, NH, DV), i, f (B, NH) -> h (B, NH, DV), new state."""
    log_f = F.logsigmoid(f)
    m = torch.maximum(log_f + state.m, i)  # (B, NH)
    f_stab = torch.exp(log_f + state.m - m)[..., None]  # (B, NH, 1)
    i_stab = torch.exp(i - m)[..., None]
    C = f_stab[..., None] * state.C + (i_stab * k)[..., :, None] * v[..., None, :]  # (B, NH, DK, DV)
    n = f_stab * state.n + i_stab * k  # (B, NH, DK)
    q_scaled = q * q.shape[-1] ** -0.5
    num = (q_scaled[..., None, :] @ C).squeeze(-2)  # (B, NH, DV)
    qn = (q_scaled * n).sum(-1, keepdim=True)  # (B, NH, 1)
    den = torch.maximum(qn.abs(), torch.exp(-m)[..., None]) + eps
    if detach_normalizer:
        den = den.detach()
    return num / den, mLSTMState(C, n, m)


def mlstm_recurrent(
    q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState | None = None, eps: float = 1e-6,
    detach_normalizer: bool = False,
) -> tuple[Tensor, mLSTMState]:  # fmt: skip
    """Run `mlstm_step` over T: returns h (B, NH, T, DV) and the final state.

    `detach_normalizer=True` treats the denominator as a constant in backward, as the xLSTM authors'
    fused kernels do (their gradients differ from the exact ones); the default is exact autograd.
    """
    state = check_inputs(q, k, v, i, f, state)
    hs = []
    steps = zip(q.unbind(2), k.unbind(2), v.unbind(2), i.unbind(2), f.unbind(2), strict=True)
    for q_t, k_t, v_t, i_t, f_t in steps:
        h, state = mlstm_step(q_t, k_t, v_t, i_t, f_t, state, eps, detach_normalizer)
        hs.append(h)
    return torch.stack(hs, dim=2), state
