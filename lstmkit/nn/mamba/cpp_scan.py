"""Mamba's selective scan in C++: `csrc/selective_scan.cpp`, compiled on first use, behind an autograd.Function.

The equations are those of the recurrent form (`lstmkit.nn.mamba.recurrent`), per batch row b and channel d:

    h_t[n] = exp(Δ_t A[d, n]) h_{t-1}[n] + Δ_t x_t B_t[n]
    y_t = (Σ_n h_t[n] C_t[n] + D x_t) ⊙ SiLU(z_t)

with the same masks (reset[b, t]: the state entering t is zero; valid False: the state passes unchanged, y is
computed) and the same signature. Every (b, d) pair is an independent scan over t, so the C++ loops run one tile
of 16 channels of one batch row per work item (`at::parallel_for`, torch's thread count), the tile's channels in
the vector lanes. No (B, T, D, N) tensor is formed: the forward keeps the state every K steps, and the backward
recomputes each chunk of K steps from its checkpoint into a per-item scratch, then walks it in reverse.

dtypes: float32 and float64 run as they are; float16 and bfloat16 are computed in float32 and returned in their
own dtype (the gradients too).

Build: `lstmkit.nn.cpp_build.build` compiles the source once into torch's extension cache, under a lock;
when the build fails it warns once and `usable()` is False, and `scan.selective_scan` uses the parallel scan in torch.

Shapes: B batch, T time, D channels, N state size, K steps per checkpoint.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor

from lstmkit.nn.cpp_build import build, compile_once
from lstmkit.nn.mamba.recurrent import MambaState, check_inputs

SOURCE = Path(__file__).parent / "csrc" / "selective_scan.cpp"
NAME = "lstmkit_selective_scan"
K = 64
"""Steps per checkpoint: the backward's scratch is 2·K·N·16 numbers per thread, the checkpoints B·D·N·T/K."""
FLAGS = ["-O3"]
"""No -ffast-math or -fassociative-math: they would fold exp's rounding trick ((v + 1.5·2^52) - 1.5·2^52) away."""
COMPUTED_AS = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


@functools.cache
def extension():
    """`torch.ops.lstmkit_selective_scan`, built on first use; None (after one warning) when it cannot be built."""
    return build(
        NAME,
        lambda: compile_once(NAME, SOURCE, FLAGS),
        "the selective scan's C++ loop",
        "the parallel scan in torch",
    )


def usable(x: Tensor, *others: Tensor | None) -> bool:
    """The C++ scan takes CPU tensors of one floating dtype (float16 and bfloat16 computed in float32)."""
    dtypes = (torch.float32, torch.float64, *COMPUTED_AS)
    tensors = [x, *(t for t in others if t is not None)]
    return (
        all(t.device.type == "cpu" and t.dtype == x.dtype for t in tensors)
        and x.dtype in dtypes
        and extension() is not None
    )


def selective_scan_cpp(
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
    """The scan in C++: y (B, T, D) and the final state (B, D, N), as `selective_scan_recurrent`."""
    batch, _, channels, N = check_inputs(x, delta, A, B, C, D, z, state, reset, valid)
    h0 = x.new_zeros(batch, channels, N) if state is None else state.h
    if not usable(x, delta, A, B, C, D, z, h0):
        raise ValueError(f"x is {x.dtype} on {x.device}, expected CPU float tensors and a built C++ extension")
    dtype = COMPUTED_AS.get(x.dtype, x.dtype)
    inputs = [t if t is None else t.to(dtype) for t in (x, delta, A, B, C, D, z, h0)]
    masks = [x.new_empty(0, dtype=torch.bool) if m is None else m for m in (reset, valid)]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        y, h = SelectiveScanFunction.apply(*inputs, *masks)
    else:
        y, h, _ = _forward(*inputs, *masks, save=False)
    return y.to(x.dtype), MambaState(h.to(x.dtype))


def _forward(x, delta, A, B, C, D, z, h0, reset, valid, *, save: bool):
    """The C++ forward -> y, h_T, the checkpoints (empty unless save); an absent D or z is an empty tensor."""
    return extension().forward(x, delta, A, B, C, _or_empty(D, x), _or_empty(z, x), h0, reset, valid, K, save)


def _or_empty(t: Tensor | None, like: Tensor) -> Tensor:
    return like.new_empty(0) if t is None else t


class SelectiveScanFunction(torch.autograd.Function):
    """Forward and backward loops in C++; the backward recomputes the states from the forward's checkpoints."""

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, z, h0, reset, valid):
        y, h, checkpoints = _forward(x, delta, A, B, C, D, z, h0, reset, valid, save=True)
        ctx.save_for_backward(x, delta, A, B, C, _or_empty(D, x), _or_empty(z, x), checkpoints, reset, valid)
        ctx.has = (D is not None, z is not None)
        return y, h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh):
        x, delta, A, B, C, D, z, checkpoints, reset, valid = ctx.saved_tensors
        dx, ddelta, dA, dB, dC, dD, dz, dh0 = extension().backward(
            dy, dh, x, delta, A, B, C, D, z, checkpoints, reset, valid, K
        )
        has_D, has_z = ctx.has
        return dx, ddelta, dA, dB, dC, dD if has_D else None, dz if has_z else None, dh0, None, None
