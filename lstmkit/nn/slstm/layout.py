"""The sLSTM's internal layouts, shared by its Python loop (`python_loop.py`) and its C++ loop (`cpp_loop.py`).

gate-major  x̃ (B, T, 4H): [i of every head | f | z | o], the layout of the layer's projections
head-major  (T, NH, B, 4·DH): each head's four gates contiguous, so one batched product per step
            covers every head and gate
state       (B, H) outside, (NH, B, DH) inside the loops
"""

from __future__ import annotations

from torch import Tensor


def head_major(x: Tensor, NH: int) -> Tensor:
    """(B, T, 4H) gate-major -> (T, NH, B, 4·DH), each head's gates contiguous: [i | f | z | o]."""
    B, T, G = x.shape
    return x.view(B, T, 4, NH, G // (4 * NH)).permute(1, 3, 0, 2, 4).reshape(T, NH, B, G // NH)


def gate_major(x: Tensor, NH: int) -> Tensor:
    """The inverse of `head_major`, for the input gradient."""
    T, _, B, G_head = x.shape
    return x.view(T, NH, B, 4, G_head // 4).permute(2, 0, 3, 1, 4).reshape(B, T, 4 * G_head // 4 * NH)


def heads(s: Tensor, NH: int) -> Tensor:
    """(B, H) -> (NH, B, DH)."""
    return s.view(s.shape[0], NH, -1).transpose(0, 1)


def flat(s: Tensor) -> Tensor:
    """(NH, B, DH) -> (B, H)."""
    return s.transpose(0, 1).reshape(s.shape[1], -1)
