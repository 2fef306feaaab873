"""The sLSTM layer of the xLSTM paper (fig. 10, "post up-projection" block's core), streaming with its state.

    x_c        = SiLU(conv(x))                          causal convolution, feeds only i and f
    ĩ, f̃      = W_i x_c, W_f x_c                       head-wise maps, one DH×DH block per head
    z̃, õ      = W_z x,   W_o x
    h          = sLSTM(ĩ, f̃, z̃, õ)                     exponential gating, normalizer, stabilizer,
                                                        memory mixing within heads (`lstmkit.nn.slstm`)
    y          = HeadNorm(h)

The state is (convolution state or None, sLSTMState(h, c, n, m)); a fresh one is all zeros.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn.lm_inputs import valid_mask
from lstmkit.nn.parts.causal_conv import CausalConv1d
from lstmkit.nn.parts.headwise_linear import HeadwiseLinear
from lstmkit.nn.parts.init import small_init_std
from lstmkit.nn.parts.norms import HeadNorm
from lstmkit.nn.slstm import slstm, slstm_step, sLSTMCell, sLSTMState
from lstmkit.nn.state_check import check_state_tensors


class sLSTMLayerState(NamedTuple):
    conv: Tensor | None
    """The last K-1 inputs of the convolution (B, K-1, E); None without a convolution."""
    cell: sLSTMState
    """h, c, n, m, each (B, E)."""


def forget_bias_schedule(head_size: int, block_index: int, num_blocks: int) -> Tensor:
    """The authors' "powerlaw_blockdependent" forget-gate bias of one head: 5 - 12 · (j / (DH-1))^p,
    p = 0.3 + 1.3 · block_index / (num_blocks - 1); from +5 (long memory) down to -7, steeper higher up."""
    ratio = block_index / (num_blocks - 1) if num_blocks > 1 else 0.0
    position = torch.arange(head_size) / max(head_size - 1, 1)
    return 5.0 - 12.0 * position ** (0.3 + 1.3 * ratio)


class sLSTMLayer(nn.Module):
    """forward(x (B, T, E), state=None, *, reset=None, lengths=None) -> (y (B, T, E), sLSTMLayerState)."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int = 4,
        conv_kernel: int = 4,
        dropout: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if embedding_dim % num_heads:
            raise ValueError(f"embedding_dim {embedding_dim} is not divisible by num_heads {num_heads}")
        kw = {"device": device, "dtype": dtype}
        self.embedding_dim, self.num_heads = embedding_dim, num_heads
        self.conv = CausalConv1d(embedding_dim, conv_kernel, **kw) if conv_kernel > 0 else None
        E = embedding_dim
        self.igate, self.fgate, self.zgate, self.ogate = (HeadwiseLinear(E, E, num_heads, **kw) for _ in "ifzo")
        self.cell = sLSTMCell(E, num_heads, **kw)
        self.outnorm = HeadNorm(E, num_heads, **kw)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self, num_blocks: int = 1, block_index: int = 0) -> None:
        """The xLSTM authors' initialisation, with E the embedding width:

        igate, fgate, zgate, ogate: N(0, 2/(5E))   R: 0   b: 0 except the forget gate, per head
        `forget_bias_schedule(DH, block_index, num_blocks)`   outnorm: 1   conv: U(±1/√K).
        """
        small = small_init_std(self.embedding_dim)
        for gate in (self.igate, self.fgate, self.zgate, self.ogate):
            gate.reset_parameters(std=small)
        E, DH = self.embedding_dim, self.embedding_dim // self.num_heads
        with torch.no_grad():
            self.cell.R.zero_()
            self.cell.b.zero_()
            self.cell.b[E : 2 * E] = forget_bias_schedule(DH, block_index, num_blocks).repeat(self.num_heads)
        self.outnorm.reset_parameters()
        if self.conv is not None:
            self.conv.reset_parameters()

    def empty_state(self, batch: int, like: Tensor) -> sLSTMLayerState:
        conv = None if self.conv is None else self.conv.empty_state(batch, like)
        return sLSTMLayerState(conv, sLSTMState.zeros(batch, self.embedding_dim, like))

    def check_state(self, state: object, batch: int, like: Tensor, where: str = "sLSTM layer") -> None:
        if not isinstance(state, sLSTMLayerState) or not isinstance(state.cell, sLSTMState):
            raise ValueError(f"{where} state is a {type(state).__name__}, expected an sLSTMLayerState(conv, cell)")
        if self.conv is None and state.conv is not None:
            raise ValueError(f"{where} has no convolution, but the state carries a convolution state")
        if self.conv is not None:
            self.conv.check_state(state.conv, batch, like, where)
        shapes = dict.fromkeys("hcnm", (batch, self.embedding_dim))
        check_state_tensors(f"{where} state.cell.", state.cell, shapes, like)

    def forward(
        self,
        x: Tensor,
        state: sLSTMLayerState | None = None,
        *,
        reset: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, sLSTMLayerState]:
        B, T, _ = x.shape
        if state is None:
            state = self.empty_state(B, x)
        else:
            self.check_state(state, B, x)
        conv_state = None
        x_c = x
        if self.conv is not None:
            x_c, conv_state = self.conv(x, state.conv, reset=reset, lengths=lengths)
            x_c = F.silu(x_c)
        gates = torch.cat([self.igate(x_c), self.fgate(x_c), self.zgate(x), self.ogate(x)], dim=-1)  # (B, T, 4E)
        valid = valid_mask(lengths, T, x.device)  # (B, T)
        if T == 1:
            masks = {"reset": None if reset is None else reset[:, 0], "valid": None if valid is None else valid[:, 0]}
            h, cell = slstm_step(gates[:, 0], self.cell.R, self.cell.b, state.cell, **masks)
            h = h[:, None]
        else:
            h, cell = slstm(gates, self.cell.R, self.cell.b, state.cell, reset=reset, valid=valid)
        return self.outnorm(self.dropout(h)), sLSTMLayerState(conv_state, cell)
