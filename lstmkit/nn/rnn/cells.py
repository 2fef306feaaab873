"""One time step of each recurrent cell, in PyTorch, batched: the readable path's arithmetic, and `Cell`.

The input projection `xp = project(x)` is computed for all time steps at once before the loop (one
big matrix product); each step adds the recurrent part and applies the gates. Equations (PyTorch's):

    LSTM  z = xp_t + W_hh h + b_hh;  i, f, g, o = σ(z_i), σ(z_f), tanh(z_g), σ(z_o)
          c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')  (then h' = W_hr h' with a projection)
    GRU   r, z = σ(xp_r + hp_r), σ(xp_z + hp_z)   with hp = W_hh h + b_hh
          n = tanh(xp_n + r ⊙ hp_n);  h' = (1 - z) ⊙ n + z ⊙ h
    RNN   a = xp_t + W_hh h + b_hh;  h' = tanh(a) or relu(a)

Shapes: B batch, H hidden, P projection (P = H without one), G = gates·H.

Two economies keep the Python loop's per-step overhead low (each PyTorch call costs microseconds):
the LSTM and RNN fold b_hh into xp before the loop, so the recurrent product is one `addmm`; the
LSTM applies σ to all four gate blocks in one call and uses tanh's result for g only (the σ of the g
block is computed and dropped).

`Cell(project, step, State)` is what the readable path runs for one layer and direction; each layer
builds its own from its parameters (`lstm.lstm_cell`, `gru.gru_cell`, `rnn.rnn_cell`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class Cell(NamedTuple):
    """One layer and direction of a recurrent layer (or a single-step cell), as the readable path runs it:

        xp = project(x)                      every step's input part at once: (T, B, G), or (B, G) for a cell
        state, record = step(xp_t, state)    one step: the new State and what it computed (LSTMTrace, ...)

    `trace_layers.run_stack` runs one per layer and direction through `time_loop.run_direction`;
    `trace_cell.trace_cell` runs one step of it."""

    project: Callable[[Tensor], Tensor]
    """x -> xp, the input projection with its biases (`project_folding_b_hh` or `project`)."""
    step: Callable[[Tensor, NamedTuple], tuple[NamedTuple, NamedTuple]]
    """(xp_t, state) -> (state, record): `lstm_step`, `gru_step` or `rnn_step` with the recurrent weights bound."""
    State: type
    """The state's NamedTuple: `LSTMState` (h, c) or `HiddenState` (h)."""


def project_folding_b_hh(x: Tensor, W_ih: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor:
    """W_ih x + b_ih + b_hh for every step at once (LSTM, RNN: b_hh sits outside any gate)."""
    xp = F.linear(x, W_ih, b_ih)
    return xp if b_hh is None else xp + b_hh


def project(x: Tensor, W_ih: Tensor, b_ih: Tensor | None) -> Tensor:
    """W_ih x + b_ih for every step at once (GRU: b_hn sits inside the reset gate's product)."""
    return F.linear(x, W_ih, b_ih)


class LSTMState(NamedTuple):
    h: Tensor
    """(B, P)"""
    c: Tensor
    """(B, H)"""


class LSTMTrace(NamedTuple):
    """Every gate and state of an LSTM, in PyTorch's gate order i, f, g, o.

    For one step each field is (B, ·); a layer's `trace()` stacks them to (L·D, T, B, ·), index
    layer·D + direction as in h_n. g is the candidate (the seeds' C̃); h is the output (P wide with a
    projection, otherwise H)."""

    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor
    c: Tensor
    h: Tensor


def lstm_step(xp_t: Tensor, state: LSTMState, W_hh: Tensor, W_hr: Tensor | None):
    """xp_t = W_ih x_t + b_ih + b_hh (B, 4H), see `project_folding_b_hh`."""
    z = torch.addmm(xp_t, state.h, W_hh.t())  # (B, 4H)
    H = state.c.shape[-1]
    i, f, _, o = torch.sigmoid(z).chunk(4, dim=-1)
    g = torch.tanh(z[..., 2 * H : 3 * H])
    c = torch.addcmul(f * state.c, i, g)  # f ⊙ c + i ⊙ g
    h = o * torch.tanh(c)
    if W_hr is not None:
        h = F.linear(h, W_hr)  # (B, P)
    return LSTMState(h, c), LSTMTrace(i, f, g, o, c, h)


class HiddenState(NamedTuple):
    """The GRU's and the RNN's whole state."""

    h: Tensor
    """(B, H)"""


class GRUTrace(NamedTuple):
    """Every gate and state of a GRU, in PyTorch's gate order r, z, n; shaped like `LSTMTrace`."""

    r: Tensor
    z: Tensor
    n: Tensor
    h: Tensor


def gru_step(xp_t: Tensor, state: HiddenState, W_hh: Tensor, b_hh: Tensor | None):
    hp = F.linear(state.h, W_hh, b_hh)  # (B, 3H)
    xp_r, xp_z, xp_n = xp_t.chunk(3, dim=-1)
    hp_r, hp_z, hp_n = hp.chunk(3, dim=-1)
    r = torch.sigmoid(xp_r + hp_r)
    z = torch.sigmoid(xp_z + hp_z)
    n = torch.tanh(xp_n + r * hp_n)
    h = (1 - z) * n + z * state.h
    return HiddenState(h), GRUTrace(r, z, n, h)


class RNNTrace(NamedTuple):
    """The pre-activation and the hidden state of an RNN; shaped like `LSTMTrace`."""

    pre: Tensor
    """The pre-activation a = W_ih x + b_ih + W_hh h + b_hh."""
    h: Tensor


def rnn_step(xp_t: Tensor, state: HiddenState, W_hh: Tensor, nonlinearity: str):
    """xp_t = W_ih x_t + b_ih + b_hh (B, H), see `project_folding_b_hh`."""
    pre = torch.addmm(xp_t, state.h, W_hh.t())  # (B, H)
    h = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
    return HiddenState(h), RNNTrace(pre, h)
