"""The copy (long-time-lag recall) task: read a few symbols, wait through a long blank stretch, then write them back.

Source: the "copying memory" task of Arjovsky, Shah & Bengio 2016 (unitary RNNs), after the long-time-lag
experiments of Hochreiter & Schmidhuber 1997. Their sequence with lag T is this one with length = T - 1.

Tokens (vocab_size = num_symbols + 2):  0 blank,  1 .. num_symbols the symbols,  num_symbols + 1 the delimiter.
With K = copy_length and T_total = 2·K + length + 1:

    x  (B, T_total) long:  s_1 .. s_K (uniform symbols),  `length` blanks,  the delimiter,  K blanks.
    y  (B, T_total) long:  s_1 .. s_K at the last K positions (the K steps after the delimiter), blank (0)
       everywhere else.
    mask (B, T_total) bool: true only at the last K positions, so only the recall is scored.
    lengths: None.

kind "tag", vocab_size = num_outputs = num_symbols + 2 (targets are input token ids). All splits draw from
the same distribution.
"""

from __future__ import annotations

import torch

from lstmkit.tasks.base import MAX_LENGTH, MAX_VOCAB_SIZE, Batch, TaskSpec, check_batch_size, check_int, check_split

BLANK = 0


class CopyRecall:
    """copy_length symbols, `length` blanks, a delimiter; then the model must output the symbols in order."""

    def __init__(self, *, length: int = 100, num_symbols: int = 8, copy_length: int = 10) -> None:
        check_int("length", length, 0, MAX_LENGTH)
        check_int("num_symbols", num_symbols, 1, MAX_VOCAB_SIZE - 2)
        check_int("copy_length", copy_length, 1, MAX_LENGTH)
        self.length = length
        self.num_symbols = num_symbols
        self.copy_length = copy_length
        self.delimiter = num_symbols + 1
        vocab_size = num_symbols + 2
        self.spec = TaskSpec(name="copy", kind="tag", num_outputs=vocab_size, vocab_size=vocab_size)

    @property
    def total_length(self) -> int:
        """T_total = 2 · copy_length + length + 1: symbols, blanks, delimiter, recall steps."""
        return 2 * self.copy_length + self.length + 1

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        check_batch_size(batch_size, self.total_length)
        check_split(split)
        B, K, T = batch_size, self.copy_length, self.total_length
        symbols = torch.randint(1, self.num_symbols + 1, (B, K), generator=generator)  # (B, K)
        x = torch.full((B, T), BLANK, dtype=torch.long)
        x[:, :K] = symbols
        x[:, K + self.length] = self.delimiter
        y = torch.full((B, T), BLANK, dtype=torch.long)
        y[:, T - K :] = symbols
        mask = torch.zeros(B, T, dtype=torch.bool)
        mask[:, T - K :] = True
        return Batch(x=x, y=y, mask=mask)
