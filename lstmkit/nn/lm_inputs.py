"""What both language models (`xLSTMLM`, `xLSTMLarge`) accept, checked with messages that say what is wrong.

tokens   (B, T) integer ids in [0, vocab_size); B = 0 or T = 0 give empty logits and the state unchanged
state    an LMState from the same model configuration (or None: a fresh start)
lengths  (B,) integers in [0, T]: right padding; positions ≥ lengths[b] leave the state untouched
         (their logits are computed but meaningless)
reset    (B, T) bool: token t starts a new document; the recurrent and convolution states are
         emptied before it, as if that row started afresh there
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.nn.masks import check_mask


class LMState(NamedTuple):
    blocks: tuple
    """One state per block, bottom to top (mLSTMLayerState, sLSTMLayerState or mLSTMState)."""


def check_tokens(tokens: object, vocab_size: int) -> Tensor:
    """`check_token_ids`, and at least one time step (a prompt to continue)."""
    tokens = check_token_ids(tokens, vocab_size)
    if tokens.shape[1] == 0:
        raise ValueError("tokens has 0 time steps, expected at least 1")
    return tokens


def check_token_ids(tokens: object, vocab_size: int) -> Tensor:
    """(B, T) integer ids in [0, vocab_size), any B and T, as a LongTensor."""
    if not isinstance(tokens, Tensor):
        raise TypeError(f"tokens is a {type(tokens).__name__}, expected a LongTensor of shape (B, T)")
    if tokens.dim() != 2:
        raise ValueError(f"tokens has shape {tuple(tokens.shape)}, expected (B, T)")
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool or tokens.is_complex():
        raise ValueError(f"tokens has dtype {tokens.dtype}, expected an integer dtype (token ids)")
    if tokens.numel():
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"token id {bad} is out of range, expected ids in [0, {vocab_size})")
    return tokens.long()


def check_masks(lengths: object, reset: object, batch: int, steps: int) -> None:
    if lengths is not None:
        if not isinstance(lengths, Tensor) or lengths.shape != (batch,) or lengths.dtype.is_floating_point:
            got = f"{tuple(lengths.shape)} {lengths.dtype}" if isinstance(lengths, Tensor) else type(lengths).__name__
            raise ValueError(f"lengths is {got}, expected an integer tensor of shape ({batch},)")
        if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > steps):
            raise ValueError(f"lengths range over [{int(lengths.min())}, {int(lengths.max())}], expected [0, {steps}]")
    check_mask("reset", reset, (batch, steps), "(B, T)")


def valid_mask(lengths: Tensor | None, steps: int, device) -> Tensor | None:
    """(B,) lengths -> (B, T) bool, True inside each row (right padding); None when lengths is None."""
    return None if lengths is None else torch.arange(steps, device=device) < lengths[:, None]


def run_blocks(blocks, x: Tensor, state: LMState | None, lengths: Tensor | None, reset: Tensor | None):
    """Check the inputs, run every block bottom to top with its state: (B, T, E) -> (B, T, E), LMState."""
    B, T, _ = x.shape
    check_masks(lengths, reset, B, T)
    if state is not None:
        check_state(state, blocks, B, x)
    block_states = [None] * len(blocks) if state is None else state.blocks
    new_states = []
    for block, block_state in zip(blocks, block_states, strict=True):
        x, block_state = block(x, block_state, reset=reset, lengths=lengths)
        new_states.append(block_state)
    return x, LMState(tuple(new_states))


def check_state(state: object, blocks, batch: int, like: Tensor) -> None:
    """Each block's layer checks its own part (`check_state` of sLSTMLayer, mLSTMLayer, LargeMLSTMLayer); the
    message names the block."""
    if not isinstance(state, LMState):
        raise ValueError(f"state is a {type(state).__name__}, expected the LMState a previous call returned")
    if len(state.blocks) != len(blocks):
        raise ValueError(
            f"state has {len(state.blocks)} block states, expected {len(blocks)}: it comes from a "
            "model with a different configuration"
        )
    for index, (block, block_state) in enumerate(zip(blocks, state.blocks, strict=True)):
        block.layer.check_state(block_state, batch, like, f"block {index} ({type(block).__name__})")
