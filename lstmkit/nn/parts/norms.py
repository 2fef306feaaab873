"""The normalisations of the xLSTM and Mamba blocks.

    LayerNorm:  y = (x - mean(x)) / √(var(x) + eps) · w (+ b)          over the last axis
    HeadNorm:   the same per head: x (..., NH·DH) is normalised over each head's DH features,
                then one weight (and bias) of size NH·DH scales all of them ("group norm" in the paper)
    RMSNorm:    y = x / √(mean(x²) + eps) · w (+ b)                       (xLSTM 7B, Mamba)
    GatedRMSNorm: y = RMSNorm per group of (x ⊙ SiLU(z)) · w                (Mamba-2, before out_proj)

Weights are plain scales initialised to 1. The xLSTM authors' small models store w - 1 instead
(`weight_proxy = 1 + weight`, initialised to 0); `lstmkit.nn.compat` adds the 1 when importing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm(nn.Module):
    """Layer norm over the last axis with an optional bias (`torch.nn.LayerNorm` always has one)."""

    def __init__(self, size: int, eps: float = 1e-5, bias: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self.size, self.eps = size, eps
        self.weight = nn.Parameter(torch.ones(size, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(size, device=device, dtype=dtype)) if bias else None

    def reset_parameters(self) -> None:
        """weight = 1, bias = 0."""
        nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, (self.size,), self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.size}, eps={self.eps}, bias={self.bias is not None}"


class HeadNorm(LayerNorm):
    """Layer norm of each head separately: x (..., NH·DH) -> (..., NH·DH)."""

    def __init__(self, size: int, num_heads: int, eps: float = 1e-5, bias: bool = False, device=None, dtype=None):
        if size % num_heads:
            raise ValueError(f"size {size} is not divisible by num_heads {num_heads}")
        super().__init__(size, eps, bias, device, dtype)
        self.num_heads = num_heads

    def forward(self, x: Tensor) -> Tensor:
        heads = x.unflatten(-1, (self.num_heads, self.size // self.num_heads))  # (..., NH, DH)
        normed = F.layer_norm(heads, heads.shape[-1:], eps=self.eps).flatten(-2)
        return normed * self.weight if self.bias is None else torch.addcmul(self.bias, normed, self.weight)

    def extra_repr(self) -> str:
        return f"{self.size}, num_heads={self.num_heads}, eps={self.eps}, bias={self.bias is not None}"


class RMSNorm(LayerNorm):
    """Root-mean-square norm over the last axis (no centring)."""

    def forward(self, x: Tensor) -> Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return y if self.bias is None else y + self.bias


class GatedRMSNorm(LayerNorm):
    """Mamba-2's norm before out_proj: gate first, then RMS-normalise each group of `group_size` features.

    y = RMSNorm_groups(x ⊙ SiLU(z)) · w          x, z (..., size); the groups split the last axis evenly
    """

    def __init__(self, size: int, group_size: int, eps: float = 1e-5, device=None, dtype=None) -> None:
        if group_size < 1 or size % group_size:
            raise ValueError(f"group_size {group_size} does not divide size {size}")
        super().__init__(size, eps, False, device, dtype)
        self.group_size = group_size

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        gated = (x * F.silu(z)).unflatten(-1, (self.size // self.group_size, self.group_size))
        normed = gated * torch.rsqrt(gated.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.flatten(-2) * self.weight

    def extra_repr(self) -> str:
        return f"{self.size}, group_size={self.group_size}, eps={self.eps}"
