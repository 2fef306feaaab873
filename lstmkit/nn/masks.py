"""The optional bool masks every streaming layer takes, checked in one place.

    reset[b, t]   a new document starts at step t (the state entering t is the layer's empty state)
    valid[b, t]   False: padding (the state passes through untouched)

Each family's docstring says what its state does at a reset and at padding; the shapes are (B, T) for a
sequence and (B,) for one step.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_mask(name: str, mask: object, shape: tuple[int, ...], dims: str) -> Tensor | None:
    """None, or `mask` if it is a bool tensor of `shape` (written `dims`, e.g. "(B, T)"); otherwise one ValueError
    that names the mask, what it is and what was expected."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} is a {type(mask).__name__}, expected a torch.bool tensor of shape {dims} = {shape}")
    if mask.dtype != torch.bool or tuple(mask.shape) != shape:
        raise ValueError(f"{name} is {tuple(mask.shape)} {mask.dtype}, expected torch.bool of shape {dims} = {shape}")
    return mask


def check_masks(reset: object, valid: object, shape: tuple[int, ...], dims: str) -> tuple[Tensor | None, Tensor | None]:
    """(reset, valid), each checked by `check_mask` against the same `shape`."""
    return check_mask("reset", reset, shape, dims), check_mask("valid", valid, shape, dims)
