"""The vanilla (Elman) RNN cell with tanh, in NumPy float64, unbatched, every intermediate kept.

PyTorch's convention:

    a  = W_ih x + b_ih + W_hh h + b_hh        (H,)  pre-activation
    h' = tanh(a)

In the seeds' concatenated layout the same cell is h' = tanh(W [h_{t-1}, x_t] + b).
Its gradient through time is multiplied by W_hhᵀ diag(1 - h²) at every step, which is why it
vanishes (or explodes) over long lags; `lstmkit gradients` shows it.

Shapes: I input size, H hidden size, T time steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference.activations import dtanh_from_output, tanh
from lstmkit.reference.checks import as_array, run_inputs, step_inputs
from lstmkit.reference.layout import checked_stacked, random_stacked
from lstmkit.reference.layout import from_torch as from_torch_layout
from lstmkit.reference.layout import to_torch as to_torch
from lstmkit.reference.rounding import Rounding, exact


class RNNState(NamedTuple):
    h: np.ndarray
    """Hidden state, (H,)."""


class RNNParams(NamedTuple):
    """PyTorch's layout."""

    W_ih: np.ndarray
    """(H, I)"""
    W_hh: np.ndarray
    """(H, H)"""
    b_ih: np.ndarray
    """(H,)"""
    b_hh: np.ndarray
    """(H,)"""

    @property
    def input_size(self) -> int:
        return self.W_ih.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.W_hh.shape[1]

    @classmethod
    def random(cls, input_size: int, hidden_size: int, seed: int = 0):
        """Draw every weight and bias from U(-1/√H, 1/√H), as `torch.nn.RNN` does."""
        return random_stacked(cls, 1, input_size, hidden_size, seed)

    def checked(self) -> RNNParams:
        """These parameters as float64 arrays, or ValueError naming the tensor whose shape is wrong."""
        return checked_stacked(self, gates=1)


class RNNConcatParams(NamedTuple):
    """The seeds' layout: one matrix acting on [h_{t-1}, x_t], (H, H + I), and one bias (H,)."""

    W: np.ndarray
    b: np.ndarray


def from_concat(q: RNNConcatParams, input_size: int) -> RNNParams:
    """Seeds' layout -> PyTorch's layout. The whole bias goes into b_ih; b_hh is zero."""
    H = np.shape(q.W)[0]
    W = as_array("W", q.W, (H, H + input_size), "hidden, hidden + input")
    b = as_array("b", q.b, (H,), "hidden")
    return RNNParams(W_ih=W[:, H:], W_hh=W[:, :H], b_ih=b, b_hh=np.zeros(H))


def to_concat(p: RNNParams) -> RNNConcatParams:
    """PyTorch's layout -> seeds' layout (the two biases are summed)."""
    return RNNConcatParams(W=np.concatenate([p.W_hh, p.W_ih], axis=1), b=p.b_ih + p.b_hh)


def from_torch(state_dict, suffix: str = "_l0") -> RNNParams:
    """Read one layer (and direction) of a `torch.nn.RNN` state dict; missing biases are zero."""
    return from_torch_layout(RNNParams, 1, state_dict, suffix)


class RNNStep(NamedTuple):
    """Every intermediate of one step."""

    x: np.ndarray
    """x_t (I,)."""
    h_prev: np.ndarray
    """h_{t-1} (H,)."""
    hx: np.ndarray
    """[h_{t-1}, x_t] (H + I,)."""
    pre: np.ndarray
    """a = W_ih x + b_ih + W_hh h + b_hh (H,)."""
    h: np.ndarray
    """h_t = tanh(a) (H,)."""


def step(p: RNNParams, x: np.ndarray, state: RNNState, rounding: Rounding = exact) -> RNNStep:
    """One RNN step. `rounding` is applied to each computed intermediate (hand mode rounds to 0.1).

    The parameters, x (I,) and state.h (H,) are checked as `run` checks them (shapes, finite numbers)."""
    p = p.checked()
    x, state = step_inputs(x, state, rounding, RNNState, width=p.input_size, hidden_size=p.hidden_size)
    return _step(p, x, state, rounding)


def _step(p: RNNParams, x: np.ndarray, state: RNNState, rounding: Rounding) -> RNNStep:
    r = rounding
    pre = r(p.W_ih @ x + p.b_ih + p.W_hh @ state.h + p.b_hh)  # (H,)
    h = r(tanh(pre))
    return RNNStep(x=x, h_prev=state.h, hx=np.concatenate([state.h, x]), pre=pre, h=h)


def zero_state(hidden_size: int) -> RNNState:
    return RNNState(h=np.zeros(hidden_size))


def run(p: RNNParams, xs, state0: RNNState | None = None, rounding: Rounding = exact) -> list[RNNStep]:
    """Run the cell over xs (T, I) from state0 (zeros by default); returns the T step traces."""
    p = p.checked()
    xs, state = run_inputs(xs, state0, rounding, RNNState, width=p.input_size, hidden_size=p.hidden_size)
    steps = []
    for x in xs:
        s = _step(p, x, state, rounding)
        steps.append(s)
        state = RNNState(s.h)
    return steps


class RNNGrads(NamedTuple):
    params: RNNParams
    """∂L/∂(W_ih, W_hh, b_ih, b_hh)."""
    xs: np.ndarray
    """∂L/∂x_t for every step, (T, I)."""
    state0: RNNState
    """∂L/∂h_0."""


def backward(p: RNNParams, steps: list[RNNStep], dhs, dstate: RNNState | None = None) -> RNNGrads:
    """Backpropagation through time over the traces of `run` (exact mode).

    dh = dhs[t] + W_hhᵀ da_{t+1}      da = dh ⊙ (1 - h²)
    dW_ih += da x_tᵀ   dW_hh += da h_{t-1}ᵀ   db += da   dx_t = W_ihᵀ da
    """
    H = p.hidden_size
    dhs = as_array("dhs", dhs, (len(steps), H), "time steps, hidden_size")
    dW_ih, dW_hh, db = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh), np.zeros(H)
    dxs = np.zeros((len(steps), p.input_size))
    dh_next = np.zeros(H) if dstate is None else np.array(dstate.h, dtype=np.float64)
    for t in reversed(range(len(steps))):
        s = steps[t]
        da = (dhs[t] + dh_next) * dtanh_from_output(s.h)
        dW_ih += np.outer(da, s.x)
        dW_hh += np.outer(da, s.h_prev)
        db += da
        dxs[t] = p.W_ih.T @ da
        dh_next = p.W_hh.T @ da
    return RNNGrads(RNNParams(dW_ih, dW_hh, db, db.copy()), dxs, RNNState(dh_next))
