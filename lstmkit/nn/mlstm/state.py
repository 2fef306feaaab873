"""The mLSTM state and the input checks shared by the three forms.

Shapes: B batch, NH heads, T time, DK key/query size, DV value size.

    q, k  (B, NH, T, DK)   v (B, NH, T, DV)   i, f (B, NH, T) gate pre-activations
    mLSTMState: C (B, NH, DK, DV), n (B, NH, DK), m (B, NH)
    reset, valid (B, T) bool masks, optional, broadcast over heads

Two starting states. `zero_state` (C = 0, n = 0, m = 0) is the forms' default, the xLSTM authors'
recurrent and chunkwise default. `empty_state` (C = 0, n = 0, m = -inf) is "no history at all", the
semantics of their parallel kernel. Both hold no memory; they differ only in the stabilizer. With the
unstabilized C̄ = e^m C, n̄ = e^m n (the same for both), h = q̂ᵀC̄ / (max(|q̂ᵀn̄|, 1) + eps·e^m), and m_0 = 0
keeps m_t ≥ Σ_{r≤t} log σ(f̃_r), so the outputs differ only in the eps term (measured: relative differences up to 1e-6).

The masks, for packed documents and padding:

* reset[b, t] = True: token t starts a new document. The state entering step t is the empty state
  (the forget gate closes, f_t = 0), so outputs from t on equal running the row from t alone from
  `empty_state`.
* valid[b, t] = False: token t is padding. The step leaves the state untouched (ĩ_t = -inf and
  log σ(f̃_t) = 0, i.e. f̃_t = +inf). Its output is unspecified but finite. Padding wins over a reset
  at the same position: that reset is ignored.
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
    """C = 0, n = 0, m = 0: the default starting state of the three forms."""
    B, NH, _, DK = q.shape
    DV = v.shape[-1]
    return mLSTMState(q.new_zeros(B, NH, DK, DV), q.new_zeros(B, NH, DK), q.new_zeros(B, NH))


def empty_state(q: Tensor, v: Tensor) -> mLSTMState:
    """C = 0, n = 0, m = -inf: no history at all, the state a reset starts from."""
    C, n, m = zero_state(q, v)
    return mLSTMState(C, n, torch.full_like(m, -torch.inf))


def check_mask(name: str, mask: Tensor | None, shape: tuple[int, ...], dims: str) -> None:
    """Raise ValueError unless `mask` is None or a bool tensor of `shape` (written `dims`, e.g. "(B, T)")."""
    if mask is None:
        return
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} is a {type(mask).__name__}, expected a bool tensor of shape {dims} = {shape}")
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} has dtype {mask.dtype}, expected torch.bool")
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {dims} = {shape}")


def check_masks(q: Tensor, reset: Tensor | None, valid: Tensor | None) -> None:
    """Check the (B, T) masks `reset` and `valid` against q (B, NH, T, DK)."""
    B, _, T, _ = q.shape
    check_mask("reset", reset, (B, T), "(B, T)")
    check_mask("valid", valid, (B, T), "(B, T)")


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
        if contains_nan(tensor):
            raise ValueError(f"{name} contains NaN")
    if state is None:
        return zero_state(q, v)
    DV = v.shape[-1]
    for name, tensor, shape in (("C", state.C, (B, NH, DK, DV)), ("n", state.n, (B, NH, DK)), ("m", state.m, (B, NH))):
        if tuple(tensor.shape) != shape:
            raise ValueError(f"state.{name} has shape {tuple(tensor.shape)}, expected {shape}")
        if tensor.dtype != q.dtype:
            raise ValueError(f"state.{name} has dtype {tensor.dtype}, expected {q.dtype} like q")
        if contains_nan(tensor):
            raise ValueError(f"state.{name} contains NaN")
    return mLSTMState(*state)


def contains_nan(x: Tensor) -> bool:
    """Whether x holds a NaN. A NaN makes the sum NaN, so one cheap reduction clears almost every call; a NaN
    sum can also come from +inf and -inf, hence the exact (and slower) check behind it."""
    return bool(torch.isnan(x.sum())) and bool(torch.isnan(x).any())
