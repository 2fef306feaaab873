"""The LSTM cell, in NumPy float64, unbatched, every intermediate kept.

PyTorch's convention (gate order i, f, g, o; g is the seeds' candidate memory C̃):

    z = W_ih x + b_ih + W_hh h + b_hh                         (4H,)  pre-activations
    i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
    c' = f ⊙ c + i ⊙ g                                        forget term + input term
    h' = o ⊙ tanh(c')

The seeds write the same cell with four matrices acting on the concatenation [h_{t-1}, x_t]:
f = σ(W_f [h, x] + b_f), i = σ(W_i [h, x] + b_i), C̃ = tanh(W_c [h, x] + b_c), o = σ(W_o [h, x] + b_o).
`to_concat` / `from_concat` convert between the two layouts; `to_torch` / `from_torch` name the
stacked layout the way `torch.nn.LSTM` does (`weight_ih_l0`, ...).

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


class LSTMState(NamedTuple):
    h: np.ndarray
    """Hidden state, (H,)."""
    c: np.ndarray
    """Memory (cell state), (H,)."""


class LSTMParams(NamedTuple):
    """PyTorch's stacked layout: rows are the gates i, f, g, o, each H rows."""

    W_ih: np.ndarray
    """(4H, I)"""
    W_hh: np.ndarray
    """(4H, H)"""
    b_ih: np.ndarray
    """(4H,)"""
    b_hh: np.ndarray
    """(4H,)"""

    @property
    def input_size(self) -> int:
        return self.W_ih.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.W_hh.shape[1]

    @classmethod
    def random(cls, input_size: int, hidden_size: int, seed: int = 0, forget_bias: float | None = None):
        """Draw every weight and bias from U(-1/√H, 1/√H), as `torch.nn.LSTM` does.

        `forget_bias`, when given, sets the forget gate's total bias (b_ih + b_hh) to that value.
        """
        p = random_stacked(cls, 4, input_size, hidden_size, seed)
        if forget_bias is not None:
            H = hidden_size
            p.b_ih[H : 2 * H] = forget_bias  # rows H..2H are the forget gate (order i, f, g, o)
            p.b_hh[H : 2 * H] = 0.0
        return p

    def checked(self) -> LSTMParams:
        """These parameters as float64 arrays, or ValueError naming the tensor whose shape is wrong."""
        return checked_stacked(self, gates=4)


class LSTMConcatParams(NamedTuple):
    """The seeds' layout: four matrices acting on [h_{t-1}, x_t], each (H, H + I), and four biases (H,)."""

    W_f: np.ndarray
    W_i: np.ndarray
    W_c: np.ndarray
    W_o: np.ndarray
    b_f: np.ndarray
    b_i: np.ndarray
    b_c: np.ndarray
    b_o: np.ndarray


def from_concat(q: LSTMConcatParams, input_size: int) -> LSTMParams:
    """Seeds' layout -> stacked layout. The whole bias goes into b_ih; b_hh is zero."""
    H = np.shape(q.W_f)[0]
    shape = (H, H + input_size)
    W = {name: as_array(name, getattr(q, name), shape, "hidden, hidden + input") for name in "W_f W_i W_c W_o".split()}
    b = {name: as_array(name, getattr(q, name), (H,), "hidden") for name in "b_f b_i b_c b_o".split()}
    order = ("i", "f", "c", "o")  # PyTorch's gate order; c is the candidate g
    W_all = np.concatenate([W[f"W_{g}"] for g in order])  # (4H, H + I): columns are [h | x]
    return LSTMParams(
        W_ih=W_all[:, H:],
        W_hh=W_all[:, :H],
        b_ih=np.concatenate([b[f"b_{g}"] for g in order]),
        b_hh=np.zeros(4 * H),
    )


def to_concat(p: LSTMParams) -> LSTMConcatParams:
    """Stacked layout -> seeds' layout. The two biases are summed (the cell only ever sees their sum)."""
    W_i, W_f, W_c, W_o = np.split(np.concatenate([p.W_hh, p.W_ih], axis=1), 4)
    b_i, b_f, b_c, b_o = np.split(p.b_ih + p.b_hh, 4)
    return LSTMConcatParams(W_f=W_f, W_i=W_i, W_c=W_c, W_o=W_o, b_f=b_f, b_i=b_i, b_c=b_c, b_o=b_o)


def from_torch(state_dict, suffix: str = "_l0") -> LSTMParams:
    """Read one layer (and direction) of a `torch.nn.LSTM` state dict; missing biases are zero."""
    return from_torch_layout(LSTMParams, 4, state_dict, suffix)


class LSTMStep(NamedTuple):
    """Every intermediate of one step, in the order they are computed."""

    x: np.ndarray
    """x_t, the input (I,)."""
    h_prev: np.ndarray
    """h_{t-1} (H,)."""
    c_prev: np.ndarray
    """c_{t-1}, the seeds' C_{t-1} (H,)."""
    hx: np.ndarray
    """[h_{t-1}, x_t], the concatenation the seeds' four matrices act on (H + I,)."""
    pre_i: np.ndarray
    pre_f: np.ndarray
    pre_g: np.ndarray
    pre_o: np.ndarray
    i: np.ndarray
    """Input gate σ(pre_i)."""
    f: np.ndarray
    """Forget gate σ(pre_f)."""
    g: np.ndarray
    """Candidate memory tanh(pre_g), the seeds' C̃_t."""
    o: np.ndarray
    """Output gate σ(pre_o)."""
    forget_term: np.ndarray
    """f ⊙ c_{t-1}: what is kept of the old memory."""
    input_term: np.ndarray
    """i ⊙ g: what is written into memory."""
    c: np.ndarray
    """New memory c_t = forget_term + input_term."""
    tanh_c: np.ndarray
    """tanh(c_t), the seeds' candidate output."""
    h: np.ndarray
    """New hidden state h_t = o ⊙ tanh(c_t)."""


def step(p: LSTMParams, x: np.ndarray, state: LSTMState, rounding: Rounding = exact) -> LSTMStep:
    """One LSTM step. `rounding` is applied to each computed intermediate (hand mode rounds to 0.1).

    The parameters, x (I,) and state.h, state.c (H,) are checked as `run` checks them (shapes, finite numbers)."""
    p = p.checked()
    x, state = step_inputs(x, state, rounding, LSTMState, width=p.input_size, hidden_size=p.hidden_size)
    return _step(p, x, state, rounding)


def _step(p: LSTMParams, x: np.ndarray, state: LSTMState, rounding: Rounding) -> LSTMStep:
    r = rounding
    z = p.W_ih @ x + p.b_ih + p.W_hh @ state.h + p.b_hh  # (4H,)
    pre_i, pre_f, pre_g, pre_o = (r(a) for a in np.split(z, 4))
    i, f, g, o = r(sigmoid(pre_i)), r(sigmoid(pre_f)), r(tanh(pre_g)), r(sigmoid(pre_o))
    forget_term = r(f * state.c)
    input_term = r(i * g)
    c = r(forget_term + input_term)
    tanh_c = r(tanh(c))
    h = r(o * tanh_c)
    return LSTMStep(
        x=x,
        h_prev=state.h,
        c_prev=state.c,
        hx=np.concatenate([state.h, x]),
        pre_i=pre_i,
        pre_f=pre_f,
        pre_g=pre_g,
        pre_o=pre_o,
        i=i,
        f=f,
        g=g,
        o=o,
        forget_term=forget_term,
        input_term=input_term,
        c=c,
        tanh_c=tanh_c,
        h=h,
    )


def zero_state(hidden_size: int) -> LSTMState:
    return LSTMState(h=np.zeros(hidden_size), c=np.zeros(hidden_size))


def run(p: LSTMParams, xs, state0: LSTMState | None = None, rounding: Rounding = exact) -> list[LSTMStep]:
    """Run the cell over xs (T, I) from state0 (zeros by default); returns the T step traces."""
    p = p.checked()
    xs, state = run_inputs(xs, state0, rounding, LSTMState, width=p.input_size, hidden_size=p.hidden_size)
    steps = []
    for x in xs:
        s = _step(p, x, state, rounding)
        steps.append(s)
        state = LSTMState(s.h, s.c)
    return steps


class LSTMGrads(NamedTuple):
    params: LSTMParams
    """∂L/∂(W_ih, W_hh, b_ih, b_hh)."""
    xs: np.ndarray
    """∂L/∂x_t for every step, (T, I)."""
    state0: LSTMState
    """∂L/∂(h_0, c_0)."""


def backward(p: LSTMParams, steps: list[LSTMStep], dhs, dstate: LSTMState | None = None) -> LSTMGrads:
    """Backpropagation through time over the traces of `run` (exact mode).

    dhs (T, H) is ∂L/∂h_t for each output; `dstate` is ∂L/∂(h_T, c_T) for the final state, if used.
    Walking back, each step receives dh = dhs[t] + (gradient from step t+1) and dc from step t+1:

        do = dh ⊙ tanh(c)            dc += dh ⊙ o ⊙ (1 - tanh²(c))
        df = dc ⊙ c_{t-1}   di = dc ⊙ g   dg = dc ⊙ i          dc_{t-1} = dc ⊙ f
        dz = [di σ'_i, df σ'_f, dg tanh'_g, do σ'_o]            (4H,)
        dW_ih += dz x_tᵀ   dW_hh += dz h_{t-1}ᵀ   db += dz   dx_t = W_ihᵀ dz   dh_{t-1} = W_hhᵀ dz
    """
    H = p.hidden_size
    dhs = as_array("dhs", dhs, (len(steps), H), "time steps, hidden_size")
    dW_ih, dW_hh, db = np.zeros_like(p.W_ih), np.zeros_like(p.W_hh), np.zeros(4 * H)
    dxs = np.zeros((len(steps), p.input_size))
    dh_next = np.zeros(H) if dstate is None else np.array(dstate.h, dtype=np.float64)
    dc_next = np.zeros(H) if dstate is None else np.array(dstate.c, dtype=np.float64)
    for t in reversed(range(len(steps))):
        s = steps[t]
        dh = dhs[t] + dh_next
        do = dh * s.tanh_c
        dc = dc_next + dh * s.o * dtanh_from_output(s.tanh_c)
        df, di, dg = dc * s.c_prev, dc * s.g, dc * s.i
        dz = np.concatenate(
            [
                di * dsigmoid_from_output(s.i),
                df * dsigmoid_from_output(s.f),
                dg * dtanh_from_output(s.g),
                do * dsigmoid_from_output(s.o),
            ]
        )
        dW_ih += np.outer(dz, s.x)
        dW_hh += np.outer(dz, s.h_prev)
        db += dz
        dxs[t] = p.W_ih.T @ dz
        dh_next = p.W_hh.T @ dz
        dc_next = dc * s.f
    return LSTMGrads(LSTMParams(dW_ih, dW_hh, db, db.copy()), dxs, LSTMState(dh_next, dc_next))
