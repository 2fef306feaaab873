"""The readable path of the single-step cells' `trace` (LSTMCell, GRUCell, RNNCell): one step of a `cells.Cell`,
after the input checks torch.nn's cells make, with named shapes."""

from __future__ import annotations

from torch import Tensor

from lstmkit.nn.rnn.cells import Cell


def cell_input(module, input: Tensor) -> tuple[Tensor, bool]:
    """(B, I) input and whether the caller's was batched; errors name the shape found and expected."""
    name = type(module).__name__
    if input.dim() not in (1, 2):
        raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
    if input.shape[-1] != module.input_size:
        raise RuntimeError(
            f"{name}: input has shape {tuple(input.shape)}, expected last size input_size = {module.input_size}"
        )
    if input.dtype != module.weight_ih.dtype:
        raise ValueError(
            f"{name}: input dtype ({input.dtype}) does not match weight dtype ({module.weight_ih.dtype}). "
            f"Convert input: input.to({module.weight_ih.dtype}), or convert model: model.to({input.dtype})"
        )
    return (input if input.dim() == 2 else input.unsqueeze(0)), input.dim() == 2


def check_cell_state(module, hx: tuple[Tensor, ...], batch: int) -> None:
    """Each state (batch, hidden_size), in the weights' dtype (torch.nn's cells fail in a matrix product)."""
    for k, h in enumerate(hx):
        if tuple(h.shape) != (batch, module.hidden_size):
            raise RuntimeError(
                f"{type(module).__name__}: hx[{k}] has shape {tuple(h.shape)}, expected ({batch}, {module.hidden_size})"
            )
        if h.dtype != module.weight_ih.dtype:
            raise ValueError(
                f"{type(module).__name__}.trace: hx[{k}] dtype ({h.dtype}) does not match weight dtype "
                f"({module.weight_ih.dtype}). Convert the state: h.to({module.weight_ih.dtype}), or the model: "
                f"model.to({h.dtype})"
            )


def trace_cell(module, input: Tensor, hx: tuple[Tensor, ...] | None, cell: Cell):
    """One traced step of a single-step cell `module` (LSTMCell, ...) by its `cell` (`lstm.lstm_cell(module)`,
    ...): (state, trace), batched or not like the input."""
    x, batched = cell_input(module, input)
    State = cell.State
    if hx is None:
        hx = tuple(x.new_zeros(x.shape[0], module.hidden_size) for _ in State._fields)
    elif not batched:
        hx = tuple(h.unsqueeze(0) for h in hx)
    check_cell_state(module, hx, x.shape[0])
    state, trace = cell.step(cell.project(x), State(*hx))
    if not batched:
        state = State(*(s.squeeze(0) for s in state))
        trace = type(trace)(*(t.squeeze(0) for t in trace))
    return state, trace
