"""`lstmkit.nn.GRU` and `GRUCell`: `torch.nn.GRU`/`GRUCell` that can show their gates.

Drop-in subclasses, as for `lstmkit.nn.LSTM`: `forward` is PyTorch's own kernel; `trace(input, hx)`
is the readable path and returns (output, h_n, GRUTrace) with r, z, n, h of every step, layer and
direction, each (num_layers·num_directions, T, B, H), gate order r, z, n (PyTorch's; the reset gate
multiplies W_hn h + b_hn).

`trace` runs the module's forward pre-hooks first (weight_norm, spectral_norm), as forward does; empty
batches give empty fields, T = 0 raises what forward raises. `torch.jit.script`, `torch.fx` and
`lstmkit.nn.quantize_dynamic` work as for torch.nn.GRU, with the caveat on scripting written in
`lstmkit.nn.rnn.lstm` (the model gets the torch.nn twin). `proj_size=` is refused with torch's ValueError.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from lstmkit.nn.rnn.cells import Cell, HiddenState, gru_step, project
from lstmkit.nn.rnn.dropin import fx_aware, torch_twin
from lstmkit.nn.rnn.trace_cell import trace_cell
from lstmkit.nn.rnn.trace_layers import forward_pre_hooks, layer_params, trace_hidden_state_layer


def gru_cell(module, suffix: str = "") -> Cell:
    """The readable path's Cell of the GRU layer and direction `suffix` ("_l0", ...; "" for a GRUCell), reading
    `module`'s parameters: `cells.project` and `cells.gru_step` (b_hh stays inside the reset gate's product)."""
    W_ih, W_hh, b_ih, b_hh = layer_params(module, suffix)
    step = partial(gru_step, W_hh=W_hh, b_hh=b_hh)
    return Cell(project=partial(project, W_ih=W_ih, b_ih=b_ih), step=step, State=HiddenState)


class GRU(torch.nn.GRU):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        proj_size: int | None = None,
    ) -> None:
        """torch.nn.GRU's arguments. `proj_size` is there only to be refused as torch refuses it: any value
        raises ValueError (a projection exists for the LSTM only)."""
        if proj_size is not None:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")  # torch's words
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )

    def forward(self, input, hx: Tensor | None = None):
        """torch.nn.GRU's forward (under torch.fx, one node: `dropin.fx_aware`)."""
        return fx_aware(self, super().forward, input, hx)

    def trace(self, input, hx: Tensor | None = None):
        """Run the readable path: (output, h_n, GRUTrace of every step, layer and direction), after the
        forward pre-hooks, as for forward."""
        input, hx = forward_pre_hooks(self, input, hx)
        return trace_hidden_state_layer(self, input, hx, gru_cell)

    def __prepare_scriptable__(self):
        """What torch.jit.script compiles in this layer's place: torch.nn.GRU with these parameters."""
        return torch_twin(self)


class GRUCell(torch.nn.GRUCell):
    """`torch.nn.GRUCell` with `trace(input, hx) -> (h, GRUTrace)` (fields (B, H))."""

    def forward(self, input: Tensor, hx: Tensor | None = None):
        """torch.nn.GRUCell's forward (under torch.fx, one node: `dropin.fx_aware`)."""
        return fx_aware(self, super().forward, input, hx)

    def __prepare_scriptable__(self):
        """What torch.jit.script compiles in this cell's place: torch.nn.GRUCell with these parameters."""
        return torch_twin(self)

    def trace(self, input: Tensor, hx: Tensor | None = None):
        input, hx = forward_pre_hooks(self, input, hx)
        hx = None if hx is None else (hx,)
        state, trace = trace_cell(self, input, hx, gru_cell(self))
        return state.h, trace
