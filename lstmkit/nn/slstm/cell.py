"""The sLSTM cell in PyTorch, as the equations are written: one step, and the plain loop over time.

The cell (xLSTM paper section 2.2; `lstmkit.reference.slstm` is the definition):

    ĩ, f̃, z̃, õ = x̃_t + R h_{t-1} + b        x̃ = the input's gate pre-activations (B, T, 4H), gate-major
    m_t = max(log σ(f̃) + m_{t-1}, ĩ)        (m_t = ĩ where n_{t-1} = 0: an empty memory restarts it)
    i = exp(ĩ - m_t)   f = exp(log σ(f̃) + m_{t-1} - m_t)   z = tanh(z̃)   o = σ(õ)
    c_t = f c_{t-1} + i z    n_t = f n_{t-1} + i    h_t = o c_t / n_t

R is block-diagonal: one DH×DH matrix per head and gate, `R[head, gate, out, in]` (NH, 4, DH, DH).

Packed documents and padding, two optional bool masks (B, T), the same in every function of `lstmkit.nn.slstm`:

    reset[b, t]         a new document starts at t: the state entering step t is the zero state
                        (h = c = n = m = 0), so R h_{t-1} = 0 and the restart rule gives m_t = ĩ, f = 0
    valid[b, t] false   padding: state_t = state_{t-1} (h, c, n, m untouched) and the output is h_{t-1};
                        a reset at a padded position is ignored

`slstm_loop` is the slow, obvious form that autograd records step by step; the fast `slstm`
(`lstmkit.nn.slstm.fast`) is tested equal to it in float64.

Shapes: B batch, T time, NH heads, DH head size, H = NH·DH.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.finite import check_finite
from lstmkit.nn.masks import check_masks


class sLSTMState(NamedTuple):
    h: Tensor
    c: Tensor
    n: Tensor
    m: Tensor
    """Each (B, H)."""

    @classmethod
    def zeros(cls, batch: int, hidden_size: int, like: Tensor) -> sLSTMState:
        """The fresh state, h = c = n = m = 0, each (batch, hidden_size) in like's dtype and on its device."""
        zeros = like.new_zeros(batch, hidden_size)
        return cls(zeros, zeros, zeros, zeros)


def zero_state(batch: int, hidden_size: int, like: Tensor) -> sLSTMState:
    """`sLSTMState.zeros`, under the name earlier code calls."""
    return sLSTMState.zeros(batch, hidden_size, like)


def slstm_step(
    x_t: Tensor, R: Tensor, b: Tensor, state: sLSTMState, *, reset: Tensor | None = None, valid: Tensor | None = None
) -> tuple[Tensor, sLSTMState]:
    """One step, the equations as written (autograd records it): x̃_t (B, 4H) -> h_t (B, H), new state.
    For generation one token at a time, and the body of the slow loop the fast layer is tested against.
    reset, valid: bool (B,), this step's column of the masks (module docstring). Values: `check_values`."""
    check_values(x_t, state)
    reset, valid = checked_masks(reset, valid, (x_t.shape[0],), "(B,)", x_t.device)
    return _step(x_t, R, b, state, reset, valid)


def _step(x_t: Tensor, R: Tensor, b: Tensor, state: sLSTMState, reset: Tensor | None, valid: Tensor | None):
    """`slstm_step` on checked inputs (the loop checks x, the state and the masks once, not at every step)."""
    NH, _, DH, _ = R.shape
    state_in = state
    if reset is not None:  # a new document: it starts from the zero state
        state = sLSTMState(*(torch.where(reset[:, None], 0.0, s) for s in state))
    h, c, n, m = state
    rh = torch.einsum("ngoi,bni->bgno", R, h.view(h.shape[0], NH, DH)).reshape(h.shape[0], 4 * NH * DH)
    pre_i, pre_f, pre_z, pre_o = (x_t + rh + b).chunk(4, dim=-1)
    log_f = F.logsigmoid(pre_f)
    restart = n == 0
    m_new = torch.where(restart, pre_i, torch.maximum(log_f + m, pre_i))
    i = torch.exp(pre_i - m_new)
    f = torch.where(restart, 0.0, torch.exp(log_f + m - m_new))
    c = f * c + i * torch.tanh(pre_z)
    n = f * n + i
    h = torch.sigmoid(pre_o) * c / n
    new = sLSTMState(h, c, n, m_new)
    if valid is not None:  # padding: the state passes through untouched (a reset there is ignored)
        new = sLSTMState(*(torch.where(valid[:, None], s_new, s_in) for s_new, s_in in zip(new, state_in, strict=True)))
    return new.h, new


def slstm_loop(
    x: Tensor, R: Tensor, b: Tensor, state: sLSTMState, *, reset: Tensor | None = None, valid: Tensor | None = None
) -> tuple[Tensor, sLSTMState]:
    """The slow, obvious implementation: `slstm_step` over time, autograd records everything.
    reset, valid: bool (B, T) masks (module docstring)."""
    B, T = x.shape[:2]
    check_values(x, state)
    reset, valid = checked_masks(reset, valid, (B, T), "(B, T)", x.device)
    hs = []
    for t, x_t in enumerate(x.unbind(1)):
        reset_t = None if reset is None else reset[:, t]
        valid_t = None if valid is None else valid[:, t]
        h, state = _step(x_t, R, b, state, reset_t, valid_t)
        hs.append(h)
    return torch.stack(hs, dim=1), state


def check_values(x: Tensor, state: sLSTMState) -> None:
    """x̃ and every state tensor finite (`lstmkit.nn.finite`): ±inf in a gate has no stabilized form (ĩ = +inf makes
    i = e^{inf - inf}), and the sLSTM's own states (zero or returned by a call) are always finite."""
    check_finite("x", x)
    for name, tensor in zip(sLSTMState._fields, state, strict=True):
        check_finite(f"state.{name}", tensor)


def checked_masks(
    reset: object, valid: object, shape: tuple[int, ...], dims: str, device: torch.device
) -> tuple[Tensor | None, Tensor | None]:
    """(reset, valid) checked by `lstmkit.nn.masks.check_masks`, moved to the input's device."""
    return tuple(None if mask is None else mask.to(device) for mask in check_masks(reset, valid, shape, dims))
