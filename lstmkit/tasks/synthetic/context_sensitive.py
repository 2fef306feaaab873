"""Context-sensitive formal-language tasks: bucket sort, duplicating a string, the missing symbol of a
duplicated string, odd positions first, binary addition and multiplication, and the integer square root.

Sources: Delétang et al. 2023 ("Neural networks and the Chomsky hierarchy", the context-sensitive tasks), as
run by Beck et al. 2024 (xLSTM, Figure 4: train on lengths 3 to 40, test on 40 to 256). The languages and
answers follow Delétang et al.'s generators; the formats are formal_answers.py's.

A word of length L is drawn per row, L uniform in [min_length, max_length] for the "train" and "valid" splits
and in [test_min_length, test_max_length] for "test". With S word symbols: S the query, then the padding
(one answer, vocab_size S + 2) or S + 1 the blank and S + 2 the padding (answers on blanks, vocab_size S + 3).
num_outputs counts the answer ids.

    task                   S  symbols                           answer (reference function below)
    bucket-sort            5  0-4                               the word sorted: L answers of 5
                                                                1 0 2 0 4 1 1 2 -> 0 0 1 1 1 2 2 4
    duplicate-string       2  0, 1                              the word twice: 2L answers of 2
                                                                1 0 1 -> 1 0 1 1 0 1
    missing-duplicate      4  0, 1, 2 missing, 3 filler         the missing bit: one answer of 2
                                                                0 1 1 0 0 ? 1 0 -> 1; 1 0 1 1 ? 1 _ -> 0 (? 2, _ 3)
    odds-first             2  0, 1                              w_1 w_3 w_5 ... then w_2 w_4 ...: L answers of 2
                                                                0 0 1 1 0 1 0 1 -> 0 1 0 0 0 1 1 1
    binary-addition        3  0, 1, 2 +                         n + m, little-endian, then END: 3 ids (0, 1, END)
                                                                0 0 1 + 0 1 1 0 1 (4 + 22) -> 0 1 0 1 1 END (26)
    binary-multiplication  3  0, 1, 2 ×                         n × m, little-endian, then END: 3 ids
                                                                0 0 1 × 0 1 1 0 1 (4 × 22) -> 0 0 0 1 1 0 1 END
    compute-sqrt           2  0, 1                              floor(√n), big-endian in ceil(L/2) bits: of 2
                                                                1 0 0 1 0 1 (37) -> 1 1 0 (6)

Words. missing-duplicate: a uniform binary string s of length L // 2, written twice, one position of the two
copies (uniform) replaced by "missing", and a filler at the end when L is odd (so L >= 2). Binary arithmetic:
n has ln digits, ln uniform in [1, L - 2], then the operator, then m in the other L - 1 - ln digits (so
L >= 3); n and m are uniform among the nonzero numbers of their digit counts (leading zeros allowed, at the
end in little-endian); the answer has no leading zeros. compute-sqrt: n uniform in [1, 2^L - 1], written
with L bits. "w_1 w_3 ..." counts from 1, as Delétang et al.'s definition and examples do.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lstmkit.tasks.base import Batch
from lstmkit.tasks.synthetic.formal_answers import (
    WordTask,
    answers_batch,
    draw_lengths,
    nonzero_bits,
    one_answer_batch,
)

MISSING, FILLER = 2, 3
"""Missing duplicate: the token of the missing symbol, and the filler that ends words of odd length."""
OPERATOR = 2
"""Binary addition and multiplication: the token between the two numbers (+ or ×)."""
END = 2
"""Binary addition and multiplication: the answer id after the last digit."""


# ---- reference answers: plain Python on a list of word tokens ------------------------------------------------


def bucket_sort(word: list[int]) -> list[int]:
    """The word's symbols in increasing order: [1, 0, 2, 0, 4, 1, 1, 2] -> [0, 0, 1, 1, 1, 2, 2, 4]."""
    return sorted(word)


def duplicate_string(word: list[int]) -> list[int]:
    """The word twice: [1, 0, 1] -> [1, 0, 1, 1, 0, 1]."""
    return word + word


def missing_duplicate(word: list[int]) -> int:
    """The bit that "missing" stands for, read from the other copy: [0, 1, 1, 0, 0, missing, 1, 0] -> 1."""
    copies = word[:-1] if word[-1] == FILLER else word
    half, where = len(copies) // 2, copies.index(MISSING)
    return copies[where + half] if where < half else copies[where - half]


def odds_first(word: list[int]) -> list[int]:
    """The symbols at odd positions (from 1), then those at even ones: [0, 0, 1, 1, 0, 1, 0, 1] ->
    [0, 1, 0, 0, 0, 1, 1, 1]."""
    return word[0::2] + word[1::2]


def _little_endian(bits: list[int]) -> int:
    return sum(bit << place for place, bit in enumerate(bits))


def _binary_answer(number: int) -> list[int]:
    """The little-endian digits without leading zeros (0 is [0]), then END."""
    return [int(digit) for digit in reversed(f"{number:b}")] + [END]


def binary_addition(word: list[int]) -> list[int]:
    """n + m, little-endian, then END: [0, 0, 1, +, 0, 1, 1, 0, 1] (4 + 22) -> [0, 1, 0, 1, 1, END] (26)."""
    split = word.index(OPERATOR)
    return _binary_answer(_little_endian(word[:split]) + _little_endian(word[split + 1 :]))


def binary_multiplication(word: list[int]) -> list[int]:
    """n × m, little-endian, then END: [0, 0, 1, ×, 0, 1, 1, 0, 1] (4 × 22) -> [0, 0, 0, 1, 1, 0, 1, END] (88)."""
    split = word.index(OPERATOR)
    return _binary_answer(_little_endian(word[:split]) * _little_endian(word[split + 1 :]))


def compute_sqrt(word: list[int]) -> list[int]:
    """floor(√n) of the big-endian n, big-endian in ceil(L / 2) bits: [1, 0, 0, 1, 0, 1] (37) -> [1, 1, 0] (6)."""
    root = math.isqrt(int("".join(map(str, word)), 2))
    return [int(digit) for digit in f"{root:b}".zfill(math.ceil(len(word) / 2))]


# ---- sampling -------------------------------------------------------------------------------------------------


def _duplicated_words(word_lengths: Tensor, generator: torch.Generator) -> Tensor:
    """(B, Lmax): s s with one position "missing", then the filler when L is odd (L >= 2)."""
    B, Lmax = len(word_lengths), int(word_lengths.max())
    half = word_lengths // 2  # (B,) >= 1
    strings = torch.randint(0, 2, (B, int(half.max())), generator=generator)
    words = strings.gather(1, torch.arange(Lmax) % half[:, None])  # (B, Lmax) position p holds s[p mod half]
    missing = (torch.rand(B, generator=generator, dtype=torch.float64) * 2 * half).long()  # (B,) in [0, 2 half)
    words[torch.arange(B), missing] = MISSING
    odd = word_lengths % 2 == 1
    words[odd, word_lengths[odd] - 1] = FILLER
    return words


def _binary_expressions(word_lengths: Tensor, generator: torch.Generator) -> Tensor:
    """(B, Lmax): n (ln digits), the operator, m (L - 1 - ln digits), both nonzero, ln uniform in [1, L - 2]."""
    B, Lmax = len(word_lengths), int(word_lengths.max())
    u = torch.rand(B, generator=generator, dtype=torch.float64)
    split = 1 + (u * (word_lengths - 2)).long()  # (B,) ln, the operator's position
    positions = torch.arange(Lmax)
    first = nonzero_bits(positions < split[:, None], generator)  # (B, Lmax)
    second = nonzero_bits((positions > split[:, None]) & (positions < word_lengths[:, None]), generator)
    words = torch.where(positions < split[:, None], first, second)
    words[torch.arange(B), split] = OPERATOR
    return words


def _binary_numbers(word_lengths: Tensor, generator: torch.Generator) -> Tensor:
    """(B, Lmax): n uniform in [1, 2^L - 1], in L bits."""
    return nonzero_bits(torch.arange(int(word_lengths.max())) < word_lengths[:, None], generator)


# ---- the tasks ------------------------------------------------------------------------------------------------


class BucketSort(WordTask):
    """Words over 0-4; the answer is the word sorted, one symbol per blank."""

    NAME, OUTPUTS, VOCAB = "bucket-sort", 5, 8

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: 2 * L + 1, generator)
        words = torch.randint(0, 5, (batch_size, int(lengths.max())), generator=generator)
        return answers_batch(words, lengths, bucket_sort, 5)


class DuplicateString(WordTask):
    """Binary words; the answer is the word twice (Delétang et al.'s "duplicate string", the "repetition" task)."""

    NAME, OUTPUTS, VOCAB = "duplicate-string", 2, 5

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: 3 * L + 1, generator)
        words = torch.randint(0, 2, (batch_size, int(lengths.max())), generator=generator)
        return answers_batch(words, lengths, duplicate_string, 2)


class MissingDuplicate(WordTask):
    """A binary string written twice with one symbol missing; the answer is the missing bit."""

    NAME, OUTPUTS, VOCAB = "missing-duplicate", 2, 6
    SHORTEST, WHY = 2, "a word is a string of L // 2 >= 1 symbols written twice"

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: L + 1, generator)
        return one_answer_batch(_duplicated_words(lengths, generator), lengths, missing_duplicate, 4)


class OddsFirst(WordTask):
    """Binary words; the answer is the symbols at odd positions (from 1), then those at even ones."""

    NAME, OUTPUTS, VOCAB = "odds-first", 2, 5

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: 2 * L + 1, generator)
        words = torch.randint(0, 2, (batch_size, int(lengths.max())), generator=generator)
        return answers_batch(words, lengths, odds_first, 2)


class BinaryAddition(WordTask):
    """Two little-endian binary numbers and +; the answer is their sum, little-endian, then END."""

    NAME, OUTPUTS, VOCAB = "binary-addition", 3, 6
    SHORTEST, WHY = 3, "a word is a number, + and a number"

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: 2 * L + 1, generator)
        return answers_batch(_binary_expressions(lengths, generator), lengths, binary_addition, 3)


class BinaryMultiplication(WordTask):
    """Two little-endian binary numbers and ×; the answer is their product, little-endian, then END."""

    NAME, OUTPUTS, VOCAB = "binary-multiplication", 3, 6
    SHORTEST, WHY = 3, "a word is a number, × and a number"

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: 2 * L + 1, generator)
        return answers_batch(_binary_expressions(lengths, generator), lengths, binary_multiplication, 3)


class ComputeSqrt(WordTask):
    """A big-endian binary number; the answer is the floor of its square root in ceil(L / 2) bits."""

    NAME, OUTPUTS, VOCAB = "compute-sqrt", 2, 5

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: L + 1 + math.ceil(L / 2), generator)
        return answers_batch(_binary_numbers(lengths, generator), lengths, compute_sqrt, 2)
