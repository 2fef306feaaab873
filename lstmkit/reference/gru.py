"""The GRU cell, in NumPy float64, unbatched, every intermediate kept.

PyTorch's convention (gate order r, z, n; the reset gate multiplies W_hn h + b_hn, after the product):

    r  = σ(W_ir x + b_ir + W_hr h + b_hr)          reset gate
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)          update gate
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))  candidate
    h' = (1 - z) ⊙ n + z ⊙ h                      new term + keep term

The GRU has no separate memory: z plays the LSTM's forget gate and 1 - z its input gate.
In the concatenated layout the r and z gates act on [h_{t-1}, x_t] like the seeds' LSTM matrices;
the candidate keeps its x and h parts apart, because r applies to the h part only.

Shapes: I input size, H hidden size, T time steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference.activations import dsigmoid_from_output, dtanh_from_output, sigmoid, tanh
from lstmkit.reference.checks import as_array, run_inputs, step_inputs
from lstmkit.reference.layout import checked_stacked, random_stacked
from lstmkit.reference.layout import from_torch as from_torch_layout
from lstmkit.reference.layout import to_torch as to_torch
from lstmkit.reference.rounding import Rounding, exact


class GRUState(NamedTuple):
    h: np.ndarray
    """Hidden state, (H,)."""


class GRUParams(NamedTuple):
    """PyTorch's stacked layout: rows are the gates r, z, n, each H rows."""

    W_ih: np.ndarray
    """(3H, I)"""
    W_hh: np.ndarray
    """(3H, H)"""
    b_ih: np.ndarray
    """(3H,)"""
    b_hh: np.ndarray
    """(3H,)"""

    @property
    def input_size(self) -> int:
        return self.W_ih.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.W_hh.shape[1]

    @classmethod
    def random(cls, input_size: int, hidden_size: int, seed: int = 0):
        """Draw every weight and bias from U(-1/√H, 1/√H), as `torch.nn.GRU` does."""
        return random_stacked(cls, 3, input_size, hidden_size, seed)

    def checked(self) -> GRUParams:
        """These parameters as float64 arrays, or ValueError naming the tensor whose shape is wrong."""
        return checked_stacked(self, gates=3)


class GRUConcatParams(NamedTuple):
    """Concatenated layout: W_r, W_z act on [h_{t-1}, x_t] (H, H + I); the candidate's parts apart."""

    W_r: np.ndarray
    b_r: np.ndarray
    W_z: np.ndarray
    b_z: np.ndarray
    W_in: np.ndarray
    """(H, I), acts on x_t."""
    b_in: np.ndarray
    W_hn: np.ndarray
    """(H, H), acts on h_{t-1}, before the reset gate multiplies it."""
    b_hn: np.ndarray
    """Inside the reset gate's product, so it cannot be merged with b_in."""


def from_concat(q: GRUConcatParams, input_size: int) -> GRUParams:
    """Concatenated layout -> stacked layout. The r and z biases go into b_ih."""
    H, I = np.shape(q.W_r)[0], input_size
    W_r = as_array("W_r", q.W_r, (H, H + I), "hidden, hidden + input")
    W_z = as_array("W_z", q.W_z, (H, H + I), "hidden, hidden + input")
    W_in = as_array("W_in", q.W_in, (H, I), "hidden, input")
    W_hn = as_array("W_hn", q.W_hn, (H, H), "hidden, hidden")
    b = {name: as_array(name, getattr(q, name), (H,), "hidden") for name in "b_r b_z b_in b_hn".split()}
    zeros = np.zeros(H)
    return GRUParams(
        W_ih=np.concatenate([W_r[:, H:], W_z[:, H:], W_in]),
        W_hh=np.concatenate([W_r[:, :H], W_z[:, :H], W_hn]),
        b_ih=np.concatenate([b["b_r"], b["b_z"], b["b_in"]]),
        b_hh=np.concatenate([zeros, zeros, b["b_hn"]]),
    )


def to_concat(p: GRUParams) -> GRUConcatParams:
    """Stacked layout -> concatenated layout (the r and z biases are summed; b_in and b_hn stay apart)."""
    W_ir, W_iz, W_in = np.split(p.W_ih, 3)
    W_hr, W_hz, W_hn = np.split(p.W_hh, 3)
    b_ir, b_iz, b_in = np.split(p.b_ih, 3)
    b_hr, b_hz, b_hn = np.split(p.b_hh, 3)
    return GRUConcatParams(
        W_r=np.concatenate([W_hr, W_ir], axis=1),
        b_r=b_ir + b_hr,
        W_z=np.concatenate([W_hz, W_iz], axis=1),
        b_z=b_iz + b_hz,
        W_in=W_in,
        b_in=b_in,
        W_hn=W_hn,
        b_hn=b_hn,
    )


def from_torch(state_dict, suffix: str = "_l0") -> GRUParams:
    """Read one layer (and direction) of a `torch.nn.GRU` state dict; missing biases are zero."""
    return from_torch_layout(GRUParams, 3, state_dict, suffix)


class GRUStep(NamedTuple):
    """Every intermediate of one step, in the order they are computed."""

    x: np.ndarray
    """x_t (I,)."""
    h_prev: np.ndarray
    """h_{t-1} (H,)."""
    hx: np.ndarray
    """[h_{t-1}, x_t] (H + I,)."""
    pre_r: np.ndarray
    pre_z: np.ndarray
    xn: np.ndarray
    """W_in x + b_in, the candidate's input part."""
    hn: np.ndarray
    """W_hn h + b_hn, the candidate's recurrent part (before the reset gate)."""
    r: np.ndarray
    """Reset gate σ(pre_r)."""
    z: np.ndarray
    """Update gate σ(pre_z)."""
    reset_term: np.ndarray
    """r ⊙ hn."""
    pre_n: np.ndarray
    """xn + reset_term."""
    n: np.ndarray
    """Candidate tanh(pre_n)."""
    new_term: np.ndarray
    """(1 - z) ⊙ n."""
    keep_term: np.ndarray
    """z ⊙ h_{t-1}."""
    h: np.ndarray
    """h_t = new_term + keep_term."""


def step(p: GRUParams, x: np.ndarray, state: GRUState, rounding: Rounding = exact) -> GRUStep:
    """One GRU step. `rounding` is applied to each computed intermediate (hand mode rounds to 0.1).

    The parameters, x (I,) and state.h (H,) are checked as `run` checks them (shapes, finite numbers)."""
    p = p.checked()
    x, state = step_inputs(x, state, rounding, GRUState, width=p.input_size, hidden_size=p.hidden_size)
    return _step(p, x, state, rounding)


def _step(p: GRUParams, x: np.ndarray, state: GRUState, rounding: Rounding) -> GRUStep:
    r_ = rounding
    ih = p.W_ih @ x + p.b_ih  # (3H,)
    hh = p.W_hh @ state.h + p.b_hh  # (3H,)
    ih_r, ih_z, ih_n = np.split(ih, 3)
    hh_r, hh_z, hh_n = np.split(hh, 3)
    pre_r, pre_z = r_(ih_r + hh_r), r_(ih_z + hh_z)
    xn, hn = r_(ih_n), r_(hh_n)
    r, z = r_(sigmoid(pre_r)), r_(sigmoid(pre_z))
    reset_term = r_(r * hn)
    pre_n = r_(xn + reset_term)
    n = r_(tanh(pre_n))
    new_term = r_((1.0 - z) * n)
    keep_term = r_(z * state.h)
    h = r_(new_term + keep_term)
    return GRUStep(
        x=x,
        h_prev=state.h,
        hx=np.concatenate([state.h, x]),
        pre_r=pre_r,
        pre_z=pre_z,
        xn=xn,
        hn=hn,
        r=r,
        z=z,
        reset_term=reset_term,
        pre_n=pre_n,
        n=n,
        new_term=new_term,
        keep_term=keep_term,
        h=h,
    )


def zero_state(hidden_size: int) -> GRUState:
    return GRUState(h=np.zeros(hidden_size))


def run(p: GRUParams, xs, state0: GRUState | None = None, rounding: Rounding = exact) -> list[GRUStep]:
    """Run the cell over xs (T, I) from state0 (zeros by default); returns the T step traces."""
    p = p.checked()
    xs, state = run_inputs(xs, state0, rounding, GRUState, width=p.input_size, hidden_size=p.hidden_size)
    steps = []
    for x in xs:
        s = _step(p, x, state, rounding)
        steps.append(s)
        state = GRUState(s.h)
    return steps


class GRUGrads(NamedTuple):
    params: GRUParams
    """∂L/∂(W_ih, W_hh, b_ih, b_hh)."""
    xs: np.ndarray
    """∂L/∂x_t for every step, (T, I)."""
    state0: GRUState
    """∂L/∂h_0."""


def backward(p: GRUParams, steps: list[GRUStep], dhs, dstate: GRUState | None = None) -> GRUGrads:
    """Backpropagation through time over the traces of `run` (exact mode).

    dn = dh ⊙ (1 - z)   dz = dh ⊙ (h_{t-1} - n)   dh_{t-1} = dh ⊙ z + W_hhᵀ d(hh)
    da_n = dn ⊙ tanh'   dr = da_n ⊙ hn   dhn = da_n ⊙ r
    d(ih) = [dr σ'_r, dz σ'_z, da_n]   d(hh) = [dr σ'_r, dz σ'_z, dhn]      (3H,) each
    dW_ih += d(ih) x_tᵀ   dW_hh += d(hh) h_{t-1}ᵀ   dx_t = W_ihᵀ d(ih)
    """
    H = p.hidden_size
    dhs = as_array("dhs", dhs, (len(steps), H), "time steps, hidden_size")
    dW_ih, dW_hh = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh)
    db_ih, db_hh = np.zeros(3 * H), np.zeros(3 * H)
    dxs = np.zeros((len(steps), p.input_size))
    dh_next = np.zeros(H) if dstate is None else np.array(dstate.h, dtype=np.float64)
    for t in reversed(range(len(steps))):
        s = steps[t]
        dh = dhs[t] + dh_next
        dn = dh * (1.0 - s.z)
        dz = dh * (s.h_prev - s.n)
        dpre_n = dn * dtanh_from_output(s.n)
        dr = dpre_n * s.hn
        dhn = dpre_n * s.r
        dpre_r = dr * dsigmoid_from_output(s.r)
        dpre_z = dz * dsigmoid_from_output(s.z)
        d_ih = np.concatenate([dpre_r, dpre_z, dpre_n])
        d_hh = np.concatenate([dpre_r, dpre_z, dhn])
        dW_ih += np.outer(d_ih, s.x)
        dW_hh += np.outer(d_hh, s.h_prev)
        db_ih += d_ih
        db_hh += d_hh
        dxs[t] = p.W_ih.T @ d_ih
        dh_next = dh * s.z + p.W_hh.T @ d_hh
    return GRUGrads(GRUParams(dW_ih, dW_hh, db_ih, db_hh), dxs, GRUState(dh_next))
