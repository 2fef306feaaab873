"""The mLSTM state and the input checks shared by the three forms.

Shapes: B batch, NH heads, T time, DK key/query size, DV value size.

    q, k  (B, NH, T, DK)   v (B, NH, T, DV)   i, f (B, NH, T) gate pre-activations
    mLSTMState: C (B, NH, DK, DV), n (B, NH, DK), m (B, NH)

The default state is zeros (C = 0, n = 0, m = 0), the xLSTM authors' recurrent and chunkwise
default; m = -inf gives "no history at all", the semantics of their parallel kernel.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class mLSTMState(NamedTuple):
    C: Tensor
    """Matrix memory (B, NH, DK, DV)."""
    n: Tensor
    """Normalizer (B, NH, DK)."""
    m: Tensor
    """Stabilizer (B, NH)."""


def zero_state(q: Tensor, v: Tensor) -> mLSTMState:
    B, NH, _, DK = q.shape
    DV = v.shape[-1]
    return mLSTMState(q.new_zeros(B, NH, DK, DV), q.new_zeros(B, NH, DK), q.new_zeros(B, NH))


def check_inputs(q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState | None) -> mLSTMState:
    """Raise ValueError naming the tensor, the shape received and the shape expected; return the state."""
    if q.dim() != 4:
        raise ValueError(f"q has shape {tuple(q.shape)}, expected (B, NH, T, DK)")
    B, NH, T, DK = q.shape
    expected = {"k": (k, (B, NH, T, DK)), "i": (i, (B, NH, T)), "f": (f, (B, NH, T))}
    if v.dim() != 4 or tuple(v.shape[:3]) != (B, NH, T):
        raise ValueError(f"v has shape {tuple(v.shape)}, expected ({B}, {NH}, {T}, DV) to match q")
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {shape} to match q {tuple(q.shape)}")
    for name, tensor in (("q", q), ("k", k), ("v", v), ("i", i), ("f", f)):
        if tensor.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {tensor.dtype}, expected {q.dtype} like q")
        if torch.isnan(tensor).any():
            raise ValueError(f"{name} contains NaN")
    if state is None:
        return zero_state(q, v)
    DV = v.shape[-1]
    for name, tensor, shape in (("C", state.C, (B, NH, DK, DV)), ("n", state.n, (B, NH, DK)), ("m", state.m, (B, NH))):
        if tuple(tensor.shape) != shape:
            raise ValueError(f"state.{name} has shape {tuple(tensor.shape)}, expected {shape}")
        if tensor.dtype != q.dtype:
            raise ValueError(f"state.{name} has dtype {tensor.dtype}, expected {q.dtype} like q")
        if torch.isnan(tensor).any():
            raise ValueError(f"state.{name} contains NaN")
    return mLSTMState(*state)
