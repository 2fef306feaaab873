"""The sLSTM over a sequence, fast: inputs checked once, then the C++ loops or the Python loop.

    h, state = slstm(x̃ (B, T, 4H), R (NH, 4, DH, DH), b (4H,), state=None, *, reset=None, valid=None)

The equations and the masks: `lstmkit.nn.slstm.cell`. On CPU float32/float64 tensors both time loops run in
C++ (`cpp_loop`, compiled on first use): at the sizes sLSTMs run at, a step is dispatch overhead, not
arithmetic. Elsewhere, or when the build fails, the Python loop (`python_loop`). Both are tested equal to
`slstm_loop` in float64; measured speeds are in docs/benchmarks.md.

Shapes: B batch, T time, NH heads, DH head size, H = NH·DH.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

import lstmkit.nn.slstm.cpp_loop as cpp_loop
from lstmkit.nn.slstm.cell import check_values, checked_masks, sLSTMState
from lstmkit.nn.slstm.python_loop import sLSTMFunction
from lstmkit.nn.state_check import check_state_tensors


def slstm(
    x: Tensor,
    R: Tensor,
    b: Tensor,
    state: sLSTMState | None = None,
    *,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, sLSTMState]:
    """The fast sLSTM over a sequence: x̃ (B, T, 4H) -> h (B, T, H) and the final state.
    reset, valid: optional bool (B, T) masks for packed documents and padding (module docstring).
    Values must be finite (`check_values`); B = 0 or T = 0 give an empty h and the state unchanged.
    Runs the C++ loops on CPU float32/float64 tensors, the Python loop otherwise (module docstring)."""
    if R.dim() != 4 or R.shape[1] != 4 or R.shape[2] != R.shape[3]:
        raise ValueError(f"R has shape {tuple(R.shape)}, expected (num_heads, 4, head_dim, head_dim)")
    NH, _, DH, _ = R.shape
    H = NH * DH
    if x.dim() != 3 or x.shape[-1] != 4 * H:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, T, {4 * H}) (4·hidden_size gate pre-activations)")
    if tuple(b.shape) != (4 * H,):
        raise ValueError(f"b has shape {tuple(b.shape)}, expected ({4 * H},)")
    if state is None:
        state = sLSTMState.zeros(x.shape[0], H, x)
    check_state_tensors("state.", state, dict.fromkeys("hcnm", (x.shape[0], H)), like=x)
    check_values(x, state)
    reset, valid = checked_masks(reset, valid, tuple(x.shape[:2]), "(B, T)", x.device)
    if x.shape[0] == 0 or x.shape[1] == 0:  # no rows or no steps: an empty output, the state unchanged
        return x.new_zeros(x.shape[0], x.shape[1], H), sLSTMState(*state)
    if cpp_loop.usable(x, R, b, *state):
        out, *final = cpp_loop.slstm_cpp(x, R, b, *state, reset=reset, valid=valid)
    else:
        out, *final = sLSTMFunction.apply(x, R, b, *state, reset, valid)  # apply takes no keywords
    return out, sLSTMState(*final)


class sLSTMCell(nn.Module):
    """The sLSTM recurrence with its parameters R and b: forward(x̃ (B, T, 4H), state=None) -> (h (B, T, H), state);
    optional bool (B, T) masks `reset` (a new document starts) and `valid` (false: padding), as in `slstm`.

    The input projections and the causal convolution feeding i and f belong to `lstmkit.nn.sLSTMLayer`.
    """

    def __init__(self, hidden_size: int, num_heads: int = 4, device=None, dtype=None) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.hidden_size, self.num_heads = hidden_size, num_heads
        DH = hidden_size // num_heads
        self.R = nn.Parameter(torch.empty(num_heads, 4, DH, DH, device=device, dtype=dtype))
        self.b = nn.Parameter(torch.empty(4 * hidden_size, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """R = 0 (the xLSTM authors' default recurrent init); b = 0 except the forget gate, whose bias
        rises linearly from 3 to 6 across units (the authors' "small_init" option; inside an xLSTM block
        `sLSTMLayer.reset_parameters` sets their default per-block power-law schedule instead)."""
        H = self.hidden_size
        with torch.no_grad():
            self.R.zero_()
            self.b.zero_()
            self.b[H : 2 * H] = torch.linspace(3.0, 6.0, H)

    def forward(
        self, x: Tensor, state: sLSTMState | None = None, *, reset: Tensor | None = None, valid: Tensor | None = None
    ) -> tuple[Tensor, sLSTMState]:
        return slstm(x, self.R, self.b, state, reset=reset, valid=valid)
