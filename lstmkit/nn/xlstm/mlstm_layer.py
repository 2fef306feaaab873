"""The mLSTM layer of the xLSTM paper (fig. 11, "pre up-projection"), streaming with its state.

    x_m, z = split(W_up x)                         up-projection into two branches of width I
    x_c    = SiLU(conv(x_m))                       causal depthwise convolution
    q, k   = W_q x_c, W_k x_c     v = W_v x_m      head-wise maps (blocks of 4 features)
    ĩ, f̃  = W_i [q, k, v] + b_i, W_f [q, k, v] + b_f      one gate pair per head
    h̃     = mLSTM(q, k, v, ĩ, f̃)                  matrix memory, NH heads of width I/NH
    y      = W_down ((HeadNorm(h̃) + s ⊙ x_c) ⊙ SiLU(z))    learnable skip s, output gate SiLU(z)

The state is (convolution state, mLSTMState); a fresh one is the empty memory (C = 0, n = 0,
m = -inf: no history at all, the semantics of the authors' parallel kernel and of a document reset).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn.lm_inputs import valid_mask
from lstmkit.nn.mlstm import mlstm_chunkwise, mlstm_step
from lstmkit.nn.mlstm.state import mLSTMState
from lstmkit.nn.parts.causal_conv import CausalConv1d
from lstmkit.nn.parts.headwise_linear import HeadwiseLinear
from lstmkit.nn.parts.init import small_init_std, wang_init_std
from lstmkit.nn.parts.norms import HeadNorm
from lstmkit.nn.state_check import check_state_tensors


class mLSTMLayerState(NamedTuple):
    conv: Tensor
    """The last K-1 inputs of the convolution (B, K-1, I)."""
    cell: mLSTMState
    """The matrix memory: C (B, NH, DH, DH), n (B, NH, DH), m (B, NH)."""


class mLSTMLayer(nn.Module):
    """forward(x (B, T, E), state=None, *, reset=None, lengths=None) -> (y (B, T, E), mLSTMLayerState)."""

    def __init__(
        self,
        embedding_dim: int,
        inner_size: int,
        num_heads: int = 4,
        conv_kernel: int = 4,
        qkv_blocksize: int = 4,
        bias: bool = False,
        dropout: float = 0.0,
        chunk_size: int = 64,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if inner_size % num_heads:
            raise ValueError(f"inner_size {inner_size} is not divisible by num_heads {num_heads}")
        kw = {"device": device, "dtype": dtype}
        self.embedding_dim, self.inner_size, self.num_heads = embedding_dim, inner_size, num_heads
        self.chunk_size = chunk_size
        self.proj_up = nn.Linear(embedding_dim, 2 * inner_size, bias=bias, **kw)
        self.conv = CausalConv1d(inner_size, conv_kernel, **kw)
        blocks = inner_size // qkv_blocksize
        qkv = (HeadwiseLinear(inner_size, inner_size, blocks, bias, **kw) for _ in "qkv")
        self.q_proj, self.k_proj, self.v_proj = qkv
        self.igate = nn.Linear(3 * inner_size, num_heads, **kw)
        self.fgate = nn.Linear(3 * inner_size, num_heads, **kw)
        self.outnorm = HeadNorm(inner_size, num_heads, **kw)
        self.skip = nn.Parameter(torch.empty(inner_size, **kw))
        self.proj_down = nn.Linear(inner_size, embedding_dim, bias=bias, **kw)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @property
    def head_size(self) -> int:
        return self.inner_size // self.num_heads

    def reset_parameters(self, num_blocks: int = 1) -> None:
        """The xLSTM authors' initialisation, with E the embedding width:

        proj_up, q/k/v: N(0, 2/(5E)) ("small init")     proj_down: N(0, (2 / num_blocks / √E)²) ("Wang init")
        igate: weight 0, bias N(0, 0.1²)                 fgate: weight 0, bias linspace(3, 6) over heads
        skip, outnorm: 1; conv: U(±1/√K); linear biases 0.
        """
        small = small_init_std(self.embedding_dim)
        nn.init.normal_(self.proj_up.weight, 0.0, small)
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            proj.reset_parameters(std=small)
        nn.init.normal_(self.proj_down.weight, 0.0, wang_init_std(self.embedding_dim, num_blocks))
        for linear in (self.proj_up, self.proj_down):
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        nn.init.zeros_(self.igate.weight)
        nn.init.normal_(self.igate.bias, 0.0, 0.1)
        nn.init.zeros_(self.fgate.weight)
        with torch.no_grad():
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, self.num_heads))
        nn.init.ones_(self.skip)
        self.outnorm.reset_parameters()
        self.conv.reset_parameters()

    def empty_state(self, batch: int, like: Tensor) -> mLSTMLayerState:
        cell = mLSTMState.empty(batch, self.num_heads, self.head_size, self.head_size, like=like)
        return mLSTMLayerState(self.conv.empty_state(batch, like), cell)

    def check_state(self, state: object, batch: int, like: Tensor, where: str = "mLSTM layer") -> None:
        if not isinstance(state, mLSTMLayerState) or not isinstance(state.cell, mLSTMState):
            raise ValueError(f"{where} state is a {type(state).__name__}, expected an mLSTMLayerState(conv, cell)")
        self.conv.check_state(state.conv, batch, like, where)
        NH, DH = self.num_heads, self.head_size
        shapes = {"C": (batch, NH, DH, DH), "n": (batch, NH, DH), "m": (batch, NH)}
        check_state_tensors(f"{where} state.cell.", state.cell, shapes, like=like)

    def gates(self, qkv: Tensor) -> tuple[Tensor, Tensor]:
        """ĩ, f̃ = W_i [q, k, v] + b_i, W_f [q, k, v] + b_f as one product with the two weights stacked: a
        gate has one column per head, and one (·, 2·NH) product costs about what one (·, NH) product does."""
        weight = torch.cat([self.igate.weight, self.fgate.weight])
        bias = torch.cat([self.igate.bias, self.fgate.bias])
        return F.linear(qkv, weight, bias).split(self.num_heads, dim=-1)

    def forward(
        self,
        x: Tensor,
        state: mLSTMLayerState | None = None,
        *,
        reset: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, mLSTMLayerState]:
        B, T, _ = x.shape
        if state is None:
            state = self.empty_state(B, x)
        else:
            self.check_state(state, B, x)
        x_m, z = self.proj_up(x).chunk(2, dim=-1)  # (B, T, I) each
        x_c, conv_state = self.conv(x_m, state.conv, reset=reset, lengths=lengths)
        x_c = F.silu(x_c)
        q, k, v = self.q_proj(x_c), self.k_proj(x_c), self.v_proj(x_m)
        qkv = torch.cat([q, k, v], dim=-1)
        i, f = self.gates(qkv)  # (B, T, NH) each
        valid = valid_mask(lengths, T, x.device)  # (B, T)
        h, cell = run_mlstm(  # (B, T, I)
            q,
            k,
            v,
            i,
            f,
            state.cell,
            num_heads=self.num_heads,
            eps=1e-6,
            chunk_size=self.chunk_size,
            reset=reset,
            valid=valid,
        )
        h = self.outnorm(h) + self.skip * x_c
        y = self.dropout(self.proj_down(h * F.silu(z)))
        return y, mLSTMLayerState(conv_state, cell)


def run_mlstm(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    *,
    num_heads: int,
    eps: float,
    chunk_size: int,
    reset: Tensor | None,
    valid: Tensor | None,
) -> tuple[Tensor, mLSTMState]:
    """The mLSTM over (B, T, ·) inputs split into heads: one recurrent step when T = 1 (generation), else
    the chunkwise form. q, k, v (B, T, NH·D), i, f (B, T, NH) -> h (B, T, NH·DV), new state."""
    T = q.shape[1]
    if T == 1:
        reset_0, valid_0 = (None if x is None else x[:, 0] for x in (reset, valid))  # (B,)
        heads = [t[:, 0].unflatten(-1, (num_heads, -1)) for t in (q, k, v)]  # (B, NH, D)
        h, state = mlstm_step(*heads, i[:, 0], f[:, 0], state, eps, reset=reset_0, valid=valid_0)
        return h.flatten(-2)[:, None], state  # (B, 1, NH·DV), also for B = 0
    q, k, v = (t.unflatten(-1, (num_heads, -1)).transpose(1, 2) for t in (q, k, v))  # (B, NH, T, D)
    h, state = mlstm_chunkwise(
        q, k, v, i.transpose(1, 2), f.transpose(1, 2), state, eps, chunk_size=chunk_size, reset=reset, valid=valid
    )
    return h.transpose(1, 2).flatten(2), state
