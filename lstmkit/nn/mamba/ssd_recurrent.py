"""Mamba-2's SSD (state-space duality) scan, the recurrent form: the definition, batched, with autograd.

x (B, T, H, P) (H heads of P channels), Δ (B, T, H) positive (already softplus-ed and clamped), A (H,) negative (one
scalar per head), B_t, C_t (B, T, G, N) in G groups (H % G == 0; head h reads group h // (H / G)), per head:

    h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_tᵀ       (P, N)
    y_t = h_t C_t + D x_t                         (P,)
    y_t ⊙ SiLU(z_t)                               when a gate z (B, T, H, P) is given

It is Mamba's selective scan (`recurrent`) with A_{d,n} = A_h the same for every n, shared by the P channels of a
head: with G = 1 and P = 1 the two are the same scan, heads as channels (the tests hold them equal).

Masks (B, T) bool as every streaming layer has them (`lstmkit.nn.masks`): reset[b, t] starts a document at t (the
state entering t is zero); at a padded step (valid False) y is computed but unspecified (finite) and the state comes
back unchanged, a reset there included. float16 and bfloat16 run in float32 and come back in their own dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.finite import check_finite
from lstmkit.nn.mamba.recurrent import walk_time
from lstmkit.nn.masks import check_masks

LOW_PRECISION = (torch.float16, torch.bfloat16)


class SSDState(NamedTuple):
    h: Tensor
    """The SSM state (B, H, P, N): one P×N matrix per head."""

    @classmethod
    def zeros(cls, batch: int, heads: int, head_dim: int, state_size: int, *, like: Tensor) -> SSDState:
        return cls(like.new_zeros(batch, heads, head_dim, state_size))


def ssd_step(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    state: SSDState | None,
    *,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, SSDState]:
    """One step (generation): x, z (B, H, P), Δ (B, H), B, C (B, G, N), masks (B,) -> y (B, H, P), the new state."""
    batch, _, H, P, _, N = check_ssd(x, delta, A, B, C, D, z, state, step=True)
    check_masks(reset, valid, (batch,), "(B,)")
    state = SSDState.zeros(batch, H, P, N, like=x) if state is None else state
    return in_float32(step_unchecked, x, delta, A, B, C, D, z, state, reset=reset, valid=valid)


def ssd_recurrent(
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
) -> tuple[Tensor, SSDState]:
    """The scan over T steps, one step at a time: y (B, T, H, P) and the final state (B, H, P, N)."""
    batch, T, H, P, _, N = check_ssd(x, delta, A, B, C, D, z, state)
    check_masks(reset, valid, (batch, T), "(B, T)")
    state = SSDState.zeros(batch, H, P, N, like=x) if state is None else state
    return in_float32(_loop, x, delta, A, B, C, D, z, state, reset=reset, valid=valid)


def _loop(x, delta, A, B, C, D, z, state, *, reset, valid) -> tuple[Tensor, SSDState]:
    return walk_time(step_unchecked, x, delta, A, B, C, D, z, state, reset=reset, valid=valid)


def step_unchecked(x, delta, A, B, C, D, z, state, *, reset, valid) -> tuple[Tensor, SSDState]:
    """`ssd_step` without the input checks."""
    heads, groups = x.shape[1], B.shape[1]
    B_h = B.repeat_interleave(heads // groups, dim=1)  # (B, H, N): head h reads group h // (H / G)
    C_h = C.repeat_interleave(heads // groups, dim=1)
    h = state.h if reset is None else torch.where(reset[:, None, None, None], 0.0, state.h)
    decay = torch.exp(delta * A)[..., None, None]  # (B, H, 1, 1)
    h_new = decay * h + (delta[..., None] * x)[..., :, None] * B_h[:, :, None, :]  # (B, H, P, N)
    y = (h_new @ C_h[..., None])[..., 0]  # (B, H, P)
    if valid is not None:
        h_new = torch.where(valid[:, None, None, None], h_new, state.h)
    return skip_and_gate(y, x, D, z), SSDState(h_new)


def skip_and_gate(y: Tensor, x: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    """y + D x, then ⊙ SiLU(z); x, z (..., H, P), D (H,)."""
    if D is not None:
        y = y + D[:, None] * x
    if z is not None:
        y = y * F.silu(z)
    return y


def in_float32(body, x, delta, A, B, C, D, z, state, **masks) -> tuple[Tensor, SSDState]:
    """body(x, delta, A, B, C, D, z, state, **masks), in float32 for float16 and bfloat16 inputs, cast back.

    Half precision cannot hold Δ up to 1e4 times x, nor the log decays Δ A down to -1e4 a step summed over a chunk;
    on CPU its products are no faster."""
    if x.dtype not in LOW_PRECISION:
        return body(x, delta, A, B, C, D, z, state, **masks)
    up = [None if t is None else t.float() for t in (x, delta, A, B, C, D, z)]
    y, final = body(*up, SSDState(state.h.float()), **masks)
    return y.to(x.dtype), SSDState(final.h.to(x.dtype))


def check_ssd(x, delta, A, B, C, D, z, state, *, step: bool = False) -> tuple[int, int, int, int, int, int]:
    """(batch, T, H, P, G, N) (T = 1 for a `step`: x (B, H, P)), or one ValueError naming the first tensor of the
    wrong shape or with a bad value."""
    if not isinstance(x, Tensor) or x.dim() != 4 - step:
        raise ValueError(f"x is {_shape(x)}, expected a tensor {'(B, H, P)' if step else '(B, T, H, P)'}")
    lead, (H, P) = tuple(x.shape[:-2]), x.shape[-2:]
    batch, T = lead[0], 1 if step else lead[1]
    like_lead = ", ".join(map(str, lead))
    if not isinstance(B, Tensor) or B.dim() != 4 - step or tuple(B.shape[:-2]) != lead or not _divides(B.shape[-2], H):
        raise ValueError(f"B is {_shape(B)}, expected ({like_lead}, G, N) with G groups dividing H = {H}")
    G, N = B.shape[-2:]
    expected = {"B": (B, (*lead, G, N)), "delta": (delta, (*lead, H)), "A": (A, (H,)), "C": (C, (*lead, G, N))}
    expected.update({"D": (D, (H,)), "z": (z, (*lead, H, P))})
    if state is not None:
        if not isinstance(state, SSDState):
            raise ValueError(f"state is a {type(state).__name__}, expected an SSDState(h)")
        expected["state.h"] = (state.h, (batch, H, P, N))
    for name, (tensor, shape) in expected.items():
        if tensor is None:
            continue
        if not isinstance(tensor, Tensor) or tuple(tensor.shape) != shape:
            raise ValueError(f"{name} is {_shape(tensor)}, expected {shape}")
        if tensor.dtype != x.dtype:
            raise ValueError(f"{name} is {tensor.dtype}, expected {x.dtype} as x")
    for name, (tensor, _) in {"x": (x, None), **expected}.items():
        if tensor is not None:
            check_finite(name, tensor)
    return batch, T, H, P, G, N


def _divides(G: int, H: int) -> bool:
    return G > 0 and H % G == 0


def _shape(value) -> str:
    return f"{tuple(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"
