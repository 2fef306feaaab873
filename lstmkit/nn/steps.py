"""One time step of each recurrent cell, in PyTorch, batched: the readable path's arithmetic.

The input projection W_ih x_t + b_ih is computed for all time steps at once before the loop (one big
matrix product); each step adds the recurrent part and applies the gates. Equations (PyTorch's):

    LSTM  z = xp_t + W_hh h + b_hh;  i, f, g, o = σ(z_i), σ(z_f), tanh(z_g), σ(z_o)
          c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')  (then h' = W_hr h' with a projection)
    GRU   r, z = σ(xp_r + hp_r), σ(xp_z + hp_z)   with hp = W_hh h + b_hh
          n = tanh(xp_n + r ⊙ hp_n);  h' = (1 - z) ⊙ n + z ⊙ h
    RNN   a = xp_t + W_hh h + b_hh;  h' = tanh(a) or relu(a)

Shapes: B batch, H hidden, P projection (P = H without one), G = gates·H.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


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


def lstm_step(xp_t: Tensor, state: LSTMState, W_hh: Tensor, b_hh: Tensor | None, W_hr: Tensor | None):
    z = xp_t + F.linear(state.h, W_hh, b_hh)  # (B, 4H)
    z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
    c = f * state.c + i * g
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


def rnn_step(xp_t: Tensor, state: HiddenState, W_hh: Tensor, b_hh: Tensor | None, nonlinearity: str):
    pre = xp_t + F.linear(state.h, W_hh, b_hh)  # (B, H)
    h = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
    return HiddenState(h), RNNTrace(pre, h)
