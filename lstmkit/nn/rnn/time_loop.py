"""The readable path: a Python loop over time for one layer and one direction, any cell.

    xp = cell.project(x)                     W_ih x + b_ih, all steps at once, (T, B, G)
    for t in 0..T-1 (or T-1..0 for the reverse direction):
        state, record = cell.step(xp[t], state)   one step of a `cells.Cell` (`cells.lstm_step`, ...)

Sequences of different lengths (packed input) carry a mask (T, B): where a sequence has ended (or, in
the reverse direction, not yet begun) the state passes through unchanged and the output and the
record are zero, exactly as PyTorch's packed kernels behave.

Iterating `xp.unbind(0)` rather than indexing `xp[t]` keeps the backward pass O(T): each index would
add a full-size (T, B, G) gradient buffer per step, O(T²) in all. Measured speeds: docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor


def run_direction(
    step: Callable, xp: Tensor, state: NamedTuple, mask: Tensor | None, reverse: bool
) -> tuple[NamedTuple, NamedTuple]:
    """Run `step` over xp (T, B, G) from `state`; returns (final state, records stacked to (T, B, ·))."""
    xs = xp.unbind(0)
    masks = mask.unsqueeze(-1).unbind(0) if mask is not None else (None,) * len(xs)
    order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    records: list = [None] * len(xs)
    for t in order:
        new_state, record = step(xs[t], state)
        if masks[t] is not None:
            m = masks[t]  # (B, 1): True while the sequence is running
            new_state = type(state)(*(torch.where(m, new, old) for new, old in zip(new_state, state, strict=True)))
            record = type(record)(*(torch.where(m, r, torch.zeros_like(r)) for r in record))
        state = new_state
        records[t] = record
    stacked = type(records[0])(*(torch.stack(field) for field in zip(*records, strict=True)))
    return state, stacked
