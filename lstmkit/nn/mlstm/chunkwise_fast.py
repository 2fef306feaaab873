"""mLSTM chunkwise form without masks: the stabilizers from one cummax, the rest in `chunkwise_kernel`.

For T = NC·L steps (whole chunks), with b_t = Σ_{r≤t in its chunk} log σ(f̃_r) and u_t = max_{s≤t}(ĩ_s - b_s)
(both within the chunk; one cumsum and one cummax for all chunks at once):

    g_c   = b_{L-1}                            chunk c's total log forget
    M_0   = m_0,   M_{c+1} = max(g_c + M_c, g_c + u_{c,L-1})    stabilizer at each chunk boundary
                                               (a max-plus scan over chunks, `max_plus_scan`)
    μ_t   = b_t + max(M_c, u_t)                the recurrent form's m_t, unrolled

The outputs depend on the stabilizer only through eps: with the unstabilized N, Q (numerator and q̂ᵀn),
h = N e^{-μ} / (max(|Q|, 1) e^{-μ} + eps). So the heavy part runs with μ̃ = μ.detach() (`ChunkwiseKernel`,
hand-written backward), and the gradient of the true μ comes back through r = e^{μ̃ - μ} (value 1):

    h = num̃ r / (max(|qñ|, e^{-μ̃}) r + eps),      num̃ = N e^{-μ̃},  qñ = Q e^{-μ̃}

which is the same function as the recurrent form's, so autograd gives the same gradients (also with
`detach_normalizer`, where the denominator is a constant). The initial and final states get the same
treatment: C_0 enters as C_0 e^{m_0 - m̃_0}, C_T leaves as C̃_T e^{M̃_NC - M_NC}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.mlstm.chunkwise_kernel import chunkwise_kernel
from lstmkit.nn.mlstm.parallel import finite_or_zero
from lstmkit.nn.mlstm.state import mLSTMState


def chunkwise_unmasked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    *,
    eps: float,
    detach_normalizer: bool,
    L: int,
) -> tuple[Tensor, mLSTMState]:
    """h (B, NH, NC·L, DV) and the final state, for T = NC·L; no input checks (see `mlstm_chunkwise`)."""
    T, DV = q.shape[2], v.shape[-1]
    NC = T // L

    def chunks(x: Tensor) -> Tensor:  # (B, NH, NC·L, ...) -> (B, NH, NC, L, ...)
        return x.unflatten(2, (NC, L))

    b = chunks(F.logsigmoid(f)).cumsum(-1)  # (B, NH, NC, L)
    u = (chunks(i) - b).cummax(-1).values  # max_{s≤t} (ĩ_s - b_s)
    g = b[..., -1]  # (B, NH, NC)
    M = torch.cat([state.m[..., None], max_plus_scan(g, g + u[..., -1], state.m)], dim=-1)  # (B, NH, NC+1)
    mu = b + torch.maximum(M[..., :-1, None], u)  # (B, NH, NC, L)
    mu_c, M_c = mu.detach(), M.detach()
    r0 = torch.exp(state.m - finite_or_zero(M_c[..., 0]))  # 1, or 0 for an empty state (m_0 = -inf)
    C0, n0 = state.C * r0[..., None, None], state.n * r0[..., None]
    s = torch.exp(mu - mu_c)  # (B, NH, NC, L), value 1
    h, C_last = chunkwise_kernel(
        chunks(q),
        chunks(k),
        chunks(v),
        b=b,
        i=chunks(i),
        s=s,
        C0=C0,
        n0=n0,
        mu=mu_c,
        M=M_c,
        eps=eps,
        detach_normalizer=detach_normalizer,
    )
    h = h.flatten(2, 3)  # (B, NH, T, DV)
    r_last = torch.exp(M_c[..., -1] - M[..., -1])[..., None]  # (B, NH, 1), value 1
    return h, mLSTMState(C_last[..., :DV] * r_last[..., None], C_last[..., DV] * r_last, M[..., -1])


def max_plus_scan(a: Tensor, b: Tensor, m0: Tensor) -> Tensor:
    """M_1 .. M_NC of M_{c+1} = max(a_c + M_c, b_c), M_0 = m0; a, b (..., NC), m0 (...).

    Step c is the map m -> max(a_c + m, b_c); two steps compose to m -> max(a_1 + a_2 + m, max(b_1 + a_2, b_2)),
    so a doubling scan needs log2(NC) vectorized rounds instead of NC tiny ones. No global prefix sum of the
    b's: each sum covers only the steps it composes, so float32 rounding stays that of the recurrence (a
    cumsum over 100k strongly forgetting steps reaches ~1e6 and would cost m about 0.1 absolute).
    """
    NC, shift = a.shape[-1], 1
    while shift < NC:  # after the round, (a_c, b_c) is the composition of steps max(0, c - 2·shift + 1) .. c
        b = torch.cat([b[..., :shift], torch.maximum(b[..., :-shift] + a[..., shift:], b[..., shift:])], dim=-1)
        a = torch.cat([a[..., :shift], a[..., :-shift] + a[..., shift:]], dim=-1)
        shift *= 2
    return torch.maximum(a + m0[..., None], b)
