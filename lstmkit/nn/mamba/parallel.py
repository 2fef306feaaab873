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

then the chain rule through a_t = exp(Δ_t A) and b_t = Δ_t x_t B_t by hand. a_t is never stored whole: each
scan step computes the a's it uses, so forward allocates one (B, T, D, N) tensor (b, then h, kept for backward)
and backward one more (g, then dh); dΔ and dA are summed block by block of time. On CPU the cost of these large
tensors is as much in first touching fresh memory as in arithmetic. The D skip and the gate stay in autograd (they
are (B, T, D)). float16 and bfloat16 run in float32 and come back in their own dtype. Once differentiable.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from lstmkit.nn.mamba.recurrent import MambaState, check_inputs

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
    batch, T, channels, N = check_inputs(x, delta, A, B, C, D, z, state, reset, valid)
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
        h = (delta * x)[..., None] * B[:, :, None, :]  # b_t (B, T, D, N), then h_t in place
        if valid is not None:
            h.masked_fill_(~valid[:, :, None, None], 0.0)
        _scan(_Decay(delta, A, reset, None if valid is None else ~valid), h, h0, reverse=False)
        y = torch.matmul(h, C[..., None])[..., 0]  # (B, T, D)
        ctx.save_for_backward(x, delta, A, B, C, h0, h)
        ctx.masks = (reset, valid)
        return y, h[:, -1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_last):
        x, delta, A, B, C, h0, h = ctx.saved_tensors
        reset, valid = ctx.masks
        padding = None if valid is None else ~valid
        dh = dy[..., None] * C[:, :, None, :]  # g_t (B, T, D, N), then dh_t in place
        dh[:, -1] += dh_last
        _scan(_Decay.next(delta, A, reset, padding), dh, torch.zeros_like(h0), reverse=True)
        dC = torch.matmul(dy[:, :, None, :], h)[:, :, 0]  # (B, T, N)
        d_delta_a, dA, dh0 = _decay_grads(_Decay(delta, A, reset, padding), h0, h, dh)
        u = delta * x  # (B, T, D)
        du = torch.matmul(dh, B[..., None])[..., 0]  # (B, T, D)
        dB = torch.matmul(u[:, :, None, :], dh)[:, :, 0]  # (B, T, N)
        if padding is not None:  # b_t = 0 there whatever x, Δ, B
            du.masked_fill_(padding[..., None], 0.0)
            dB.masked_fill_(padding[..., None], 0.0)
        return du * delta, du * x + d_delta_a, dA, dB, dC, dh0, None, None


class _Decay(NamedTuple):
    """What a_t is made of, step by step: a_t is computed where a scan uses it and never stored whole (a (B, T, D, N)
    tensor less to allocate, fill and read back)."""

    delta: Tensor
    """Δ (B, T, D)."""
    A: Tensor
    """(D, N)."""
    zero: Tensor | None
    """(B, T): a_t = 0 (a document starts at t)."""
    one: Tensor | None
    """(B, T): a_t = 1 (padding; wins over zero)."""

    @classmethod
    def next(cls, delta: Tensor, A: Tensor, reset: Tensor | None, padding: Tensor | None) -> _Decay:
        """a_{t+1} at t, and 0 at t = T - 1 (nothing comes back from past the end): backward's coefficients."""
        batch, T = delta.shape[:2]
        end = torch.ones(batch, 1, dtype=torch.bool, device=delta.device)
        starts = end.new_zeros(batch, T - 1) if reset is None else reset[:, 1:]
        one = None if padding is None else torch.cat([padding[:, 1:], ~end], 1)
        return cls(torch.cat([delta[:, 1:], delta[:, :1]], 1), A, torch.cat([starts, end], 1), one)

    def at(self, pick, out: Tensor) -> Tensor:
        """a at the steps `pick` selects from a (B, T, ...) tensor, written into `out` (B, ..., D, N)."""
        a = torch.mul(pick(self.delta)[..., None], self.A, out=out).exp_()
        if self.zero is not None:
            a.masked_fill_(pick(self.zero)[..., None, None], 0.0)
        if self.one is not None:
            a.masked_fill_(pick(self.one)[..., None, None], 1.0)
        return a


def _decay_grads(decay: _Decay, h0: Tensor, h: Tensor, dh: Tensor, block: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """dΔ through a (B, T, D), dA (D, N) and dh0 (B, D, N) from da_t ⊙ a_t = dh_t ⊙ h_{t-1} ⊙ a_t, the gradient of
    Δ_t A, block by block of time (a recomputed, nothing of size T kept)."""
    batch, T, channels, N = h.shape
    delta = decay.delta if decay.one is None else decay.delta.masked_fill(decay.one[..., None], 0.0)  # a = 1: no Δ
    d_delta = torch.empty_like(delta)
    dA = h.new_zeros(channels, N)
    buffer = h.new_empty(batch, min(block, T), channels, N)
    for t0 in range(0, T, block):
        span = slice(t0, min(T, t0 + block))
        a = decay.at(lambda t: t[:, span], buffer[:, : span.stop - t0])  # noqa: B023
        if t0 == 0:
            dh0 = a[:, 0] * dh[:, 0]
            h_prev = torch.cat([h0[:, None], h[:, : span.stop - 1]], 1)
        else:
            h_prev = h[:, t0 - 1 : span.stop - 1]
        dlog = a.mul_(h_prev).mul_(dh[:, span])
        d_delta[:, span] = torch.einsum("btdn,dn->btd", dlog, decay.A)
        dA += dlog.mul_(delta[:, span, :, None]).sum((0, 1))
    if decay.one is not None:
        d_delta.masked_fill_(decay.one[..., None], 0.0)
    return d_delta, dA, dh0


def _chunk_length(T: int) -> int:
    """L ≈ √(T/2): the 2L steps within chunks and the T/L across them balance."""
    return max(1, round(math.sqrt(T / 2)))


def _scan(decay: _Decay, b: Tensor, h0: Tensor, *, reverse: bool) -> None:
    """b_t := h_t = a_t ⊙ h_{t-1} + b_t for t = 0..T-1 from h_{-1} = h0, in place; reverse: h_t = a_t ⊙ h_{t+1} + b_t
    for t = T-1..0 from h_T = h0. The K chunks of L steps cover the first (last, reversed) K·L steps; the rest
    follow one step at a time. The a's are made G steps (of every chunk) at a time: fewer, larger operations than
    one step at a time, a quarter of the memory of all at once."""
    T = b.shape[1]
    L = _chunk_length(T)
    K, rest, G = T // L, T % L, -(-L // 4)
    span = slice(rest, T) if reverse else slice(0, K * L)
    b_c = b[:, span].unflatten(1, (K, L))  # (B, K, L, D, N)
    steps = range(L - 1, -1, -1) if reverse else range(L)
    buffer = b.new_empty(b.shape[0], K, G, *b.shape[2:])  # (B, K, G, D, N)
    end, product = torch.zeros_like(b_c[:, :, 0]), torch.ones_like(b_c[:, :, 0])  # (B, K, D, N)
    spare = torch.empty_like(end)  # two buffers in turn: no allocation per step
    for l, a in _coefficients(decay, span, K, L, steps, G, buffer):  # 1. each chunk from zero
        end, spare = torch.addcmul(b_c[:, :, l], a, end, out=spare), end
        product.mul_(a)
    entering = torch.empty_like(end)
    h = h0
    for k in range(K - 1, -1, -1) if reverse else range(K):  # 2. across chunks
        entering[:, k] = h
        h = torch.addcmul(end[:, k], product[:, k], h)
    previous = entering
    for l, a in _coefficients(decay, span, K, L, steps, G, buffer):  # 3. each chunk from its entering state
        b_c[:, :, l].addcmul_(a, previous)
        previous = b_c[:, :, l]
    a_t = torch.empty_like(h0)
    for t in range(rest - 1, -1, -1) if reverse else range(K * L, T):  # the steps left over
        b[:, t].addcmul_(decay.at(lambda v: v[:, t], a_t), h)  # noqa: B023
        h = b[:, t]


def _coefficients(decay: _Decay, span: slice, K: int, L: int, steps: range, G: int, buffer: Tensor):
    """(l, a at step l of every chunk (B, K, D, N)) for l in `steps`, the a's made G steps at a time into `buffer`."""
    for i in range(0, L, G):
        group = steps[i : i + G]
        low = min(group)
        window = slice(low, low + len(group))
        a = decay.at(lambda t: t[:, span].unflatten(1, (K, L))[:, :, window], buffer[:, :, : len(group)])  # noqa: B023
        for l in group:
            yield l, a[:, :, l - low]
