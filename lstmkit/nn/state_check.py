"""The check of a carried state's tensors, one for every streaming layer (sLSTM, the xLSTM layers and blocks).

    check_state_tensors("block 0 (sLSTMBlock) state.cell.", state.cell, dict.fromkeys("hcnm", (B, E)), like=x)
    ValueError: block 0 (sLSTMBlock) state.cell.h is (2, 8) torch.float64, expected (2, 16) torch.float32

What the state must be (its type, a convolution's part) stays with each layer; this is the part they share.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor


def check_state_tensors(what: str, tensors: Iterable[Tensor], shapes: dict[str, tuple[int, ...]], like: Tensor) -> None:
    """Each tensor (in the order of `shapes`, one per field) has its field's shape and like's dtype; otherwise one
    ValueError: "{what}{field} is (shape) dtype, expected (shape) dtype"."""
    for (name, shape), tensor in zip(shapes.items(), tensors, strict=True):
        if tuple(tensor.shape) != shape or tensor.dtype != like.dtype:
            raise ValueError(f"{what}{name} is {tuple(tensor.shape)} {tensor.dtype}, expected {shape} {like.dtype}")
