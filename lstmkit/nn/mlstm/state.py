"""The mLSTM state and the input checks shared by the three forms.

Shapes: B batch, NH heads, T time, DK key/query size, DV value size.

    q, k  (B, NH, T, DK)   v (B, NH, T, DV)   i, f (B, NH, T) gate pre-activations
    mLSTMState: C (B, NH, DK, DV), n (B, NH, DK), m (B, NH)
    reset, valid (B, T) bool masks, optional, broadcast over heads

Two starting states, each built by a classmethod from sizes, `mLSTMState.zeros(B, NH, DK, DV, like=t)`, or
from inputs q, v by a function. `zero_state(q, v)` (C = 0, n = 0, m = 0) is the forms' default, the xLSTM
authors' recurrent and chunkwise default. `empty_state(q, v)` (C = 0, n = 0, m = -inf) is "no history at all", the
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

import math
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.nn.finite import check_finite, check_finite_or_neg_inf


class mLSTMState(NamedTuple):
    C: Tensor
    """Matrix memory (B, NH, DK, DV)."""
    n: Tensor
    """Normalizer (B, NH, DK)."""
    m: Tensor
    """Stabilizer (B, NH)."""

    @classmethod
    def zeros(cls, batch: int, heads: int, dk: int, dv: int, *, like: Tensor) -> mLSTMState:
        """C = 0, n = 0, m = 0 in `like`'s dtype and device: the default starting state of the three forms."""
        return cls(like.new_zeros(batch, heads, dk, dv), like.new_zeros(batch, heads, dk), like.new_zeros(batch, heads))

    @classmethod
    def empty(cls, batch: int, heads: int, dk: int, dv: int, *, like: Tensor) -> mLSTMState:
        """C = 0, n = 0, m = -inf in `like`'s dtype and device: no history at all, the state a reset starts from."""
        C, n, m = cls.zeros(batch, heads, dk, dv, like=like)
        return cls(C, n, torch.full_like(m, -torch.inf))


def zero_state(q: Tensor, v: Tensor) -> mLSTMState:
    """`mLSTMState.zeros` for inputs q (B, NH, T, DK), v (B, NH, T, DV)."""
    B, NH, _, DK = q.shape
    return mLSTMState.zeros(B, NH, DK, v.shape[-1], like=q)


def empty_state(q: Tensor, v: Tensor) -> mLSTMState:
    """`mLSTMState.empty` for inputs q (B, NH, T, DK), v (B, NH, T, DV)."""
    B, NH, _, DK = q.shape
    return mLSTMState.empty(B, NH, DK, v.shape[-1], like=q)


def check_inputs(q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState | None) -> mLSTMState:
    """Raise ValueError naming the tensor, the shape received and the shape expected, or the first
    non-finite value (`check_values`); return the state."""
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
    state = zero_state(q, v) if state is None else mLSTMState(*state)
    DV = v.shape[-1]
    for name, tensor, shape in (("C", state.C, (B, NH, DK, DV)), ("n", state.n, (B, NH, DK)), ("m", state.m, (B, NH))):
        if tuple(tensor.shape) != shape:
            raise ValueError(f"state.{name} has shape {tuple(tensor.shape)}, expected {shape}")
        if tensor.dtype != q.dtype:
            raise ValueError(f"state.{name} has dtype {tensor.dtype}, expected {q.dtype} like q")
    check_values(q, k, v, i, f, state)
    return state


def check_values(q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState) -> None:
    """Every input finite, except f̃ = -inf ("forget everything": the same step as a reset there) and m = -inf
    (an empty memory); ĩ = ±inf is refused (+inf has no stabilized form, -inf is what `valid` is for)."""
    for name, tensor in (("q", q), ("k", k), ("v", v), ("i", i), ("state.C", state.C), ("state.n", state.n)):
        check_finite(name, tensor)
    check_finite_or_neg_inf("f", f)
    check_finite_or_neg_inf("state.m", state.m)


def m_floor(dtype: torch.dtype) -> float:
    """The least m at which e^{-m} is computed: 1 - log(largest float), -87.7 in float32, -708.8 in float64."""
    return 1.0 - math.log(torch.finfo(dtype).max)


def lower_bound(m: Tensor) -> Tensor:
    """The normaliser's lower bound e^{-m}, with m clamped to m ≥ `m_floor` so that it never overflows.

    e^{-m} overflows once m < -log(largest float) (-88.7 in float32): the forward stays finite (h = num/inf = 0)
    but every gradient becomes NaN. Below the floor the bound is e^{-floor} ≥ 10^38 (float32), so h = q̂ᵀC /
    (e^{-floor} + eps) differs from the unclamped h, itself below 10^-38 · |q̂ᵀC|, by less than that; the
    clamp passes no gradient to m there (the exact one is as small)."""
    return torch.exp(-m.clamp(min=m_floor(m.dtype)))


def forget_all_as_reset(f: Tensor, reset: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """f̃ = -inf (log σ = -inf, "forget everything") as a reset of that head at that step, for the parallel and
    chunkwise forms: in their cumulative sums F_t - F_s it would be -inf - (-inf) = NaN. The recurrent form's
    step is the same (m_t = max(-inf, ĩ_t) = ĩ_t, f = 0, exactly a reset's). Returns f̃ with those entries 0
    (a reset ignores f̃_t; their gradient is 0, as in the recurrent form) and reset | (f̃ = -inf), now per head
    (B, NH, T); reset (B, 1, T) or None."""
    forget_all = torch.isneginf(f)
    if not forget_all.any():
        return f, reset
    f = f.masked_fill(forget_all, 0.0)
    return f, forget_all if reset is None else reset | forget_all


LOW_PRECISION = (torch.float16, torch.bfloat16)


def in_float32(body, q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState):
    """body(q, k, v, i, f, state) -> (h, state), run in float32 for float16 and bfloat16 inputs, results cast back.

    Half precision cannot hold the stabilized exponents: with gates of ±1e4, F_t - F_s + ĩ_s - m_t is a
    difference of numbers whose float16 spacing is 8 (bfloat16: 64), and e^{-m} overflows float16 at m < -11.
    So the three forms compute in float32 (on CPU half-precision products are no faster), and give the same
    results in every dtype up to the final rounding. Other dtypes run as they are.

    The returned state is rounded by `round_state`, which keeps the memory C̄ = e^m C as it was."""
    if q.dtype not in LOW_PRECISION:
        return body(q, k, v, i, f, state)
    h, final = body(*(t.float() for t in (q, k, v, i, f)), mLSTMState(*(s.float() for s in state)))
    return h.to(q.dtype), round_state(final, q.dtype)


def round_state(state: mLSTMState, dtype: torch.dtype) -> mLSTMState:
    """A float32 state in `dtype`, keeping the memory C̄ = e^m C, n̄ = e^m n: C and n absorb the rounding of m,
    C' = e^{m - m'} C with m' = m rounded, so that only their own rounding is lost (rounding m alone would
    reweight the memory against later inputs by up to e^{spacing/2}: e^4 at |m| ~ 1e4 in float16, e^32 in
    bfloat16). The factor scales C and its gradient by as much; m' passes m's gradient straight through, as a
    cast does, so the factor is a constant."""
    finite = torch.isfinite(state.m)  # m = -inf: an empty memory, nothing to rescale
    m = torch.where(finite, state.m, 0.0)
    m_rounded = m.detach().to(dtype).float()
    shift = torch.exp(m.detach() - m_rounded)  # e^{±spacing/2}
    C = (state.C * shift[..., None, None]).to(dtype)
    n = (state.n * shift[..., None]).to(dtype)
    return mLSTMState(C, n, torch.where(finite, m_rounded + (m - m.detach()), -math.inf).to(dtype))


def no_steps(q: Tensor, v: Tensor, state: mLSTMState) -> tuple[Tensor, mLSTMState]:
    """T = 0: no output, h (B, NH, 0, DV), and the state unchanged."""
    B, NH = q.shape[:2]
    return q.new_zeros(B, NH, 0, v.shape[-1]), state
