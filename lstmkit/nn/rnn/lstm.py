"""`lstmkit.nn.LSTM` and `LSTMCell`: `torch.nn.LSTM`/`LSTMCell` that can show their gates.

Drop-in: they *are* `torch.nn.LSTM`/`LSTMCell` (subclasses), with the same constructor, parameter
names and shapes, outputs, states, unbatched and `PackedSequence` input, and state dicts that load
both ways with `strict=True`. `forward` is PyTorch's own fused kernel (oneDNN on CPU for float32,
cuDNN on GPU), so the default path is exactly as fast as `torch.nn.LSTM`.

Two additions:

* `trace(input, hx=None) -> (output, (h_n, c_n), LSTMTrace)`: i, f, g, o, c, h of every step, layer and
  direction, each (num_layers·num_directions, T, B, ·) (no B for unbatched input; positions past a
  packed sequence's end are zero). Its output and states equal `forward`'s (tested in float64).
  With dropout > 0 in training mode its dropout masks are its own, so only eval mode compares equal.
  Two paths, equal in float64 to 1e-12 in every field and gradient (tests/nn/rnn/test_lstm_trace_fast.py):
  - `trace_loop`, the readable one: a Python loop over the step equations (`cells.lstm_step`), one
    `lstm_cell` per layer and direction, run by `trace_layers.run_stack` and `time_loop.run_direction`.
    `trace` runs it for PackedSequence input (sequences of different lengths).
  - `trace_recomputed` (`lstm_trace_fast.py`): h of every step from the fused kernel, one layer at a time,
    then all gates at once from x_t and h_{t-1}, and c by a scan. `trace` runs it for everything else:
    any layers, bidirectional, proj_size, batch_first, unbatched, hx or not, dropout, bias or not.
    Measured speeds against `torch.nn.LSTM`: docs/benchmarks.md.
  For one layer and direction, `trace.h` shares memory with the output (both are the kernel's h).
  `trace` runs the module's forward pre-hooks first, as a call of the module does, so it reads the weights
  forward reads (`torch.nn.utils.weight_norm`/`spectral_norm` recompute them there; parametrizations are
  read as attributes). Its derivatives of every order are exact (second order tested by gradgradcheck
  and central differences), it runs under `torch.func.grad` and `torch.compile` (the gates' products
  are then left to the compiler). Empty batches give empty fields; T = 0 raises what forward raises; an
  initial state of another dtype than the weights is one ValueError (forward fails inside its kernel).
* `forget_bias=b`: initialise every forget-gate bias to b (b_ih = b and b_hh = 0 on the forget rows,
  so the gate starts at σ(b)); None (the default) keeps PyTorch's init, so drop-in behaviour is
  unchanged. A bias of 1-3 keeps gradients alive over long lags (`lstmkit gradients`).

Torch's tools (tests/nn/rnn/test_dropin.py, against torch.nn on the same weights):

* `torch.jit.script(model)` works, but compiles torch.nn.LSTM in this layer's place: TorchScript finds
  torch.nn.LSTM.forward's overloads only for that class (by its name and source lines), so a subclass
  fails ("Overloads are not usable when a module is redeclared"). `__prepare_scriptable__` hands it the
  torch.nn twin (`dropin.torch_twin`: the same Parameter objects), and PyTorch writes that twin back
  into `model`: afterwards `model.lstm` is a torch.nn.LSTM, without `trace`. To keep the model as it
  is, script a copy: `torch.jit.script(copy.deepcopy(model))`.
* `torch.fx.symbolic_trace(model)` records the layer as one call_module node, as it does torch.nn's
  (fx keeps only classes defined under torch.nn whole; `forward` does it for this one, `dropin.fx_aware`).
* `torch.ao.quantization.quantize_dynamic(model)` leaves this class float: it picks modules by exact
  type, and its default `qconfig_spec` is a literal in its body, which no registration reaches.
  `lstmkit.nn.quantize_dynamic(model)` (same arguments) quantizes it as torch's does torch.nn.LSTM. With
  torch's own function, name the class in `qconfig_spec` ({lstmkit.nn.LSTM, ...}) and map it in `mapping`
  to `dropin.FromTwin(torch.ao.nn.quantized.dynamic.LSTM)`, which converts the torch.nn twin.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from lstmkit.nn.rnn.cells import Cell, LSTMState, lstm_step, project_folding_b_hh
from lstmkit.nn.rnn.dropin import fx_aware, torch_twin
from lstmkit.nn.rnn.lstm_trace_fast import recompute_trace
from lstmkit.nn.rnn.trace_cell import trace_cell
from lstmkit.nn.rnn.trace_layers import (
    Prepared,
    caller_layout,
    finish,
    forward_pre_hooks,
    layer_params,
    param_suffixes,
    prepare,
    run_stack,
)


def _set_forget_bias(module, forget_bias: float, suffixes: list[str]) -> None:
    """b_ih = forget_bias, b_hh = 0 on the forget-gate rows H..2H (gate order i, f, g, o)."""
    if not module.bias:
        raise ValueError("forget_bias needs bias=True: a layer without biases has no forget-gate bias to set")
    H = module.hidden_size
    with torch.no_grad():
        for suffix in suffixes:
            getattr(module, f"bias_ih{suffix}")[H : 2 * H] = forget_bias
            getattr(module, f"bias_hh{suffix}")[H : 2 * H] = 0.0


def lstm_cell(module, suffix: str = "") -> Cell:
    """The readable path's Cell of the LSTM layer and direction `suffix` ("_l0", "_l1_reverse", ...; "" for an
    LSTMCell), reading `module`'s parameters: `cells.project_folding_b_hh` and `cells.lstm_step`."""
    W_ih, W_hh, b_ih, b_hh = layer_params(module, suffix)
    W_hr = getattr(module, f"weight_hr{suffix}") if getattr(module, "proj_size", 0) else None
    project = partial(project_folding_b_hh, W_ih=W_ih, b_ih=b_ih, b_hh=b_hh)
    return Cell(project=project, step=partial(lstm_step, W_hh=W_hh, W_hr=W_hr), State=LSTMState)


class LSTM(torch.nn.LSTM):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        forget_bias: float | None = None,
    ) -> None:
        self.forget_bias = forget_bias  # read by reset_parameters, which torch's __init__ calls
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            proj_size=proj_size,
            device=device,
            dtype=dtype,
        )

    def reset_parameters(self) -> None:
        """PyTorch's init, U(-1/√H, 1/√H) for every tensor; then the forget-gate bias, if one was given."""
        super().reset_parameters()
        if getattr(self, "forget_bias", None) is not None:
            _set_forget_bias(self, self.forget_bias, param_suffixes(self))

    def forward(self, input, hx: tuple[Tensor, Tensor] | None = None):
        """torch.nn.LSTM's forward (under torch.fx, one node: `dropin.fx_aware`)."""
        return fx_aware(self, super().forward, input, hx)

    def trace(self, input, hx: tuple[Tensor, Tensor] | None = None):
        """(output, (h_n, c_n), LSTMTrace of every step, layer and direction).

        The forward pre-hooks run first, as for forward. Packed input runs `trace_loop`; everything else
        `trace_recomputed` (same values, see the module docstring)."""
        input, hx = forward_pre_hooks(self, input, hx)
        if isinstance(input, PackedSequence):
            return trace_loop(self, input, hx)
        return trace_recomputed(self, input, hx)

    def __prepare_scriptable__(self):
        """What torch.jit.script compiles in this layer's place: torch.nn.LSTM with these parameters."""
        return torch_twin(self)


def _prepare(module: LSTM, input, hx: tuple[Tensor, Tensor] | None) -> Prepared:
    module._update_flat_weights()
    P = module.proj_size or module.hidden_size
    return prepare(module, input, hx, (P, module.hidden_size), module.check_forward_args)


def trace_loop(module: LSTM, input, hx: tuple[Tensor, Tensor] | None = None):
    """`LSTM.trace` by the readable path: the Python loop over `cells.lstm_step`, any input. One `lstm_cell` per
    layer and direction, run by `trace_layers.run_stack` through `time_loop.run_direction`."""
    prep = _prepare(module, input, hx)
    cells = [lstm_cell(module, suffix) for suffix in param_suffixes(module)]
    output, finals, traces = run_stack(module, prep, cells)
    return finish(module, prep, output, finals, traces)


def trace_recomputed(module: LSTM, input, hx: tuple[Tensor, Tensor] | None = None):
    """`LSTM.trace` by h from the fused kernel and the gates recomputed at once (`lstm_trace`); not packed input."""
    prep = _prepare(module, input, hx)
    if prep.mask is not None:
        raise ValueError("trace_recomputed: packed input has a mask; use trace_loop")
    return caller_layout(module, prep, *recompute_trace(module, prep))


class LSTMCell(torch.nn.LSTMCell):
    """`torch.nn.LSTMCell` with `forget_bias=` and `trace(input, hx) -> ((h, c), LSTMTrace)` (fields (B, H))."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *, forget_bias=None
    ):
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def reset_parameters(self) -> None:
        """PyTorch's init, U(-1/√H, 1/√H) for every tensor; then the forget-gate bias, if one was given."""
        super().reset_parameters()
        if getattr(self, "forget_bias", None) is not None:
            _set_forget_bias(self, self.forget_bias, [""])

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        """torch.nn.LSTMCell's forward (under torch.fx, one node: `dropin.fx_aware`)."""
        return fx_aware(self, super().forward, input, hx)

    def trace(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        input, hx = forward_pre_hooks(self, input, hx)
        state, trace = trace_cell(self, input, hx, lstm_cell(self))
        return (state.h, state.c), trace

    def __prepare_scriptable__(self):
        """What torch.jit.script compiles in this cell's place: torch.nn.LSTMCell with these parameters."""
        return torch_twin(self)
