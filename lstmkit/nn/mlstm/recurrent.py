"""mLSTM, recurrent form: the definition, one step at a time (O(T) time, O(1) memory in T).

    m_t = max(log σ(f̃_t) + m_{t-1}, ĩ_t)
    f = exp(log σ(f̃_t) + m_{t-1} - m_t)    i = exp(ĩ_t - m_t)
    C_t = f C_{t-1} + i k_t v_tᵀ            n_t = f n_{t-1} + i k_t
    h_t = q̂_tᵀ C_t / (max(|q̂_tᵀ n_t|, exp(-m_t)) + eps),   q̂ = q / √DK

(xLSTM paper eqs. 19-27 with the stabilizer of its appendix; the xLSTM authors' recurrent kernel.)

At the extremes (`state`): exp(-m_t) is computed with m_t clamped to m ≥ `m_floor` (`lower_bound`), so it
never overflows; f̃ = -inf is allowed (f = 0, forget everything); float16 and bfloat16 run in float32.

Masks (see `state`): a reset sets m_{t-1} := -inf, so f = 0 exactly and the step starts from the empty
state; a padded step keeps (C, n, m) as they were: (C_t, n_t, m_t) := (C_{t-1}, n_{t-1}, m_{t-1}).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.masks import check_masks
from lstmkit.nn.mlstm.state import (
    check_inputs,
    check_values,
    in_float32,
    lower_bound,
    mLSTMState,
    no_steps,
)


def mlstm_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    eps: float = 1e-6,
    *,
    detach_normalizer: bool = False,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, mLSTMState]:
    """One step: q, k (B, NH, DK), v (B, NH, DV), i, f (B, NH), bool reset, valid (B,) -> h (B, NH, DV), new state.

    At a padded step (valid False) h is computed but unspecified; the state comes back unchanged.
    Values are checked as in the three forms (`check_values`); float16 and bfloat16 run in float32.
    """
    B = q.shape[0]
    check_masks(reset, valid, (B,), "(B,)")
    state = mLSTMState(*state)
    check_values(q, k, v, i, f, state)
    body = functools.partial(_step, eps=eps, detach_normalizer=detach_normalizer, reset=reset, valid=valid)
    return in_float32(body, q, k, v, i, f, state)


def _step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    *,
    eps: float,
    detach_normalizer: bool,
    reset: Tensor | None,
    valid: Tensor | None,
) -> tuple[Tensor, mLSTMState]:
    """`mlstm_step` without checks."""
    m_prev = state.m if reset is None else torch.where(reset[:, None], -torch.inf, state.m)  # (B, NH)
    log_f = F.logsigmoid(f)
    m = torch.maximum(log_f + m_prev, i)  # (B, NH)
    f_stab = torch.exp(log_f + m_prev - m)[..., None]  # (B, NH, 1), exactly 0 after a reset
    i_stab = torch.exp(i - m)[..., None]
    C = f_stab[..., None] * state.C + (i_stab * k)[..., :, None] * v[..., None, :]  # (B, NH, DK, DV)
    n = f_stab * state.n + i_stab * k  # (B, NH, DK)
    q_scaled = q * q.shape[-1] ** -0.5
    num = (q_scaled[..., None, :] @ C).squeeze(-2)  # (B, NH, DV)
    qn = (q_scaled * n).sum(-1, keepdim=True)  # (B, NH, 1)
    den = torch.maximum(qn.abs(), lower_bound(m)[..., None]) + eps
    if detach_normalizer:
        den = den.detach()
    new = mLSTMState(C, n, m)
    if valid is not None:
        new = keep_where_padded(new, state, valid)
    return num / den, new


def keep_where_padded(new: mLSTMState, old: mLSTMState, valid: Tensor) -> mLSTMState:
    """(C, n, m) := new where valid (B,), old where padding."""
    C = torch.where(valid[:, None, None, None], new.C, old.C)
    n = torch.where(valid[:, None, None], new.n, old.n)
    m = torch.where(valid[:, None], new.m, old.m)
    return mLSTMState(C, n, m)


def mlstm_recurrent(
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
    """Run `mlstm_step` over T: returns h (B, NH, T, DV) and the final state.

    `detach_normalizer=True` treats the denominator as a constant in backward, as the xLSTM authors'
    fused kernels do (their gradients differ from the exact ones); the default is exact autograd.
    `reset`, `valid` (B, T) bool: document starts and padding (see `lstmkit.nn.mlstm.state`).
    """
    state = check_inputs(q, k, v, i, f, state)
    check_masks(reset, valid, (q.shape[0], q.shape[2]), "(B, T)")
    if q.shape[2] == 0:
        return no_steps(q, v, state)
    body = functools.partial(_recurrent, eps=eps, detach_normalizer=detach_normalizer, reset=reset, valid=valid)
    return in_float32(body, q, k, v, i, f, state)


def _recurrent(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    *,
    eps: float,
    detach_normalizer: bool,
    reset: Tensor | None,
    valid: Tensor | None,
) -> tuple[Tensor, mLSTMState]:
    """`mlstm_recurrent` without checks, T ≥ 1."""
    T = q.shape[2]
    resets = [None] * T if reset is None else reset.unbind(1)
    valids = [None] * T if valid is None else valid.unbind(1)
    hs = []
    steps = zip(q.unbind(2), k.unbind(2), v.unbind(2), i.unbind(2), f.unbind(2), resets, valids, strict=True)
    for q_t, k_t, v_t, i_t, f_t, reset_t, valid_t in steps:
        h, state = _step(
            q_t, k_t, v_t, i_t, f_t, state, eps=eps, detach_normalizer=detach_normalizer, reset=reset_t, valid=valid_t
        )
        hs.append(h)
    return torch.stack(hs, dim=2), state
