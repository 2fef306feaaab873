"""Head-wise (block-diagonal) linear map: each of NH heads has its own small matrix.

    y[..., h, :] = W_h x[..., h, :] (+ b)        W (NH, out/NH, in/NH)

The xLSTM blocks use it for the mLSTM's q, k, v (blocks of 4 features) and the sLSTM's gate
projections (one block per head): far fewer parameters than a dense map, and no mixing across heads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit.nn.parts.init import small_init_std


class HeadwiseLinear(nn.Module):
    """x (..., in_features) -> (..., out_features), one (out/NH × in/NH) matrix per head."""

    def __init__(
        self, in_features: int, out_features: int, num_heads: int, bias: bool = False, device=None, dtype=None
    ) -> None:
        super().__init__()
        if in_features % num_heads or out_features % num_heads:
            raise ValueError(
                f"{in_features} in and {out_features} out features are not both divisible by num_heads {num_heads}"
            )
        self.in_features, self.out_features, self.num_heads = in_features, out_features, num_heads
        shape = (num_heads, out_features // num_heads, in_features // num_heads)
        self.weight = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self, std: float | None = None) -> None:
        """weight ~ N(0, std²), std = √(2 / (5 · in per head)) unless given ("small init"); bias = 0."""
        std = small_init_std(self.weight.shape[-1]) if std is None else std
        nn.init.normal_(self.weight, 0.0, std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        heads = x.unflatten(-1, (self.num_heads, -1))  # (..., NH, in/NH)
        y = torch.einsum("...hi,hoi->...ho", heads, self.weight).flatten(-2)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, num_heads={self.num_heads}, bias={self.bias is not None}"
