"""Input checks shared by the cells' `trace`: the same rules as torch.nn's cells, with named shapes."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor


def cell_input(cell, input: Tensor) -> tuple[Tensor, bool]:
    """(B, I) input and whether the caller's was batched; errors name the shape found and expected."""
    name = type(cell).__name__
    if input.dim() not in (1, 2):
        raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
    if input.shape[-1] != cell.input_size:
        raise RuntimeError(
            f"{name}: input has shape {tuple(input.shape)}, expected last size input_size = {cell.input_size}"
        )
    if input.dtype != cell.weight_ih.dtype:
        raise ValueError(
            f"{name}: input dtype ({input.dtype}) does not match weight dtype ({cell.weight_ih.dtype}). "
            f"Convert input: input.to({cell.weight_ih.dtype}), or convert model: model.to({input.dtype})"
        )
    return (input if input.dim() == 2 else input.unsqueeze(0)), input.dim() == 2


def check_cell_state(cell, hx: tuple[Tensor, ...], batch: int) -> None:
    """Each state (batch, hidden_size), in the weights' dtype (torch.nn's cells fail in a matrix product)."""
    for k, h in enumerate(hx):
        if tuple(h.shape) != (batch, cell.hidden_size):
            raise RuntimeError(
                f"{type(cell).__name__}: hx[{k}] has shape {tuple(h.shape)}, expected ({batch}, {cell.hidden_size})"
            )
        if h.dtype != cell.weight_ih.dtype:
            raise ValueError(
                f"{type(cell).__name__}.trace: hx[{k}] dtype ({h.dtype}) does not match weight dtype "
                f"({cell.weight_ih.dtype}). Convert the state: h.to({cell.weight_ih.dtype}), or the model: "
                f"model.to({h.dtype})"
            )


def trace_cell(cell, input: Tensor, hx: tuple[Tensor, ...] | None, project: Callable, step: Callable, State: type):
    """One traced step of any cell: (state, trace), batched or not like the input."""
    x, batched = cell_input(cell, input)
    if hx is None:
        hx = tuple(x.new_zeros(x.shape[0], cell.hidden_size) for _ in State._fields)
    elif not batched:
        hx = tuple(h.unsqueeze(0) for h in hx)
    check_cell_state(cell, hx, x.shape[0])
    state, trace = step(project(x), State(*hx))
    if not batched:
        state = State(*(s.squeeze(0) for s in state))
        trace = type(trace)(*(t.squeeze(0) for t in trace))
    return state, trace
