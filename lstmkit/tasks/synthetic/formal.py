"""Formal-language tasks on which xLSTM was tested for length extrapolation: parity, cycle navigation,
even pairs and modular arithmetic without brackets.

Sources: Delétang et al. 2023 ("Neural networks and the Chomsky hierarchy", the regular tasks), as run by
Beck et al. 2024 (xLSTM, appendix: train on lengths 3 to 40, test on 40 to 256). The languages and answers
follow Delétang et al.'s generators; the answer is read out at a query token instead of after the last symbol.

Format (all four tasks). A word w of length L is drawn per row, L uniform in [min_length, max_length] for the
"train" and "valid" splits and in [test_min_length, test_max_length] for "test"; its symbols are uniform.
With S the number of word symbols, the tokens are 0 .. S-1 the symbols, S the query, S + 1 the padding:

    x       (B, T) long: w_1 .. w_L, query, then padding up to T = the longest row of the batch (max lengths).
    lengths (B,) long: L + 1 (the word and its query).
    mask    (B, T) bool: true only at the query position L.
    y       (B, T) long: the answer at the query position, 0 elsewhere (never scored).

kind "tag", vocab_size S + 2, num_outputs = the number of answers (answer ids, not token ids: parity and
even pairs 2, cycle navigation and modular arithmetic 5).

    task                 S  symbols                                answer (the reference function below)
    parity               2  0, 1                                   number of 1s mod 2 (0 = even)
    even-pairs           2  0, 1                                   number of "01" and "10" pairs mod 2 (0 = even)
    cycle-navigation     3  0 left (-1), 1 stay, 2 right (+1)      final position on a cycle of 5, from 0
    modular-arithmetic   8  0-4 numbers, 5 +, 6 -, 7 *            the expression's value mod 5, * before + and -
                                                                   (1 + 2 * 3 = 2; 1 - 1 - 1 = 4)

Modular arithmetic words alternate number, operator, number, ..., so L is odd: it is drawn uniformly among
the odd lengths of the range (Delétang et al. shorten an even length by one instead).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor

from lstmkit.tasks.base import Batch, check_batch_size, check_split
from lstmkit.tasks.synthetic.formal_answers import WordTask

CYCLE = 5
"""Cycle navigation: the number of positions on the cycle."""
MOVES = {0: -1, 1: 0, 2: +1}
"""Cycle navigation: token -> step (Delétang et al.: action - 1)."""
MODULUS = 5
PLUS, MINUS, TIMES = 5, 6, 7
"""Modular arithmetic: the operator tokens (numbers are tokens 0 .. 4)."""


# ---- reference answers: plain Python on a list of word tokens ------------------------------------------------


def parity(word: list[int]) -> int:
    """The number of 1s, mod 2: [1, 0, 1] -> 0, [1, 1, 1] -> 1."""
    return sum(1 for symbol in word if symbol == 1) % 2


def even_pairs(word: list[int]) -> int:
    """The number of adjacent unequal pairs ("01" or "10"), mod 2: [0, 0, 1, 1, 1, 0] -> 0 (one each)."""
    return sum(1 for a, b in itertools.pairwise(word) if a != b) % 2


def cycle_navigation(word: list[int]) -> int:
    """Start at 0 on a cycle of 5 and take each step: [2, 0, 1, 0, 0] (+1 -1 0 -1 -1) -> -2 mod 5 = 3."""
    position = 0
    for action in word:
        position = (position + MOVES[action]) % CYCLE
    return position


def modular_arithmetic(word: list[int]) -> int:
    """Evaluate n0 op1 n1 op2 n2 ... with * before + and -, mod 5: [1, +, 2, *, 3] -> 7 mod 5 = 2."""
    total, sign, term = 0, 1, word[0]  # total of the finished terms; the current term and its sign
    for op, number in zip(word[1::2], word[2::2], strict=True):
        if op == TIMES:
            term = term * number
        else:
            total = total + sign * term
            sign, term = (1 if op == PLUS else -1), number
    return (total + sign * term) % MODULUS


# ---- sampling -------------------------------------------------------------------------------------------------


def _length_range(
    task: Parity | EvenPairs | CycleNavigation | ModularArithmetic, batch_size: int, split: str
) -> tuple[int, int]:
    """The split's word lengths [lo, hi], once batch_size and split are checked (a row holds hi + 1 tokens)."""
    check_split(split)
    lo, hi = (task.test_min_length, task.test_max_length) if split == "test" else (task.min_length, task.max_length)
    check_batch_size(batch_size, hi + 1)
    return lo, hi


def _uniform_words(num_symbols: int) -> Callable[[int, int, torch.Generator], Tensor]:
    def sample(B: int, L: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, num_symbols, (B, L), generator=generator)

    return sample


def _expressions(B: int, L: int, generator: torch.Generator) -> Tensor:
    """Numbers 0 .. 4 at even positions, operators +, -, * at odd positions."""
    numbers = torch.randint(0, MODULUS, (B, L), generator=generator)
    operators = torch.randint(PLUS, TIMES + 1, (B, L), generator=generator)
    is_operator = torch.arange(L) % 2 == 1
    return torch.where(is_operator, operators, numbers)


def _formal_batch(
    batch_size: int,
    generator: torch.Generator,
    word_lengths: Tensor,
    sample_words: Callable[[int, int, torch.Generator], Tensor],
    answer: Callable[[list[int]], int],
    num_symbols: int,
) -> Batch:
    """Words of the given lengths, each followed by the query token and right-padded (see the module docstring)."""
    B = batch_size
    query, pad = num_symbols, num_symbols + 1
    lengths = word_lengths + 1  # (B,) word + query
    T = int(lengths.max())
    x = sample_words(B, T, generator)  # (B, T)
    positions = torch.arange(T)
    x = torch.where(positions < word_lengths[:, None], x, torch.full_like(x, pad))
    rows = torch.arange(B)
    x[rows, word_lengths] = query
    mask = positions == word_lengths[:, None]  # (B, T) the query only
    answers = [answer(x[row, :n].tolist()) for row, n in enumerate(word_lengths.tolist())]  # a row at a time
    y = torch.zeros(B, T, dtype=torch.long)
    y[rows, word_lengths] = torch.tensor(answers, dtype=torch.long)
    return Batch(x=x, y=y, lengths=lengths, mask=mask)


def _uniform_lengths(B: int, lo: int, hi: int, generator: torch.Generator) -> Tensor:
    return torch.randint(lo, hi + 1, (B,), generator=generator)


def _odd_lengths(B: int, lo: int, hi: int, generator: torch.Generator) -> Tensor:
    first, last = lo | 1, hi if hi % 2 == 1 else hi - 1
    return first + 2 * torch.randint(0, (last - first) // 2 + 1, (B,), generator=generator)


# ---- the tasks ------------------------------------------------------------------------------------------------


class Parity(WordTask):
    """Binary words; the answer is the number of 1s mod 2."""

    NAME, OUTPUTS, VOCAB = "parity", 2, 4

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = _uniform_lengths(batch_size, *_length_range(self, batch_size, split), generator)
        return _formal_batch(batch_size, generator, lengths, _uniform_words(2), parity, num_symbols=2)


class EvenPairs(WordTask):
    """Binary words; the answer is the number of "01" and "10" pairs mod 2 (equivalently: first != last)."""

    NAME, OUTPUTS, VOCAB = "even-pairs", 2, 4

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = _uniform_lengths(batch_size, *_length_range(self, batch_size, split), generator)
        return _formal_batch(batch_size, generator, lengths, _uniform_words(2), even_pairs, num_symbols=2)


class CycleNavigation(WordTask):
    """Words of moves (0 left, 1 stay, 2 right); the answer is the final position on a cycle of 5, from 0."""

    NAME, OUTPUTS, VOCAB = "cycle-navigation", CYCLE, 5

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = _uniform_lengths(batch_size, *_length_range(self, batch_size, split), generator)
        return _formal_batch(batch_size, generator, lengths, _uniform_words(3), cycle_navigation, num_symbols=3)


class ModularArithmetic(WordTask):
    """Expressions n op n op ... n over numbers 0-4 and + - *, no brackets; the answer is their value mod 5."""

    NAME, OUTPUTS, VOCAB = "modular-arithmetic", MODULUS, 10

    def __init__(
        self, *, min_length: int = 3, max_length: int = 40, test_min_length: int = 40, test_max_length: int = 256
    ) -> None:
        super().__init__(
            min_length=min_length,
            max_length=max_length,
            test_min_length=test_min_length,
            test_max_length=test_max_length,
        )
        if min_length == max_length and min_length % 2 == 0:
            raise ValueError(
                f"min_length and max_length are both {min_length}, expected a range with an odd "
                "length (expressions alternate number, operator, ..., number)"
            )
        if test_min_length == test_max_length and test_min_length % 2 == 0:
            raise ValueError(
                f"test_min_length and test_max_length are both {test_min_length}, expected a range "
                "with an odd length (expressions alternate number, operator, ..., number)"
            )

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = _odd_lengths(batch_size, *_length_range(self, batch_size, split), generator)
        return _formal_batch(batch_size, generator, lengths, _expressions, modular_arithmetic, num_symbols=8)
