"""The two formats of the context-free and context-sensitive formal-language tasks (context_free.py,
context_sensitive.py): one answer at a query token, as the regular tasks of formal.py have it, or a sequence
of answers written on blank tokens after the query.

With S the number of word symbols the tokens are 0 .. S-1 the symbols, S the query, then (sequence answers
only) S + 1 the blank, and last the padding (S + 1, or S + 2 with blanks). A row holds a word w of length L:

    one answer      x = w_1 .. w_L, query, padding            mask true at the query (position L)
    K answers       x = w_1 .. w_L, query, blank × K, padding  mask true at the K blanks (positions L+1 .. L+K)

y holds the answer ids (not token ids) where the mask is true, 0 elsewhere; lengths = L + 1 (one answer) or
L + 1 + K. The model reads the blanks and writes the whole answer without seeing any of it (Delétang et al.'s
non-autoregressive setting). K is the answer's length; where that depends on more than L (the answer ends
with an end symbol), the number of blanks tells a causal model nothing, since the row's end lies ahead of
every scored position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from lstmkit.tasks.base import MAX_LENGTH, Batch, TaskSpec, check_batch_size, check_int, check_split


class LengthRanges(Protocol):
    min_length: int
    max_length: int
    test_min_length: int
    test_max_length: int


def check_lengths(
    min_length: int,
    max_length: int,
    test_min_length: int,
    test_max_length: int,
    shortest: int = 1,
    why: str = "",
) -> None:
    """Raise unless both ranges are integers in [shortest, MAX_LENGTH] with max >= min; `why` says what needs
    `shortest` symbols (it ends the error line)."""
    given = {
        "min_length": min_length,
        "max_length": max_length,
        "test_min_length": test_min_length,
        "test_max_length": test_max_length,
    }
    for name, value in given.items():
        check_int(name, value, 1, MAX_LENGTH)
        if value < shortest:
            raise ValueError(f"{name} is {value}, expected an integer >= {shortest} ({why})")
    if max_length < min_length:
        raise ValueError(f"max_length is {max_length}, expected >= min_length ({min_length})")
    if test_max_length < test_min_length:
        raise ValueError(f"test_max_length is {test_max_length}, expected >= test_min_length ({test_min_length})")


class WordTask:
    """What every task here shares: the four length arguments, checked and kept (a curriculum rebuilds a task from
    them), and a "tag" spec from the class's NAME, OUTPUTS (answer ids) and VOCAB (token ids); SHORTEST is the
    shortest word the task can make and WHY says what needs it."""

    NAME: str
    OUTPUTS: int
    VOCAB: int
    SHORTEST, WHY = 1, ""

    def __init__(
        self, *, min_length: int = 3, max_length: int = 40, test_min_length: int = 40, test_max_length: int = 256
    ) -> None:
        check_lengths(min_length, max_length, test_min_length, test_max_length, self.SHORTEST, self.WHY)
        self.min_length, self.max_length = min_length, max_length
        self.test_min_length, self.test_max_length = test_min_length, test_max_length
        self.spec = TaskSpec(name=self.NAME, kind="tag", num_outputs=self.OUTPUTS, vocab_size=self.VOCAB)


def draw_lengths(
    task: LengthRanges, batch_size: int, split: str, row_length: Callable[[int], int], generator: torch.Generator
) -> Tensor:
    """Word lengths L (B,) uniform in the split's range, once batch_size and split are checked; row_length(L) is
    the longest row a word of length L makes (word, query and blanks)."""
    check_split(split)
    lo, hi = (task.test_min_length, task.test_max_length) if split == "test" else (task.min_length, task.max_length)
    check_batch_size(batch_size, row_length(hi))
    return torch.randint(lo, hi + 1, (batch_size,), generator=generator)


def word_positions(word_lengths: Tensor) -> Tensor:
    """(B, Lmax) bool: true inside each row's word."""
    return torch.arange(int(word_lengths.max())) < word_lengths[:, None]


def _place_words(words: Tensor, word_lengths: Tensor, T: int, pad: int) -> Tensor:
    """(B, T) padding with each row's word (the first L tokens of its row of `words`) at the start."""
    Lmax = int(word_lengths.max())
    x = torch.full((words.shape[0], T), pad, dtype=torch.long)
    x[:, :Lmax] = torch.where(word_positions(word_lengths), words[:, :Lmax], pad)
    return x


def one_answer_batch(
    words: Tensor, word_lengths: Tensor, answer: Callable[[list[int]], int], num_symbols: int
) -> Batch:
    """Words (B, >= Lmax), each row's first L tokens its word, each followed by the query; the answer at the
    query."""
    query, pad = num_symbols, num_symbols + 1
    answers = [answer(row[:n]) for row, n in zip(words.tolist(), word_lengths.tolist(), strict=True)]  # row by row
    lengths = word_lengths + 1  # (B,) word + query
    T = int(lengths.max())
    x = _place_words(words, word_lengths, T, pad)  # (B, T)
    rows = torch.arange(words.shape[0])
    x[rows, word_lengths] = query
    mask = torch.arange(T) == word_lengths[:, None]  # (B, T) the query only
    y = torch.zeros_like(x)
    y[rows, word_lengths] = torch.tensor(answers, dtype=torch.long)
    return Batch(x=x, y=y, lengths=lengths, mask=mask)


def answers_batch(
    words: Tensor, word_lengths: Tensor, answer: Callable[[list[int]], list[int]], num_symbols: int
) -> Batch:
    """Words (B, >= Lmax), each row's first L tokens its word, each followed by the query and one blank per
    answer symbol; the answer's symbols on the blanks."""
    query, blank, pad = num_symbols, num_symbols + 1, num_symbols + 2
    answers = [answer(row[:n]) for row, n in zip(words.tolist(), word_lengths.tolist(), strict=True)]  # row by row
    K = torch.tensor([len(symbols) for symbols in answers], dtype=torch.long)  # (B,) answer lengths
    lengths = word_lengths + 1 + K  # (B,) word + query + blanks
    T = int(lengths.max())
    x = _place_words(words, word_lengths, T, pad)  # (B, T)
    x[torch.arange(words.shape[0]), word_lengths] = query
    positions = torch.arange(T)
    mask = (positions > word_lengths[:, None]) & (positions < lengths[:, None])  # (B, T) the blanks
    x[mask] = blank
    y = torch.zeros_like(x)
    y[mask] = torch.tensor([symbol for symbols in answers for symbol in symbols], dtype=torch.long)  # row-major
    return Batch(x=x, y=y, lengths=lengths, mask=mask)


def nonzero_bits(inside: Tensor, generator: torch.Generator) -> Tensor:
    """(B, N) uniform bits, redrawn row by row until every row has a 1 inside its `inside` (B, N) positions: a
    binary number uniform in [1, 2^n - 1] for a row of n positions (rows with no position stay as drawn)."""
    bits = torch.randint(0, 2, inside.shape, generator=generator)
    zero = ~(bits.bool() & inside).any(dim=1) & inside.any(dim=1)  # (B,)
    while bool(zero.any()):
        bits[zero] = torch.randint(0, 2, (int(zero.sum()), inside.shape[1]), generator=generator)
        zero = ~(bits.bool() & inside).any(dim=1) & inside.any(dim=1)
    return bits
