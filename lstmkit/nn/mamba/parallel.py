"""Mamba's selective scan, the parallel form: a chunked linear scan over time, with its own backward.

The recurrence of `recurrent` is first-order and linear in h, with coefficients known in advance:

    h_t = a_t ⊙ h_{t-1} + b_t        a_t = exp(Δ_t ⊗ A),  b_t = (Δ_t x_t) ⊗ B_t        (B, D, N)
    y_t = h_t C_t + D ⊙ x_t          (then ⊙ SiLU(z_t) when a gate is given)

so the masks are changes of coefficient: a reset at t is a_t = 0 (the state entering t is zero); a padded step is
a_t = 1, b_t = 0 (the state passes through; padding wins over a reset at the same step, as in the recurrent form),
and the initial state h_{-1} = h0 enters the first step. The composition (a, b) ∘ (a', b') = (a a', a b' + b') is
associative, which is what lets time be cut into chunks of L steps:

    1. within every chunk at once, from zero: the chunk's end state and the product of its a's   (L steps)
    2. across the chunks, in order: the state entering each chunk                             (T / L steps)
    3. within every chunk at once again, from its entering state: every h_t, written over b_t   (L steps)

About 2L + T/L tensor operations of size B·(T/L)·D·N instead of T of size B·D·N, and O(T) work (a doubling or
Blelloch scan does O(T log T) or walks strided halves log T times). Backward is the same scan run backwards,

    dh_t = g_t + a_{t+1} ⊙ dh_{t+1}    g_t = dy_t ⊗ C_t  (plus the final state's gradient at t = T-1)
    da_t = dh_t ⊙ h_{t-1},  db_t = dh_t,  dh0 = a_0 ⊙ dh_0

then the chain rule through a_t = exp(Δ_t A) and b_t = Δ_t x_t B_t by hand. Only h (B, T, D, N) is kept for
backward; a is recomputed there. The D skip and the gate stay in autograd (they are (B, T, D)). float16 and
bfloat16 run in float32 and come back in their own dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.mamba.recurrent import MambaState, _check
from lstmkit.nn.masks import check_masks

# B batch, T time, D channels, N state size, L chunk length, K number of chunks


def selective_scan_parallel(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    state: MambaState | None = None,
    *,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, MambaState]:
    """`selective_scan_recurrent`'s signature and values, all steps at once: y (B, T, D), the final state."""
    batch, T, channels, N = _check(x, delta, A, B, C, D, z, state)
    check_masks(reset, valid, (batch, T), "(B, T)")
    state = MambaState.zeros(batch, channels, N, like=x) if state is None else state
    if T == 0:
        return x.new_zeros(batch, 0, channels), state
    work = torch.promote_types(x.dtype, torch.float32)  # float16 and bfloat16 run in float32
    up = lambda t: None if t is None else t.to(work)  # noqa: E731
    y, h = _SelectiveScan.apply(up(x), up(delta), up(A), up(B), up(C), up(state.h), reset, valid)
    if D is not None:
        y = y + up(D) * up(x)
    if z is not None:
        y = y * F.silu(up(z))
    return y.to(x.dtype), MambaState(h.to(x.dtype))


class _SelectiveScan(torch.autograd.Function):
    """(x, Δ, A, B, C, h0, reset, valid) -> (h C (B, T, D), the final state h_{T-1} (B, D, N))."""

    @staticmethod
    def forward(ctx, x, delta, A, B, C, h0, reset, valid):
        a = _decay(delta, A, reset, valid, out=x.new_empty(*B.shape[:2], *A.shape))  # (B, T, D, N)
        h = (delta * x)[..., None] * B[:, :, None, :]  # b_t, then h_t in place
        if valid is not None:
            h.masked_fill_(~valid[:, :, None, None], 0.0)
        _scan(a, h, h0, reverse=False)
        del a
        y = torch.matmul(h, C[..., None])[..., 0]  # (B, T, D)
        ctx.save_for_backward(x, delta, A, B, C, h0, h)
        ctx.masks = (reset, valid)
        return y, h[:, -1].clone()

    @staticmethod
    def backward(ctx, dy, dh_last):
        x, delta, A, B, C, h0, h = ctx.saved_tensors
        reset, valid = ctx.masks
        batch, T, channels, N = h.shape
        shifted = h.new_empty(batch, T + 1, channels, N)  # a_t at t, and a_{t+1} one step on (0 past the end)
        a, a_next = shifted[:, :T], shifted[:, 1:]
        _decay(delta, A, reset, valid, out=a)
        shifted[:, T].zero_()
        dh = dy[..., None] * C[:, :, None, :]  # g_t, then dh_t in place
        dh[:, -1] += dh_last
        _scan(a_next, dh, torch.zeros_like(h0), reverse=True)
        dC = torch.matmul(dy[:, :, None, :], h)[:, :, 0]  # (B, T, N)
        dh0 = a[:, 0] * dh[:, 0]
        dlog = a  # da_t ⊙ a_t = dh_t ⊙ h_{t-1} ⊙ a_t, the gradient of Δ_t A, written over a
        dlog[:, 1:].mul_(h[:, :-1]).mul_(dh[:, 1:])
        dlog[:, 0].mul_(h0).mul_(dh[:, 0])
        del h
        delta_on = delta if valid is None else delta.masked_fill(~valid[..., None], 0.0)  # padding: a_t = 1
        d_delta_a = (dlog * A).sum(-1)  # (B, T, D)
        dA = dlog.mul_(delta_on[..., None]).sum((0, 1))  # (D, N); einsum would copy dlog into its order first
        del dlog, shifted
        u = delta * x  # (B, T, D)
        du = torch.matmul(dh, B[..., None])[..., 0]  # (B, T, D)
        dB = torch.matmul(u[:, :, None, :], dh)[:, :, 0]  # (B, T, N)
        if valid is not None:  # padding: b_t = 0 and a_t = 1 whatever x, Δ, B
            du.masked_fill_(~valid[..., None], 0.0)
            dB.masked_fill_(~valid[..., None], 0.0)
            d_delta_a.masked_fill_(~valid[..., None], 0.0)
        return du * delta, du * x + d_delta_a, dA, dB, dC, dh0, None, None


def _decay(delta: Tensor, A: Tensor, reset: Tensor | None, valid: Tensor | None, *, out: Tensor) -> Tensor:
    """a_t = exp(Δ_t ⊗ A) (B, T, D, N) written into `out`; 0 where a document starts, 1 at padding."""
    a = torch.mul(delta[..., None], A, out=out).exp_()
    if reset is not None:
        a.masked_fill_(reset[:, :, None, None], 0.0)
    if valid is not None:
        a.masked_fill_(~valid[:, :, None, None], 1.0)
    return a


def _chunk_length(T: int) -> int:
    """L ≈ √(T/2): the 2L steps within chunks and the T/L across them balance."""
    return max(1, round(math.sqrt(T / 2)))


def _scan(a: Tensor, b: Tensor, h0: Tensor, *, reverse: bool) -> None:
    """b_t := h_t = a_t ⊙ h_{t-1} + b_t for t = 0..T-1 from h_{-1} = h0, in place; reverse: h_t = a_t ⊙ h_{t+1} + b_t
    for t = T-1..0 from h_T = h0. The K chunks of L steps cover the first (last, reversed) K·L steps; the rest
    follow one step at a time."""
    T = a.shape[1]
    L = _chunk_length(T)
    K, rest = T // L, T % L
    span = slice(rest, T) if reverse else slice(0, K * L)
    steps = range(L - 1, -1, -1) if reverse else range(L)
    a_c = a[:, span].unflatten(1, (K, L))  # (B, K, L, D, N)
    b_c = b[:, span].unflatten(1, (K, L))
    first, *others = steps
    end, product = b_c[:, :, first].clone(), a_c[:, :, first].clone()  # (B, K, D, N)
    spare = torch.empty_like(end)  # two buffers in turn: no allocation per step
    for l in others:  # 1. each chunk from zero
        end, spare = torch.addcmul(b_c[:, :, l], a_c[:, :, l], end, out=spare), end
        product.mul_(a_c[:, :, l])
    entering = torch.empty_like(end)
    h = h0
    for k in range(K - 1, -1, -1) if reverse else range(K):  # 2. across chunks
        entering[:, k] = h
        h = torch.addcmul(end[:, k], product[:, k], h)
    previous = entering
    for l in steps:  # 3. each chunk from its entering state
        b_c[:, :, l].addcmul_(a_c[:, :, l], previous)
        previous = b_c[:, :, l]
    for t in range(rest - 1, -1, -1) if reverse else range(K * L, T):  # the steps left over
        b[:, t].addcmul_(a[:, t], h)
        h = b[:, t]
