"""The chunkwise mLSTM's heavy part, with a hand-written backward, for fixed stabilizers.

Inside chunk c (steps t, s = 0..L-1, s ≤ t), with b the within-chunk cumsum of log σ(f̃), and μ_t
(per step) and M_c (per chunk start) stabilizers taken as constants:

    W_ts = exp(b_t - b_s + i_s - μ_t)          (0 for s > t)     P = (q̂ Kᵀ) ⊙ W
    w0_t = exp(b_t + M_c - μ_t)
    Y    = P V⁺ + w0 ⊙ (q̂ C⁺_c)                 V⁺ = [V | 1],  C⁺ = [C | n]  (the normalizer as one more column)
    α_s  = exp(b_{L-1} - b_s + i_s - M_{c+1})   d_c = exp(b_{L-1} + M_c - M_{c+1})
    C⁺_{c+1} = d_c C⁺_c + (α ⊙ K)ᵀ V⁺

so Y = [num | qn] of the parallel form scaled by e^{-μ_t}, and C⁺_c is the state scaled by e^{-M_c}. The
relations hold for *any* constants μ, M; the caller picks them as (detached) maxima so that every
exponent is ≤ 0, and puts the true stabilizer's gradient back through s (value 1, `chunkwise_fast`):

    h = num / den,   den = max(|qn|, e^{-μ}) + eps·s        (e^{-μ} with μ ≥ `m_floor`: `state.lower_bound`)
                     (detach_normalizer: den = (max(|qn|, e^{-μ}) + eps)·s, a constant but for s)

q̂'s scale 1/√DK is folded into W and w0 (log scale added before the exponential).

Backward (per chunk; dh and dC⁺ of the final state given):

    dnum = dh / den    dden = -Σ_v dh ⊙ h / den    dqn = dden sign(qn) [|qn| > e^{-μ}]    ds = eps dden
    dC⁺_c = d_c dC⁺_{c+1} + (w0 ⊙ q̂)ᵀ dY                       reverse scan over chunks
    dd_c  = ⟨dC⁺_{c+1}, C⁺_c⟩
    dV⁺   = Pᵀ dY + (α ⊙ K) dC⁺_{c+1}          G = V⁺ dC⁺_{c+1}ᵀ:  dK = α ⊙ G + dSᵀ q̂,  dα_s = k_s · G_s
    dP    = dY V⁺ᵀ    dS = dP ⊙ W    dlogW = dP ⊙ P              dq̂ = dS K + w0 ⊙ (dY C⁺_cᵀ)
    db_t += Σ_s dlogW_ts - Σ_{t'} dlogW_{t't} + w0_t dw0_t - α_t dα_t,   db_{L-1} += Σ_s α_s dα_s + d_c dd_c
    di_s += Σ_t dlogW_ts + α_s dα_s

Shapes: B batch, NH heads, NC chunks, L chunk length, DK key size, DV value size, DV1 = DV + 1.
q, k (B, NH, NC, L, DK) (q unscaled); v (B, NH, NC, L, DV); b, i, s, μ (B, NH, NC, L); M (B, NH, NC+1);
C0 (B, NH, DK, DV); n0 (B, NH, DK). Y (B, NH, NC, L, DV1); h (B, NH, NC, L, DV); final C⁺ (B, NH, DK, DV1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lstmkit.nn.mlstm.state import lower_bound


def bmm(x: Tensor, y: Tensor) -> Tensor:
    """x @ y over any leading dims, through one 3-d batched product (matmul's broadcasting adds copies)."""
    lead = x.shape[:-2]
    return torch.bmm(x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:])).view(*lead, x.shape[-2], y.shape[-1])


def dot(x: Tensor, y: Tensor) -> Tensor:
    """⟨x, y⟩ over the last two dims, as a batched (1×n)(n×1) product: no n-sized temporary."""
    n = x.shape[-1] * x.shape[-2]
    return bmm(x.reshape(*x.shape[:-2], 1, n), y.reshape(*y.shape[:-2], n, 1))[..., 0, 0]


def chunkwise_kernel(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    b: Tensor,
    i: Tensor,
    s: Tensor,
    C0: Tensor,
    n0: Tensor,
    mu: Tensor,
    M: Tensor,
    eps: float,
    detach_normalizer: bool,
) -> tuple[Tensor, Tensor]:
    """h, C⁺_NC by `ChunkwiseKernel`, its arguments by name (autograd.Function.apply takes them by position only)."""
    return ChunkwiseKernel.apply(q, k, v, b, i, s, C0, n0, mu, M, eps, detach_normalizer)


class ChunkwiseKernel(torch.autograd.Function):
    """h, C⁺_NC = ChunkwiseKernel.apply(q, k, v, b, i, s, C0, n0, μ, M, eps, detach_normalizer); call it through
    `chunkwise_kernel`, which names them.

    h = num / den with [num | qn] = Y and den = max(|qn|, e^{-μ}) + eps·s, or (max(|qn|, e^{-μ}) + eps)·s
    with the denominator detached; s (value 1) carries the true stabilizer's gradient (`chunkwise_fast`).
    μ, M, eps and the flag get no gradient.
    """

    @staticmethod
    def forward(ctx, q, k, v, b, i, s, C0, n0, mu, M, eps, detach_normalizer):
        B, NH, NC, L, DV = v.shape
        log_scale = -0.5 * math.log(q.shape[-1])  # q̂ = q / √DK, folded into W and w0
        v1 = torch.cat([v, v.new_ones(B, NH, NC, L, 1)], dim=-1)  # V⁺ (B, NH, NC, L, DV1)
        g = b[..., -1]  # (B, NH, NC) log forget over the whole chunk
        y = i - b  # (B, NH, NC, L)
        W = torch.add((b - mu + log_scale)[..., :, None], y[..., None, :])  # log W (B, NH, NC, L, L)
        W.masked_fill_(~torch.ones(L, L, dtype=torch.bool, device=q.device).tril(), -torch.inf).exp_()
        P = bmm(q, k.transpose(-1, -2)).mul_(W)  # (q̂ Kᵀ) ⊙ W
        alpha = torch.exp(y + (g - M[..., 1:])[..., None])  # (B, NH, NC, L)
        d = torch.exp(g + M[..., :-1] - M[..., 1:])[..., None, None]  # (B, NH, NC, 1, 1)
        U = bmm((k * alpha[..., None]).transpose(-1, -2), v1)  # each chunk's own contribution (B, NH, NC, DK, DV1)
        Cs = torch.empty_like(U)  # C⁺_0 .. C⁺_{NC-1}, the state each chunk starts from
        Cs[:, :, 0, :, :DV] = C0
        Cs[:, :, 0, :, DV] = n0
        for c in range(NC - 1):  # C⁺_{c+1} = d_c C⁺_c + (α ⊙ K)ᵀ V⁺
            torch.addcmul(U[:, :, c], Cs[:, :, c], d[:, :, c], out=Cs[:, :, c + 1])
        C_last = torch.addcmul(U[:, :, -1], Cs[:, :, -1], d[:, :, -1])
        w0 = torch.exp(b + M[..., :-1, None] - mu + log_scale)  # (B, NH, NC, L), q̂'s scale included
        Y = bmm(q, Cs).mul_(w0[..., None])
        Y = Y.view(-1, L, DV + 1).baddbmm_(P.view(-1, L, L), v1.view(-1, L, DV + 1)).view(B, NH, NC, L, DV + 1)
        num, qn = Y[..., :DV], Y[..., DV:]  # (B, NH, NC, L, DV), (B, NH, NC, L, 1)
        lower = lower_bound(mu)[..., None]  # (B, NH, NC, L, 1)
        A = torch.maximum(qn.abs(), lower)
        den = (A + eps) * s[..., None] if detach_normalizer else A + eps * s[..., None]
        h = num / den
        ctx.save_for_backward(q, k, v1, W, P, Cs, w0, alpha, d, h, den, lower, qn)
        ctx.eps, ctx.detach_normalizer = eps, detach_normalizer
        return h, C_last

    @staticmethod
    def backward(ctx, dh, dC_last):
        q, k, v1, W, P, Cs, w0, alpha, d, h, den, lower, qn = ctx.saved_tensors
        NC, DV = q.shape[2], v1.shape[-1] - 1
        dY = torch.empty(*h.shape[:-1], DV + 1, dtype=h.dtype, device=h.device)  # [dnum | dqn]
        torch.div(dh, den, out=dY[..., :DV])
        dden = -(dh * h).sum(-1, keepdim=True) / den  # (B, NH, NC, L, 1)
        if ctx.detach_normalizer:
            ds = dden * (torch.maximum(qn.abs(), lower) + ctx.eps)
            dY[..., DV:] = 0
        else:
            ds = dden * ctx.eps
            branch = (qn.abs() > lower).to(qn.dtype) + 0.5 * (qn.abs() == lower)  # torch.maximum's: ties split
            dY[..., DV:] = dden * qn.sign() * branch
        D = torch.empty_like(Cs)  # D_c: gradient of C⁺_{c+1}, the state chunk c ends with
        D[:, :, -1] = 0 if dC_last is None else dC_last
        E = bmm((q * w0[..., None]).transpose(-1, -2), dY)  # (w0 ⊙ q̂)ᵀ dY: gradient of C⁺_c from outputs
        for c in reversed(range(1, NC)):  # gradient of C⁺_c = d_c D_c + E_c
            torch.addcmul(E[:, :, c], D[:, :, c], d[:, :, c], out=D[:, :, c - 1])
        dC0 = torch.addcmul(E[:, :, 0], D[:, :, 0], d[:, :, 0])
        dd = dot(D, Cs) * d[..., 0, 0]  # (B, NH, NC): d(exponent of d_c)
        G = bmm(v1, D.transpose(-1, -2))  # (B, NH, NC, L, DK)
        dalpha = (k * G).sum(-1) * alpha  # d(exponent of α)
        dk = G.mul_(alpha[..., None])
        dv1 = bmm(k * alpha[..., None], D)
        dP = bmm(dY, v1.transpose(-1, -2))  # (B, NH, NC, L, L)
        dv1 += bmm(P.transpose(-1, -2), dY)
        dS = dP * W
        dq = bmm(dS, k)
        dk += bmm(dS.transpose(-1, -2), q)
        dlogW = dP.mul_(P)
        Z = bmm(dY, Cs.transpose(-1, -2))  # dY C⁺_cᵀ (B, NH, NC, L, DK)
        dw0 = (Z * q).sum(-1) * w0  # d(exponent of w0)
        dq += Z.mul_(w0[..., None])
        colsum = dlogW.sum(-2)
        db = dlogW.sum(-1) - colsum + dw0 - dalpha
        db[..., -1] += dalpha.sum(-1) + dd
        di = colsum + dalpha
        return dq, dk, dv1[..., :DV], db, di, ds[..., 0], dC0[..., :DV], dC0[..., DV], None, None, None, None
