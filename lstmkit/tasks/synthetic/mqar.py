"""Multi-query associative recall (MQAR): read key-value pairs, then answer queries for the keys.

Source: Arora et al. 2023 ("Zoology: measuring and improving recall in efficient language models"), as used
by Beck et al. 2024 (xLSTM) with (length, num_pairs) = (64, 4), (128, 8), (256, 16). As in Zoology, keys come
from the lower half of the vocabulary and values from the upper half, each without repetition within a row.
Unlike Zoology, query positions are uniform (not power-law gaps) and the value is not echoed after its query
(for a causal model the echo never helps: the answer is due at the query itself).

Tokens (vocab_size V):  0 padding,  1 .. V//2 - 1 keys,  V//2 .. V - 1 values.  With K = num_pairs, T = length:

    x    (B, T) long:  k_1 v_1 k_2 v_2 ... k_K v_K (keys distinct, values distinct), then T - 2K positions of
         padding in which K distinct uniform positions each hold one query: every key exactly once, so the
         queries come in random order.
    y    (B, T) long:  at a query for key k_j, its value v_j; 0 elsewhere (never scored).
    mask (B, T) bool:  true only at the K query positions.
    lengths: None.

kind "tag", vocab_size = num_outputs = V (targets are value token ids). All splits draw from the same distribution.
"""

from __future__ import annotations

import torch

from lstmkit.tasks.base import (
    MAX_LENGTH,
    MAX_VOCAB_SIZE,
    Batch,
    TaskSpec,
    check_batch_size,
    check_int,
    check_split,
    shown,
)

PAD = 0
PRESETS = ((64, 4), (128, 8), (256, 16))
"""(length, num_pairs) of the xLSTM paper's MQAR runs."""


def _distinct(B: int, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(B, k) long: per row, k distinct integers from [0, n), in random order."""
    return torch.rand(B, n, generator=generator).argsort(dim=1)[:, :k]


class MQAR:
    """num_pairs key-value pairs, then one query per key scattered in the padding; answer with the key's value."""

    def __init__(self, *, length: int = 64, num_pairs: int = 4, vocab_size: int = 256) -> None:
        check_int("num_pairs", num_pairs, 1)
        if isinstance(length, bool) or not isinstance(length, int) or length < 3 * num_pairs:
            raise ValueError(
                f"length is {shown(length)}, expected an integer >= 3 · num_pairs = {3 * num_pairs} "
                "(the pairs take 2 · num_pairs positions, the queries num_pairs more)"
            )
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2 * num_pairs + 2:
            raise ValueError(
                f"vocab_size is {shown(vocab_size)}, expected an integer >= 2 · num_pairs + 2 = "
                f"{2 * num_pairs + 2} (num_pairs distinct keys in 1 .. vocab_size // 2 - 1)"
            )
        check_int("length", length, 3 * num_pairs, MAX_LENGTH)
        check_int("vocab_size", vocab_size, 2 * num_pairs + 2, MAX_VOCAB_SIZE)
        self.length = length
        self.num_pairs = num_pairs
        self.vocab_size = vocab_size
        self.spec = TaskSpec(name="mqar", kind="tag", num_outputs=vocab_size, vocab_size=vocab_size)

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        check_batch_size(batch_size, max(self.length, self.vocab_size // 2))  # _distinct draws V//2 numbers a row
        check_split(split)
        B, T, K, V = batch_size, self.length, self.num_pairs, self.vocab_size
        half = V // 2
        keys = 1 + _distinct(B, half - 1, K, generator)  # (B, K) in [1, V//2)
        values = half + _distinct(B, V - half, K, generator)  # (B, K) in [V//2, V)
        queries = 2 * K + _distinct(B, T - 2 * K, K, generator)  # (B, K) positions
        rows = torch.arange(B)[:, None]  # (B, 1)
        x = torch.full((B, T), PAD, dtype=torch.long)
        x[:, 0 : 2 * K : 2] = keys
        x[:, 1 : 2 * K : 2] = values
        x[rows, queries] = keys
        y = torch.zeros(B, T, dtype=torch.long)
        y[rows, queries] = values
        mask = torch.zeros(B, T, dtype=torch.bool)
        mask[rows, queries] = True
        return Batch(x=x, y=y, mask=mask)
