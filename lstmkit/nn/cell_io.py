"""Input checks shared by the cells' `trace`: the same rules as torch.nn's cells, with named shapes."""

from __future__ import annotations

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
    for k, h in enumerate(hx):
        if tuple(h.shape) != (batch, cell.hidden_size):
            raise RuntimeError(
                f"{type(cell).__name__}: hx[{k}] has shape {tuple(h.shape)}, expected ({batch}, {cell.hidden_size})"
            )
