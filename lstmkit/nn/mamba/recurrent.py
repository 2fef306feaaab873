"""Mamba's selective scan, the recurrent form: the definition, batched, with autograd.

x, Δ (B, T, D) (D channels, Δ already softplus-ed and positive), A (D, N) negative, B_t, C_t (B, T, N):

    Ā_t = exp(Δ_t ⊗ A)                  (B, D, N)
    h_t = Ā_t ⊙ h_{t-1} + (Δ_t x_t) ⊗ B_t
    y_t = h_t C_t + D ⊙ x_t              (B, D)       h_t C_t sums over N
    y_t ⊙ SiLU(z_t)                     when a gate z (B, T, D) is given

Masks (B, T) bool, as every streaming layer has them (`lstmkit.nn.masks`): reset[b, t] starts a document at
t (the state entering t is zero, the empty state); at a padded step (valid False) y is computed but
unspecified and the state comes back unchanged. `lstmkit.reference.mamba` is the same cell in NumPy, one
sequence at a time; the tests hold this form equal to it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.finite import check_finite
from lstmkit.nn.masks import check_masks


class MambaState(NamedTuple):
    h: Tensor
    """The SSM state (B, D, N)."""

    @classmethod
    def zeros(cls, batch: int, channels: int, state_size: int, *, like: Tensor) -> MambaState:
        return cls(like.new_zeros(batch, channels, state_size))


def selective_scan_step(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    state: MambaState,
    *,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, MambaState]:
    """One step: x, Δ, z (B, D), B, C (B, N), masks (B,) -> y (B, D), the new state."""
    h = state.h if reset is None else torch.where(reset[:, None, None], torch.zeros_like(state.h), state.h)
    A_bar = torch.exp(delta[:, :, None] * A)  # (B, D, N)
    h_new = torch.addcmul((delta * x)[:, :, None] * B[:, None, :], A_bar, h)
    y = torch.bmm(h_new, C[:, :, None])[..., 0]  # Σ_n h C: one product, not a multiply and a sum
    if D is not None:
        y = y + D * x
    if z is not None:
        y = y * F.silu(z)
    if valid is not None:
        h_new = torch.where(valid[:, None, None], h_new, state.h)
    return y, MambaState(h_new)


def selective_scan_recurrent(
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
    """The scan over T steps, one step at a time: y (B, T, D) and the final state (B, D, N)."""
    batch, _, channels, N = check_inputs(x, delta, A, B, C, D, z, state, reset, valid)
    state = MambaState.zeros(batch, channels, N, like=x) if state is None else state
    return walk_time(selective_scan_step, x, delta, A, B, C, D, z, state, reset=reset, valid=valid)


def walk_time(step, x, delta, A, B, C, D, z, state, *, reset, valid):
    """y (B, T, ...) and the final state from `step` called on each time step in turn (shared with Mamba-2's
    recurrent form); the tensors are walked with unbind, not x[:, t], so that backward stays O(T)."""
    nothing = [None] * x.shape[1]
    steps = zip(
        x.unbind(1),
        delta.unbind(1),
        B.unbind(1),
        C.unbind(1),
        nothing if z is None else z.unbind(1),
        nothing if reset is None else reset.unbind(1),
        nothing if valid is None else valid.unbind(1),
        strict=True,
    )
    ys = []
    for x_t, delta_t, B_t, C_t, z_t, reset_t, valid_t in steps:
        y, state = step(x_t, delta_t, A, B_t, C_t, D, z_t, state, reset=reset_t, valid=valid_t)
        ys.append(y)
    y = torch.stack(ys, 1) if ys else x.new_zeros(x.shape[0], 0, *x.shape[2:])
    return y, state


def check_inputs(x, delta, A, B, C, D, z, state, reset, valid) -> tuple[int, int, int, int]:
    """`_check` and the masks (B, T): (batch, T, channels, N), or one ValueError."""
    batch, T, channels, N = _check(x, delta, A, B, C, D, z, state)
    check_masks(reset, valid, (batch, T), "(B, T)")
    return batch, T, channels, N


def _check(x, delta, A, B, C, D, z, state) -> tuple[int, int, int, int]:
    """(batch, T, channels, N), or one ValueError naming the first tensor of the wrong shape or with a bad value."""
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"x is {_shape(x)}, expected a tensor (B, T, D)")
    batch, T, channels = x.shape
    if not isinstance(A, Tensor) or A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f"A is {_shape(A)}, expected (D, N) with D = {channels} channels as x")
    N = A.shape[1]
    expected = {"delta": (delta, (batch, T, channels)), "B": (B, (batch, T, N)), "C": (C, (batch, T, N))}
    expected.update({"D": (D, (channels,)), "z": (z, (batch, T, channels))})
    if state is not None:
        if not isinstance(state, MambaState):
            raise ValueError(f"state is a {type(state).__name__}, expected a MambaState(h)")
        expected["state.h"] = (state.h, (batch, channels, N))
    for name, (tensor, shape) in expected.items():
        if tensor is None:
            continue
        if not isinstance(tensor, Tensor) or tuple(tensor.shape) != shape:
            raise ValueError(f"{name} is {_shape(tensor)}, expected {shape}")
        if tensor.dtype != x.dtype:
            raise ValueError(f"{name} is {tensor.dtype}, expected {x.dtype} as x")
    for name, tensor in (("x", x), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        check_finite(name, tensor)
    return batch, T, channels, N


def _shape(value) -> str:
    return f"{tuple(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"
