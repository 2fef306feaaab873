"""The temporal order problem: classify a long sequence by the order in which two (or three) rare symbols appear.

Source: Hochreiter & Schmidhuber 1997 ("Long short-term memory"), experiment 6a (two relevant symbols,
4 classes) and 6b (three relevant symbols, 8 classes). The paper's sequences are 100 to 110 long; here
every sequence has exactly `length` tokens (lengths = None), and the paper's windows are scaled to it.

Tokens (vocab_size 8):
    0 a, 1 b, 2 c, 3 d   distractors
    4 X, 5 Y             the relevant symbols
    6 B                  start marker, always at position 0
    7 E                  end marker, always at position T - 1

    x  (B, T) long, T = length: B, then distractors drawn uniformly from {a, b, c, d}, except at
       num_symbols positions that hold X or Y (each drawn uniformly), then E. The k-th relevant symbol
       sits at a uniform position inside window k (inclusive bounds, positions counted from 0, w(p) = T·p // 100):
           num_symbols 2:  [w(10), w(20)], [w(50), w(60)]                  (T = 100: [10, 20], [50, 60])
           num_symbols 3:  [w(10), w(20)], [w(33), w(43)], [w(66), w(76)]  (T = 100: as in the paper)
    y  (B,) long: the order as a binary number, X = 0 and Y = 1, the first relevant symbol the most
       significant bit: 2 symbols XX=0, XY=1, YX=2, YY=3 (the paper's Q, R, S, U); 3 symbols 0 (all X) to 7 (all Y).
    lengths, mask: None.

kind "classify", vocab_size 8, num_outputs 2 ** num_symbols. All splits draw from the same distribution.
"""

from __future__ import annotations

import torch

from lstmkit.tasks.base import MAX_LENGTH, Batch, TaskSpec, check_batch_size, check_int, check_split, shown

DISTRACTORS = (0, 1, 2, 3)
X, Y, START, END = 4, 5, 6, 7
VOCAB_SIZE = 8
WINDOWS_PERCENT = {2: ((10, 20), (50, 60)), 3: ((10, 20), (33, 43), (66, 76))}
"""The windows of the relevant symbols, in percent of the length (the paper's positions at T = 100)."""


def windows(length: int, num_symbols: int) -> list[tuple[int, int]]:
    """Inclusive [first, last] positions of each relevant symbol for a sequence of `length` tokens."""
    return [(length * lo // 100, length * hi // 100) for lo, hi in WINDOWS_PERCENT[num_symbols]]


def temporal_order_class(tokens: list[int]) -> int:
    """Reference: read the relevant symbols (X, Y) left to right as binary digits, X = 0, Y = 1."""
    label = 0
    for token in tokens:
        if token in (X, Y):
            label = 2 * label + (token == Y)
    return label


class TemporalOrder:
    """Distractor sequences with `num_symbols` X/Y symbols in fixed windows; the class is their order."""

    def __init__(self, *, length: int = 100, num_symbols: int = 2) -> None:
        check_int("length", length, 10, MAX_LENGTH)  # from 10 on, the windows are disjoint and clear of B and E
        if isinstance(num_symbols, bool) or not isinstance(num_symbols, int) or num_symbols not in WINDOWS_PERCENT:
            raise ValueError(
                f"num_symbols is {shown(num_symbols)}, expected 2 or 3 (the paper's experiments 6a and 6b)"
            )
        self.length = length
        self.num_symbols = num_symbols
        self.spec = TaskSpec(name="temporal-order", kind="classify", num_outputs=2**num_symbols, vocab_size=VOCAB_SIZE)

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        check_batch_size(batch_size, self.length)
        check_split(split)
        B, T = batch_size, self.length
        x = torch.randint(0, len(DISTRACTORS), (B, T), generator=generator)  # (B, T) a..d
        x[:, 0] = START
        x[:, -1] = END
        y = torch.zeros(B, dtype=torch.long)
        rows = torch.arange(B)
        for lo, hi in windows(T, self.num_symbols):
            position = torch.randint(lo, hi + 1, (B,), generator=generator)  # (B,)
            is_y = torch.randint(0, 2, (B,), generator=generator)  # (B,) 0 = X, 1 = Y
            x[rows, position] = X + is_y
            y = 2 * y + is_y
        return Batch(x=x, y=y)
