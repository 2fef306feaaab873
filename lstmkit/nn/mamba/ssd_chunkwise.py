"""Mamba-2's SSD scan, chunkwise form: parallel inside chunks of L steps, recurrent across them.

The recurrence of `ssd_recurrent` per head, a_t = Δ_t A ≤ 0 the log decay of step t, u_s = Δ_s x_s. Inside chunk c
(steps s ≤ t, counted from the chunk's start) with the carried state h_c (h_0 the initial state):

    seg_ts = Σ_{s<r≤t} a_r ≤ 0                    log decay from s to t (a masked cumsum: no difference b_t - b_s)
    b_t    = Σ_{r≤t} a_r ≤ 0                      log decay of the carried state at t
    y_t    = Σ_s e^{seg_ts} (C_t · B_s) u_s + e^{b_t} h_c C_t
    h_{c+1} = e^{b_{L-1}} h_c + Σ_s e^{seg_{L-1,s}} u_s B_sᵀ

so every exponent is ≤ 0 for any Δ ≥ 0, A ≤ 0 (no stabilizer is needed). In matrices, per chunk and head: Y = (C Bᵀ ⊙
W) U + w0 ⊙ C h_cᵀ with W = e^{seg}, w0 = e^{b}; the chunk states by a short loop over the T/L chunks.

Masks: padding (valid False) is a step with a_t = 0 and u_t = 0, which leaves the state as it is (a reset there is
dropped); a shorter last chunk is padded so. A reset at t becomes segment ids S_t = Σ_{r≤t in the chunk} reset_r:
seg_ts = -inf unless S_s = S_t, and the carried state counts only where S_t = 0, both set before the exponential
(-inf into the cumsum would make it NaN). float16 and bfloat16 run in float32.

Shared with the mLSTM's chunkwise form (`lstmkit.nn.mlstm`), and not:

* the same arithmetic, reused: SSD is the mLSTM without normalizer and stabilizer (q = C, k = B, v = x, log forget
  a_t, input weight Δ_s); the batched product `bmm` of `mlstm.chunkwise_kernel` and the chunk length rule
  `auto_chunk_size` of `mlstm.chunkwise` are imported as they are.
* not shared, the normalizer makes it differ: the mLSTM kernel carries n as one more value column (V⁺ = [V | 1]),
  divides by max(|q̂ᵀn|, e^{-m}) + eps, and needs stabilizers μ, M (with their gradient put back through a factor of
  value 1) because its input gate e^{ĩ} is unbounded; it folds 1/√DK into its exponents. SSD has none of these, and
  its input weight Δ_s enters as a multiplier, not as a log gate log Δ_s (Δ = 0 at padding would be -inf, with a
  gradient 1/Δ). Its handwritten backward is for that arithmetic; SSD here runs on autograd.
* not shared, different layouts: B and C are shared by the H/G heads of a group, so C Bᵀ and the state products run
  once per group over all its heads' channels (Hg·P columns), where the mLSTM has one q, k per head; the log decays
  within a chunk are a masked cumsum (seg), exact for decays down to -1e4 a step, where the mLSTM subtracts its
  cumulative sums (its stabilizer absorbs that rounding).

Shapes: B batch, T time, H heads, P head dim, G groups, Hg = H / G heads per group, N state size, L chunk length,
NC chunks. Inside: a, b (B, G, Hg, NC, L); u (B, G, Hg, NC, L, P); B, C (B, G, NC, L, N); W (B, G, Hg, NC, L, L).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.mamba.ssd_recurrent import SSDState, check_ssd, in_float32, skip_and_gate
from lstmkit.nn.masks import check_masks
from lstmkit.nn.mlstm.chunkwise import auto_chunk_size
from lstmkit.nn.mlstm.chunkwise_kernel import bmm


def ssd_chunkwise(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    state: SSDState | None = None,
    *,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[Tensor, SSDState]:
    """y (B, T, H, P) and the final state, in chunks of `chunk_size` steps (None: `auto_chunk_size`).

    See `ssd_recurrent` for the arguments; any T, the last chunk may be shorter."""
    if chunk_size is not None and (type(chunk_size) is not int or chunk_size < 1):
        raise ValueError(f"chunk_size is {chunk_size!r}, expected a positive integer or None")
    batch, T, H, P, _, N = check_ssd(x, delta, A, B, C, D, z, state)
    check_masks(reset, valid, (batch, T), "(B, T)")
    state = SSDState.zeros(batch, H, P, N, like=x) if state is None else state
    if T == 0:
        return x.new_zeros(batch, 0, H, P), state
    L = auto_chunk_size(T, N, P) if chunk_size is None else chunk_size
    body = functools.partial(_body, L=L)
    return in_float32(body, x, delta, A, B, C, D, z, state, reset=reset, valid=valid)


def _body(x, delta, A, B, C, D, z, state, *, L, reset, valid) -> tuple[Tensor, SSDState]:
    y, h = ssd_chunks(x, delta, A, B, C, state.h, L=L, reset=reset, valid=valid)
    return skip_and_gate(y, x, D, z), SSDState(h)


def ssd_chunks(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    h0: Tensor,
    *,
    L: int,
    reset: Tensor | None,
    valid: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """The scan without D and the gate, no input checks: y (B, T, H, P) and the final h (B, H, P, N)."""
    batch, T, H, P = x.shape
    G, N = B.shape[2:]
    NC = -(-T // L)
    a = delta * A  # (B, T, H) log decay of each step
    u = delta[..., None] * x  # (B, T, H, P)
    if valid is not None:  # padding: no decay, no input
        a = torch.where(valid[..., None], a, 0.0)
        u = torch.where(valid[..., None, None], u, 0.0)
        reset = None if reset is None else reset & valid
    pad = NC * L - T  # a shorter last chunk: padded with steps that leave the state as it is
    a, u, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (a, u, B, C))

    def heads(t: Tensor) -> Tensor:  # (B, NC·L, H, ...) -> (B, G, Hg, NC, L, ...)
        t = t.unflatten(1, (NC, L)).unflatten(3, (G, H // G))
        return t.permute(0, 3, 4, 1, 2, *range(5, t.dim()))

    def groups(t: Tensor) -> Tensor:  # (B, NC·L, G, N) -> (B, G, NC, L, N)
        return t.unflatten(1, (NC, L)).permute(0, 3, 1, 2, 4)

    a, u, B, C = heads(a), heads(u), groups(B), groups(C)
    S = None if reset is None else F.pad(reset, (0, pad)).unflatten(1, (NC, L)).cumsum(-1)  # (B, NC, L) segments
    W, w0, alpha, d = decays(a, S)
    y = bmm(W * bmm(C, B.transpose(-1, -2))[:, :, None], u)  # the intra-chunk part (B, G, Hg, NC, L, P)
    uw = (u * alpha[..., None]).permute(0, 1, 3, 2, 5, 4).flatten(3, 4)  # (B, G, NC, Hg·P, L)
    U = bmm(uw, B).unflatten(3, (H // G, P))  # each chunk's own contribution to its end state (B, G, NC, Hg, P, N)
    starts, h = chunk_states(U, d, h0.reshape(batch, G, H // G, P, N))
    y_state = bmm(C, starts.flatten(3, 4).transpose(-1, -2)).unflatten(-1, (H // G, P))  # (B, G, NC, L, Hg, P)
    y = y + y_state.permute(0, 1, 4, 2, 3, 5) * w0[..., None]
    y = y.permute(0, 3, 4, 1, 2, 5).reshape(batch, NC * L, H, P)[:, :T]
    return y, h.reshape(batch, H, P, N)


def decays(a: Tensor, S: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """W = e^{seg} (B, G, Hg, NC, L, L), w0 = e^{b} (B, G, Hg, NC, L), α_s = e^{seg_{L-1,s}} (B, G, Hg, NC, L) and
    d = e^{b_{L-1}} (B, G, Hg, NC) from the log decays a (B, G, Hg, NC, L), with the segments S (B, NC, L) applied
    before the exponential."""
    L = a.shape[-1]
    below = torch.ones(L, L, dtype=torch.bool, device=a.device).tril()  # s ≤ t
    strictly_below = below.tril(-1)  # s < t
    seg = torch.where(strictly_below, a[..., :, None], 0.0).cumsum(-2)  # seg_ts = Σ_{s<r≤t} a_r
    b = a.cumsum(-1)
    allowed, carried = below, None
    if S is not None:
        allowed = below & (S[:, None, None, :, :, None] == S[:, None, None, :, None, :])  # (B, 1, 1, NC, L, L)
        carried = S[:, None, None] == 0  # (B, 1, 1, NC, L): the carried state lives until the chunk's first reset
    seg = torch.where(allowed, seg, -torch.inf)
    w0 = torch.exp(b if carried is None else torch.where(carried, b, -torch.inf))
    d = w0[..., -1]
    return torch.exp(seg), w0, torch.exp(seg[..., -1, :]), d


def chunk_states(U: Tensor, d: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """h_{c+1} = d_c h_c + U_c over the chunks: the states the chunks start from (B, G, NC, Hg, P, N), and the
    last. U (B, G, NC, Hg, P, N), d (B, G, Hg, NC), h0 (B, G, Hg, P, N)."""
    h, starts = h0, []
    for U_c, d_c in zip(U.unbind(2), d[..., None, None].unbind(3), strict=True):  # unbind: backward stays O(NC)
        starts.append(h)
        h = d_c * h + U_c
    return torch.stack(starts, dim=2), h
