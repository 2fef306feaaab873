"""Deterministic context-free formal-language tasks: modular arithmetic with brackets, solving an equation,
reversing a string and manipulating a stack.

Sources: Delétang et al. 2023 ("Neural networks and the Chomsky hierarchy", the deterministic context-free
tasks), as run by Beck et al. 2024 (xLSTM, Figure 4: train on lengths 3 to 40, test on 40 to 256). The
languages and answers follow Delétang et al.'s generators; the formats are formal_answers.py's.

A word of length L is drawn per row, L uniform in [min_length, max_length] for the "train" and "valid" splits
and in [test_min_length, test_max_length] for "test". With S word symbols: S the query, then the padding
(one answer, vocab_size S + 2) or S + 1 the blank and S + 2 the padding (answers on blanks, vocab_size S + 3).
num_outputs counts the answer ids.

    task                         S   symbols                              answer (reference function below)
    modular-arithmetic-brackets  10  0-4 numbers, 5 +, 6 -, 7 ×, 8 (, 9 )  the value mod 5: one answer of 5
                                     ((2 × -3) + 4) -> -2 mod 5 = 3
    solve-equation               12  those (× never drawn), 10 x, 11 =     the x that solves it: one of 5
                                     (x - (-2)) = 1 -> x = 4
    reverse-string               2   0, 1                                 the word backwards: L answers of 2
                                     0 1 1 -> 1 1 0
    stack-manipulation           5   0, 1 the stack (bottom first),       the final stack, top first, then
                                     2 pop, 3 push 0, 4 push 1            END: len + 1 answers of 3 (0, 1, END)
                                     0 1 1 0 push1 pop pop -> 1 1 0 END

Expressions (Delétang et al.'s grammar, by length n): n = 1 a number d, 2 "-d", 3 "(d)", 4 "(-d)", and n >= 5
"(E op E)" with the left expression's length uniform in [1, n - 4], the right one's the rest, op uniform
among + - × (solve-equation: + -). Every operator sits inside its own brackets, so no precedence rule is
needed; a "-" right before a number (or x) is a sign, else it subtracts. solve-equation's word is an
expression of length L - 2 with one of its numbers (uniform among them) replaced by x, then "=" and the
expression's value mod 5: L >= 3; with + and - only, x's coefficient is ±1, so the solution is unique.
Stack words: the stack's length is uniform in [1, L - 1] (1 for L = 1), its bits uniform, the actions
uniform; popping an empty stack does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lstmkit.tasks.base import Batch
from lstmkit.tasks.synthetic.formal import MINUS, MODULUS, PLUS, TIMES
from lstmkit.tasks.synthetic.formal_answers import WordTask, answers_batch, draw_lengths, one_answer_batch

OPEN, CLOSE = 8, 9
"""Expressions: the bracket tokens (numbers are 0 .. 4, the operators formal.py's 5 +, 6 -, 7 ×)."""
X, EQUALS = 10, 11
"""Equations: the unknown and the equals sign."""
POP, PUSH_0, PUSH_1 = 2, 3, 4
"""Stack manipulation: the action tokens (0 and 1 are the stack's symbols)."""
END = 2
"""Stack manipulation: the answer id after the last stack symbol."""

Linear = tuple[int, int]
"""a x + b (mod 5) as (a, b): an expression's value with the unknown x kept symbolic."""


# ---- reference answers: plain Python on a list of word tokens ------------------------------------------------


def _combine(op: int, left: Linear, right: Linear) -> Linear:
    (a1, b1), (a2, b2) = left, right
    if op == PLUS:
        return (a1 + a2) % MODULUS, (b1 + b2) % MODULUS
    if op == MINUS:
        return (a1 - a2) % MODULUS, (b1 - b2) % MODULUS
    return (a1 * b2 + a2 * b1) % MODULUS, (b1 * b2) % MODULUS  # exact while one side has no x (a1 a2 = 0)


def linear_value(word: list[int]) -> Linear:
    """An expression's value as a x + b mod 5, read left to right with one frame per open bracket (no recursion,
    so any depth): "(x - (-2))" -> (1, 2); "((2 × -3) + 4)" -> (0, 3)."""
    frames: list[list] = [[None, None]]  # per open bracket: the value so far, the operator waiting for its right
    negate = False
    for token in word:
        value, op = frames[-1]
        if token == OPEN:
            frames.append([None, None])
            continue
        if token in (PLUS, MINUS, TIMES) and value is not None and op is None:
            frames[-1][1] = token
            continue
        if token == MINUS:  # a sign: a term is expected here
            negate = True
            continue
        term = frames.pop()[0] if token == CLOSE else (1, 0) if token == X else (0, token)
        if negate:
            term, negate = ((-term[0]) % MODULUS, (-term[1]) % MODULUS), False
        value, op = frames[-1]
        frames[-1] = [term, None] if value is None else [_combine(op, value, term), None]
    return frames[0][0]


def modular_arithmetic_brackets(word: list[int]) -> int:
    """The expression's value mod 5: ((2 × -3) + 4) -> -2 mod 5 = 3."""
    return linear_value(word)[1]


def solve_equation(word: list[int]) -> int:
    """The x for which the left side equals the digit after "=", mod 5: (x - (-2)) = 1 -> x + 2 = 1 -> x = 4.
    The left side is a x + b with a = ±1, and a = 1 / a mod 5 for both."""
    a, b = linear_value(word[:-2])
    return (word[-1] - b) * a % MODULUS


def reverse_string(word: list[int]) -> list[int]:
    """The word backwards: [0, 1, 1] -> [1, 1, 0]."""
    return word[::-1]


def stack_manipulation(word: list[int]) -> list[int]:
    """Push the stack's symbols (bottom first), then act; the stack top first, then END:
    [0, 1, 1, 0, push 1, pop, pop] -> [1, 1, 0, END]."""
    stack = []
    for token in word:
        if token == POP:
            if stack:
                stack.pop()
        else:
            stack.append(token if token in (0, 1) else token - PUSH_0)
    return [*stack[::-1], END]


# ---- sampling -------------------------------------------------------------------------------------------------


def _expression(n: int, draw: Callable[[int], int], operators: tuple[int, ...]) -> list[int]:
    """An expression of exactly n tokens (the module docstring's grammar), written left to right from a stack
    of pieces still to write: ("expand", length) or ("write", token)."""
    tokens: list[int] = []
    pieces: list[tuple[str, int]] = [("expand", n)]
    while pieces:
        kind, value = pieces.pop()
        if kind == "write":
            tokens.append(value)
        elif value <= 4:  # d, -d, (d), (-d)
            tokens += [OPEN] * (value >= 3) + [MINUS] * (value % 2 == 0) + [draw(MODULUS)] + [CLOSE] * (value >= 3)
        else:
            left = 1 + draw(value - 4)
            op = operators[draw(len(operators))]
            tokens.append(OPEN)
            pieces += [("write", CLOSE), ("expand", value - 3 - left), ("write", op), ("expand", left)]
    return tokens


def _row_draws(B: int, T: int, generator: torch.Generator) -> list[Callable[[int], int]]:
    """Per row, draw(k) -> uniform in [0, k), from T + 1 uniform numbers drawn for that row (an expression of
    n tokens takes at most n draws: a number takes one and writes >= 1 token, a split two for 3 tokens)."""
    uniforms = torch.rand(B, T + 1, generator=generator, dtype=torch.float64).tolist()

    def drawer(row: list[float]) -> Callable[[int], int]:
        stream = iter(row)
        return lambda k: int(next(stream) * k)

    return [drawer(row) for row in uniforms]


def _expressions(word_lengths: Tensor, generator: torch.Generator) -> Tensor:
    """(B, Lmax) expressions with + - ×, row b of length word_lengths[b] (padded with 0 after)."""
    lengths = word_lengths.tolist()
    draws = _row_draws(len(lengths), max(lengths), generator)
    rows = [_expression(n, draw, (PLUS, MINUS, TIMES)) for n, draw in zip(lengths, draws, strict=True)]
    return torch.tensor([row + [0] * (max(lengths) - len(row)) for row in rows], dtype=torch.long)


def _equations(word_lengths: Tensor, generator: torch.Generator) -> Tensor:
    """(B, Lmax) equations "expression with x = value", row b of length word_lengths[b] >= 3."""
    lengths = word_lengths.tolist()
    draws = _row_draws(len(lengths), max(lengths), generator)
    rows = []
    for n, draw in zip(lengths, draws, strict=True):
        expression = _expression(n - 2, draw, (PLUS, MINUS))
        value = modular_arithmetic_brackets(expression)
        numbers = [t for t, token in enumerate(expression) if token < MODULUS]
        expression[numbers[draw(len(numbers))]] = X
        rows.append([*expression, EQUALS, value] + [0] * (max(lengths) - n))
    return torch.tensor(rows, dtype=torch.long)


def _stack_words(word_lengths: Tensor, generator: torch.Generator) -> Tensor:
    """(B, Lmax): a stack of uniform bits, its length uniform in [1, L - 1], then uniform actions."""
    B, Lmax = len(word_lengths), int(word_lengths.max())
    u = torch.rand(B, generator=generator, dtype=torch.float64)
    stack_lengths = 1 + (u * (word_lengths - 1).clamp(min=1)).long()  # (B,)
    bits = torch.randint(0, 2, (B, Lmax), generator=generator)
    actions = torch.randint(POP, PUSH_1 + 1, (B, Lmax), generator=generator)
    return torch.where(torch.arange(Lmax) < stack_lengths[:, None], bits, actions)


# ---- the tasks ------------------------------------------------------------------------------------------------


class ModularArithmeticBrackets(WordTask):
    """Expressions with brackets over numbers 0-4 and + - ×; the answer is their value mod 5."""

    NAME, OUTPUTS, VOCAB = "modular-arithmetic-brackets", MODULUS, 12

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: L + 1, generator)
        return one_answer_batch(_expressions(lengths, generator), lengths, modular_arithmetic_brackets, 10)


class SolveEquation(WordTask):
    """Equations "expression with one x = a digit" over + and -; the answer is the x mod 5 that solves it."""

    NAME, OUTPUTS, VOCAB = "solve-equation", MODULUS, 14
    SHORTEST, WHY = 3, "an equation is an expression, = and a digit"

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: L + 1, generator)
        return one_answer_batch(_equations(lengths, generator), lengths, solve_equation, 12)


class ReverseString(WordTask):
    """Binary words; the answer is the word backwards, one symbol per blank."""

    NAME, OUTPUTS, VOCAB = "reverse-string", 2, 5

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: 2 * L + 1, generator)
        words = torch.randint(0, 2, (batch_size, int(lengths.max())), generator=generator)
        return answers_batch(words, lengths, reverse_string, 2)


class StackManipulation(WordTask):
    """A binary stack and push/pop actions; the answer is the final stack, top first, then END."""

    NAME, OUTPUTS, VOCAB = "stack-manipulation", 3, 8

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lengths = draw_lengths(self, batch_size, split, lambda L: 2 * L + 2, generator)
        return answers_batch(_stack_words(lengths, generator), lengths, stack_manipulation, 5)
