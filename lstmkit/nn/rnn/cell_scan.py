"""The LSTM cell-state recurrence over a whole sequence, given every step's gates (for `lstm_trace`).

    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t,   t = 0 .. T-1 (T-1 .. 0 when reverse),  c_{-1} = c0

f, i, g are (T, B, H); c0 is (B, H). Two forms, tested equal to the plain loop (tests/nn/rnn/test_lstm_trace_fast.py):

* `CellScan`: one in-place addcmul per step, backward by hand (`AdjointScan`, a scan the other way, whose
  own backward is `CellScan` again: derivatives of every order). T Python steps: their overhead is the
  whole cost when B·H is small.
* `scan_chunked`: chunks of K = ⌈√T⌉ steps. K steps advance every chunk at once from zero, then ⌈T/K⌉
  steps carry the state from chunk to chunk: about 2√T Python steps, but ~4 more passes over memory.

`cell_scan` picks chunks when B·H < CHUNK_BELOW = 2048 (where the measured costs cross; measured speeds:
docs/benchmarks.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CHUNK_BELOW = 2048
"""B·H under which `cell_scan` uses chunks."""


def cell_scan(f: Tensor, i: Tensor, g: Tensor, c0: Tensor, reverse: bool) -> Tensor:
    """c of every step (T, B, H), by the faster form for this B·H."""
    if f.shape[1] * f.shape[2] >= CHUNK_BELOW:
        return CellScan.apply(f, i, g, c0, reverse)
    if reverse:
        return scan_chunked(f.flip(0), i.flip(0), g.flip(0), c0).flip(0)
    return scan_chunked(f, i, g, c0)


def _order(T: int, reverse: bool) -> list[int]:
    """The steps in the order the recurrence visits them."""
    return list(range(T - 1, -1, -1)) if reverse else list(range(T))


class CellScan(torch.autograd.Function):
    """One step at a time, in place. Backward, with "next" the step after t in the recurrence's order:

        dc_t = ∂L/∂c_t + f_next ⊙ dc_next            (∂c_next/∂c_t = f_next; `AdjointScan`, the other way)
        ∂L/∂f_t = dc_t ⊙ c_{t-1};  ∂L/∂i_t = dc_t ⊙ g_t;  ∂L/∂g_t = dc_t ⊙ i_t;  ∂L/∂c0 = f_first ⊙ dc_first

    A Function rather than a loop under autograd: T recorded addcmuls would each cost ~10 µs in backward
    and a buffer each. The backward is itself made of differentiable operations (`AdjointScan` has a
    backward too), so second and higher derivatives are exact, as through `scan_chunked`; forward mode
    (`jvp`) is a scan too. The forward and `setup_context` are apart, as `torch.func` transforms require."""

    @staticmethod
    def forward(f: Tensor, i: Tensor, g: Tensor, c0: Tensor, reverse: bool) -> Tensor:
        c = i * g  # (T, B, H): i_t ⊙ g_t, then f_t ⊙ c_{t-1} is added in place
        cs, fs = c.unbind(0), f.unbind(0)
        c_prev = c0
        for t in _order(len(cs), reverse):
            c_prev = cs[t].addcmul_(fs[t], c_prev)
        return c

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        f, i, g, c0, reverse = inputs
        ctx.save_for_backward(f, i, g, c0, output)
        ctx.save_for_forward(f, i, g, c0, output)
        ctx.reverse = reverse

    @staticmethod
    def jvp(ctx, df: Tensor | None, di: Tensor | None, dg: Tensor | None, dc0: Tensor | None, _) -> Tensor:
        """Forward mode, a scan again: δc_t = f_t ⊙ δc_{t-1} + (δf_t ⊙ c_{t-1} + δi_t ⊙ g_t + i_t ⊙ δg_t), δc0."""
        f, i, g, c0, c = ctx.saved_tensors
        u = torch.zeros_like(c)
        if df is not None:
            u = u + df * _previous(c, c0, ctx.reverse)
        if di is not None:
            u = u + di * g
        if dg is not None:
            u = u + i * dg
        dc0 = torch.zeros_like(c0) if dc0 is None else dc0
        return CellScan.apply(f, u, u.new_ones(()).expand_as(u), dc0, ctx.reverse)

    @staticmethod
    def vmap(info, in_dims, f, i, g, c0, reverse):
        """Under torch.func.vmap (jacrev, hessian): the scan is elementwise, so the vmapped batch is one more
        dimension after time (an input without it is expanded: in-place steps need it everywhere)."""
        n = info.batch_size
        f, i, g = (_batch_at(x, d, 1, n) for x, d in zip((f, i, g), in_dims[:3], strict=True))
        return CellScan.apply(f, i, g, _batch_at(c0, in_dims[3], 0, n), reverse), 1

    @staticmethod
    def backward(ctx, grad_c: Tensor):
        f, i, g, c0, c = ctx.saved_tensors
        first = _order(len(c), ctx.reverse)[0]
        dc = AdjointScan.apply(f, grad_c, ctx.reverse)  # (T, B, H), the total ∂L/∂c_t
        df = dc * _previous(c, c0, ctx.reverse) if ctx.needs_input_grad[0] else None
        di = dc * g if ctx.needs_input_grad[1] else None
        dg = dc * i if ctx.needs_input_grad[2] else None
        dc0 = f[first] * dc[first] if ctx.needs_input_grad[3] else None
        return df, di, dg, dc0, None


class AdjointScan(torch.autograd.Function):
    """CellScan's backward scan, a Function of its own so that it, too, has a backward:

        dc_t = v_t + f_next ⊙ dc_next,   dc_last = v_last       (v = ∂L/∂c; "next" as in `CellScan`)

    dc is linear in v, dc = Aᵀ v, where A is the map u ↦ c of `CellScan` from c0 = 0. So for a loss ℓ(dc):

        ∂ℓ/∂v = A e   (the forward scan of e = ∂ℓ/∂dc from zero: y_t = f_t ⊙ y_{t-1} + e_t)
        ∂ℓ/∂f_t = dc_t ⊙ y_{t-1}   (0 at the first step, where f multiplies c0, which is not in A)

    Each direction's backward is the other direction's forward, so every order of derivative is exact."""

    @staticmethod
    def forward(f: Tensor, v: Tensor, reverse: bool) -> Tensor:
        order = _order(len(v), reverse)
        dc = v.clone(memory_format=torch.contiguous_format)  # (T, B, H), becomes the total ∂L/∂c_t
        dcs, fs = dc.unbind(0), f.unbind(0)
        for t, nxt in zip(reversed(order[:-1]), reversed(order[1:]), strict=True):
            dcs[t].addcmul_(fs[nxt], dcs[nxt])
        return dc

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        f, _, reverse = inputs
        ctx.save_for_backward(f, output)
        ctx.save_for_forward(f, output)
        ctx.reverse = reverse

    @staticmethod
    def jvp(ctx, df: Tensor | None, dv: Tensor | None, _) -> Tensor:
        """Forward mode: δdc_t = (δv_t + δf_next ⊙ dc_next) + f_next ⊙ δdc_next, the adjoint scan again."""
        f, dc = ctx.saved_tensors
        w = torch.zeros_like(dc) if dv is None else dv
        if df is not None:  # δf_next ⊙ dc_next, 0 at the last step: the shift of `_previous` the other way
            w = w + _previous(df * dc, dc.new_zeros(dc.shape[1:]), not ctx.reverse)
        return AdjointScan.apply(f, w, ctx.reverse)

    @staticmethod
    def vmap(info, in_dims, f, v, reverse):
        """As `CellScan.vmap`: the vmapped batch after time."""
        n = info.batch_size
        return AdjointScan.apply(_batch_at(f, in_dims[0], 1, n), _batch_at(v, in_dims[1], 1, n), reverse), 1

    @staticmethod
    def backward(ctx, e: Tensor):
        f, dc = ctx.saved_tensors
        zero = dc.new_zeros(dc.shape[1:])  # (B, H)
        y = CellScan.apply(f, e, e.new_ones(()).expand_as(e), zero, ctx.reverse)  # u = e ⊙ 1: the scan of e
        df = dc * _previous(y, zero, ctx.reverse) if ctx.needs_input_grad[0] else None
        return df, y, None


def _batch_at(x: Tensor, dim: int | None, at: int, n: int) -> Tensor:
    """x with vmap's batch dimension (`dim`, None where x has none: expanded to n) moved to `at`."""
    if dim is None:
        return x.unsqueeze(at).expand(*x.shape[:at], n, *x.shape[at:])
    return x.movedim(dim, at)


def _previous(c: Tensor, c0: Tensor, reverse: bool) -> Tensor:
    """c_{t-1} for every step in the recurrence's order, (T, B, H): c0 at the first step."""
    return torch.cat([c[1:], c0[None]]) if reverse else torch.cat([c0[None], c[:-1]])


def scan_chunked(f: Tensor, i: Tensor, g: Tensor, c0: Tensor) -> Tensor:
    """Forward order, in chunks; plain autograd. Within chunk n (steps k = 0..K-1), from zero:

    ℓ_k = f_k ⊙ ℓ_{k-1} + i_k ⊙ g_k        all chunks at once, K steps
    A_k = f_0 ⊙ f_1 ⊙ ... ⊙ f_k            cumprod: no division, so it cannot overflow
    s_{n+1} = A_{K-1} ⊙ s_n + ℓ_{K-1}      the state at each chunk's start, s_0 = c0, ⌈T/K⌉ steps
    c_k = A_k ⊙ s_n + ℓ_k                  (the recurrence unrolled from the chunk's start)
    """
    T, B, H = f.shape
    K = math.isqrt(T - 1) + 1  # ⌈√T⌉
    N = -(-T // K)  # chunks
    u = i * g  # (T, B, H)
    if N * K > T:  # pad with steps that change nothing: f = 1, i ⊙ g = 0
        f = torch.cat([f, f.new_ones(N * K - T, B, H)])
        u = torch.cat([u, u.new_zeros(N * K - T, B, H)])
    f, u = f.reshape(N, K, B, H), u.reshape(N, K, B, H)
    ell = [u[:, 0]]  # each (N, B, H)
    for k in range(1, K):
        ell.append(torch.addcmul(u[:, k], f[:, k], ell[-1]))
    ell = torch.stack(ell, dim=1)  # (N, K, B, H)
    A = torch.cumprod(f, dim=1)  # (N, K, B, H)
    s = [c0]  # each (B, H)
    for n in range(N - 1):
        s.append(torch.addcmul(ell[n, -1], A[n, -1], s[-1]))
    c = torch.addcmul(ell, A, torch.stack(s)[:, None])  # (N, K, B, H)
    return c.reshape(N * K, B, H)[:T]
