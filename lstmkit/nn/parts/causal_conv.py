"""Causal depthwise convolution over time, with its state, for the xLSTM blocks.

    y_t = b + Σ_{j=0}^{K-1} w_j ⊙ x_{t-K+1+j}        (w_{K-1} multiplies the current input)

Each feature has its own K taps (depthwise). The state is the last K-1 inputs (B, K-1, D), oldest
first; a fresh sequence starts from zeros, which is what zero padding on the left gives. Streaming
a sequence in pieces with the state carried gives the same outputs as running it whole.

`reset[b, t]` (bool): token t starts a new document, so the taps of later tokens do not reach back
across it (earlier inputs count as zeros). `lengths[b]`: right padding; the returned state is the
last K-1 inputs before the padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalConv1d(nn.Module):
    """forward(x (B, T, D), state=None, *, reset=None, lengths=None) -> (y (B, T, D), state (B, K-1, D))."""

    def __init__(self, size: int, kernel_size: int = 4, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size is {kernel_size}, expected at least 1")
        self.size, self.kernel_size = size, kernel_size
        self.weight = nn.Parameter(torch.empty(size, kernel_size, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(size, device=device, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight and bias ~ U(-1/√K, 1/√K): `torch.nn.Conv1d`'s default for a depthwise kernel."""
        bound = 1 / math.sqrt(self.kernel_size)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def empty_state(self, batch: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch, self.kernel_size - 1, self.size)

    def check_state(self, state: Tensor, batch: int, like: Tensor, where: str) -> None:
        expected = (batch, self.kernel_size - 1, self.size)
        if not isinstance(state, Tensor) or tuple(state.shape) != expected or state.dtype != like.dtype:
            got = f"{tuple(state.shape)} {state.dtype}" if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"{where} convolution state is {got}, expected {expected} {like.dtype}")

    def forward(
        self, x: Tensor, state: Tensor | None = None, *, reset: Tensor | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        B, K = x.shape[0], self.kernel_size
        history = self.empty_state(B, x) if state is None else state
        if x.shape[1] == 0:  # no steps: no output, the state unchanged
            return x.new_zeros(x.shape), history
        xp = torch.cat([history, x], dim=1)  # (B, K-1+T, D): position t of x is xp[:, t + K - 1]
        segment = None
        if reset is None and x.shape[1] == 1:  # one step (generation): a dot product per feature, no conv setup
            y = (xp * self.weight.t()).sum(1, keepdim=True)  # (B, 1, D); einsum's setup costs more here
            y = y if self.bias is None else y + self.bias
        elif reset is None:  # K fused multiply-adds in (B, T, D): measured 1.5x faster than F.conv1d's (B, D, T)
            y = self.taps(xp)  # forward and backward, and what follows reads a contiguous y
        else:
            segment = F.pad(reset.long().cumsum(1), (K - 1, 0))  # (B, K-1+T); the carried inputs are segment 0
            y = self.taps(xp, segment)
        return y, self.final_state(xp, segment, lengths)

    def taps(self, xp: Tensor, segment: Tensor | None = None) -> Tensor:
        """The definition as a sum over taps, each masked to the current token's document when segments are given."""
        K, T = self.kernel_size, xp.shape[1] - self.kernel_size + 1
        if segment is None:
            y = (
                xp[:, K - 1 :] * self.weight[:, K - 1]
                if self.bias is None
                else torch.addcmul(self.bias, xp[:, K - 1 :], self.weight[:, K - 1])
            )
            for j in range(K - 1):
                y = torch.addcmul(y, xp[:, j : j + T], self.weight[:, j])
            return y
        here = segment[:, K - 1 :]  # (B, T)
        y = xp.new_zeros(()) if self.bias is None else self.bias
        for j in range(K):
            same_document = (segment[:, j : j + T] == here)[..., None]
            y = y + self.weight[:, j] * xp[:, j : j + T] * same_document
        return y

    def final_state(self, xp: Tensor, segment: Tensor | None, lengths: Tensor | None) -> Tensor:
        """The last K-1 inputs before the padding, zeroed where they precede the last document start."""
        K, T = self.kernel_size, xp.shape[1] - self.kernel_size + 1
        if lengths is None:
            lengths = torch.full((xp.shape[0],), T, device=xp.device)
            if segment is None:
                return xp[:, T:]
        slots = lengths[:, None] + torch.arange(K - 1, device=xp.device)  # (B, K-1) indices into xp
        state = xp.gather(1, slots[..., None].expand(-1, -1, xp.shape[-1]))
        if segment is None or K == 1:
            return state
        last = segment.gather(1, lengths[:, None] + K - 2)  # the last kept input's document
        return state * (segment.gather(1, slots) == last)[..., None]

    def extra_repr(self) -> str:
        return f"{self.size}, kernel_size={self.kernel_size}, bias={self.bias is not None}"
