"""The residual xLSTM blocks: pre-norm, a recurrent layer, the skip connection (xLSTM paper, figs. 10-11).

    mLSTM block:  x ← x + mLSTMLayer(LayerNorm(x))
    sLSTM block:  x ← x + sLSTMLayer(LayerNorm(x));   x ← x + FeedForward(LayerNorm(x))
    FeedForward:  g, u = split(W_up x);   y = W_down (act(g) ⊙ u)          gated, width ffn_inner_size

Each block streams: forward(x, state=None, *, reset=None, lengths=None) -> (x, state).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn.parts.init import small_init_std, wang_init_std
from lstmkit.nn.parts.norms import LayerNorm
from lstmkit.nn.xlstm.config import xLSTMConfig
from lstmkit.nn.xlstm.mlstm_layer import mLSTMLayer, mLSTMLayerState
from lstmkit.nn.xlstm.slstm_layer import sLSTMLayer, sLSTMLayerState

ACTIVATION_FUNCTIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "relu^2": lambda x: F.relu(x).square(),
    "sigmoid": torch.sigmoid,
    "swish": F.silu,
    "selu": F.selu,
}


class FeedForward(nn.Module):
    """The gated feed-forward of the sLSTM block: y = W_down (act(W_g x) ⊙ W_u x)."""

    def __init__(
        self,
        embedding_dim: int,
        inner_size: int,
        activation: str = "gelu",
        bias: bool = False,
        dropout: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.embedding_dim, self.inner_size, self.activation = embedding_dim, inner_size, activation
        self.act = ACTIVATION_FUNCTIONS[activation]
        self.proj_up = nn.Linear(embedding_dim, 2 * inner_size, bias=bias, device=device, dtype=dtype)  # [g | u]
        self.proj_down = nn.Linear(inner_size, embedding_dim, bias=bias, device=device, dtype=dtype)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self, num_blocks: int = 1) -> None:
        """proj_up: N(0, 2/(5E)); proj_down: N(0, (2 / num_blocks / √E)²); biases 0."""
        nn.init.normal_(self.proj_up.weight, 0.0, small_init_std(self.embedding_dim))
        nn.init.normal_(self.proj_down.weight, 0.0, wang_init_std(self.embedding_dim, num_blocks))
        for linear in (self.proj_up, self.proj_down):
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        g, u = self.proj_up(x).chunk(2, dim=-1)
        return self.dropout(self.proj_down(self.act(g) * u))


class mLSTMBlock(nn.Module):
    def __init__(self, config: xLSTMConfig, index: int, device=None, dtype=None) -> None:
        super().__init__()
        self.num_blocks, self.index = config.num_blocks, index
        E = config.embedding_dim
        self.norm = LayerNorm(E, device=device, dtype=dtype)
        self.layer = mLSTMLayer(
            E,
            config.mlstm_inner_size,
            num_heads=config.mlstm_heads,
            conv_kernel=config.mlstm_conv_kernel,
            qkv_blocksize=config.qkv_blocksize,
            bias=config.bias,
            dropout=config.dropout,
            chunk_size=config.chunk_size,
            device=device,
            dtype=dtype,
        )

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.layer.reset_parameters(self.num_blocks)

    def forward(
        self,
        x: Tensor,
        state: mLSTMLayerState | None = None,
        *,
        reset: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, mLSTMLayerState]:
        y, state = self.layer(self.norm(x), state, reset=reset, lengths=lengths)
        return x + y, state


class sLSTMBlock(nn.Module):
    def __init__(self, config: xLSTMConfig, index: int, device=None, dtype=None) -> None:
        super().__init__()
        self.num_blocks, self.index = config.num_blocks, index
        E = config.embedding_dim
        self.norm = LayerNorm(E, device=device, dtype=dtype)
        self.layer = sLSTMLayer(
            E,
            num_heads=config.slstm_heads,
            conv_kernel=config.slstm_conv_kernel,
            dropout=config.dropout,
            device=device,
            dtype=dtype,
        )
        self.ffn_norm = LayerNorm(E, device=device, dtype=dtype)
        self.ffn = FeedForward(
            E,
            config.ffn_inner_size,
            activation=config.ffn_activation,
            bias=config.bias,
            dropout=config.dropout,
            device=device,
            dtype=dtype,
        )

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.layer.reset_parameters(self.num_blocks, self.index)
        self.ffn_norm.reset_parameters()
        self.ffn.reset_parameters(self.num_blocks)

    def forward(
        self,
        x: Tensor,
        state: sLSTMLayerState | None = None,
        *,
        reset: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, sLSTMLayerState]:
        y, state = self.layer(self.norm(x), state, reset=reset, lengths=lengths)
        x = x + y
        return x + self.ffn(self.ffn_norm(x)), state
