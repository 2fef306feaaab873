"""Random mLSTM inputs for the tests: q, k (B, NH, T, DK), v (B, NH, T, DV), gates ĩ, f̃ (B, NH, T)."""

from __future__ import annotations

import torch

F64 = torch.float64


def inputs(B, NH, T, DK, DV, seed, *, dtype=F64, gate_scale=3.0, requires_grad=False):
    """q, k, v ~ N(0, 1); ĩ ~ N(0, gate_scale²); f̃ ~ N(1, gate_scale²) (forget gates mostly open)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale + shift).requires_grad_(requires_grad)

    return (
        r(B, NH, T, DK),
        r(B, NH, T, DK),
        r(B, NH, T, DV),
        r(B, NH, T, scale=gate_scale),
        r(B, NH, T, scale=gate_scale, shift=1.0),
    )
