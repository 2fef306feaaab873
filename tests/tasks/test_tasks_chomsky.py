"""The context-free and context-sensitive formal-language tasks: hand-computed answers, the answers against
slow obvious forms, batches row by row (format, mask, answers, lengths), determinism, bad arguments."""

from __future__ import annotations

import functools

import pytest
import torch

from lstmkit.tasks.base import MAX_BATCH_STEPS, SPLITS, compute_metrics
from lstmkit.tasks.synthetic import SYNTHETIC, context_free, context_sensitive
from lstmkit.tasks.synthetic.context_free import CLOSE, EQUALS, OPEN, POP, PUSH_0, PUSH_1, X
from lstmkit.tasks.synthetic.context_sensitive import FILLER, MISSING
from lstmkit.tasks.synthetic.formal import MINUS, PLUS, TIMES
from tests.helpers import one_line

cf, cs = context_free, context_sensitive
ONE_ANSWER = {
    "modular-arithmetic-brackets": cf.modular_arithmetic_brackets,
    "solve-equation": cf.solve_equation,
    "missing-duplicate": cs.missing_duplicate,
}
ANSWERS = {
    "reverse-string": cf.reverse_string,
    "stack-manipulation": cf.stack_manipulation,
    "bucket-sort": cs.bucket_sort,
    "duplicate-string": cs.duplicate_string,
    "odds-first": cs.odds_first,
    "binary-addition": cs.binary_addition,
    "binary-multiplication": cs.binary_multiplication,
    "compute-sqrt": cs.compute_sqrt,
}
NAMES = [*ONE_ANSWER, *ANSWERS]
SYMBOLS = {"modular-arithmetic-brackets": 10, "solve-equation": 12, "missing-duplicate": 4, "stack-manipulation": 5}
SYMBOLS |= {"bucket-sort": 5, "binary-addition": 3, "binary-multiplication": 3}
"""Word symbols S per task (2 where not listed)."""
SHORTEST = {"solve-equation": 3, "missing-duplicate": 2, "binary-addition": 3, "binary-multiplication": 3}
END = 2  # the end answer id of stack manipulation and binary arithmetic
TEXT = {PLUS: "+", MINUS: "-", TIMES: "*", OPEN: "(", CLOSE: ")", X: "x", EQUALS: "="}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def text(word: list[int]) -> str:
    return "".join(TEXT.get(t, str(t)) for t in word)


# ---- reference answers by hand --------------------------------------------------------------------------------


def test_context_free_references_by_hand() -> None:
    ma = cf.modular_arithmetic_brackets
    assert ma([OPEN, OPEN, 2, TIMES, MINUS, 3, CLOSE, PLUS, 4, CLOSE]) == 3  # (2 × -3) + 4 = -2
    assert ma([4]) == 4 and ma([MINUS, 4]) == 1 and ma([OPEN, MINUS, 0, CLOSE]) == 0
    assert ma([OPEN, 3, MINUS, OPEN, 4, TIMES, 4, CLOSE, CLOSE]) == 2  # 3 - 16 = -13
    assert ma([OPEN, MINUS, 1, MINUS, MINUS, 1, CLOSE]) == 0  # -1 - (-1)
    se = cf.solve_equation
    assert se([OPEN, X, MINUS, OPEN, MINUS, 2, CLOSE, CLOSE, EQUALS, 1]) == 4  # x + 2 = 1
    assert se([X, EQUALS, 3]) == 3 and se([MINUS, X, EQUALS, 3]) == 2  # -x = 3: x = -3
    assert se([OPEN, 4, MINUS, OPEN, X, PLUS, 1, CLOSE, CLOSE, EQUALS, 0]) == 3  # 4 - x - 1 = 0
    assert cf.reverse_string([0, 1, 1]) == [1, 1, 0]
    assert cf.reverse_string([1]) == [1] and cf.reverse_string([1, 0, 0, 0]) == [0, 0, 0, 1]
    sm = cf.stack_manipulation
    assert sm([0, 1, 1, 0, PUSH_1, POP, POP]) == [1, 1, 0, END]  # Delétang et al.'s first example
    assert sm([1, 1, 0, POP, POP, POP]) == [END]  # emptied
    assert sm([1, POP, POP, PUSH_0]) == [0, END]  # popping the empty stack does nothing
    assert sm([0]) == [0, END] and sm([0, PUSH_1, PUSH_0]) == [0, 1, 0, END]


def test_context_sensitive_references_by_hand() -> None:
    assert cs.bucket_sort([1, 0, 2, 0, 4, 1, 1, 2]) == [0, 0, 1, 1, 1, 2, 2, 4]
    assert cs.bucket_sort([3]) == [3] and cs.bucket_sort([4, 4, 0]) == [0, 4, 4]
    assert cs.duplicate_string([1, 0, 1]) == [1, 0, 1, 1, 0, 1] and cs.duplicate_string([0]) == [0, 0]
    assert cs.duplicate_string([1, 1]) == [1, 1, 1, 1]
    md = cs.missing_duplicate
    assert md([0, 1, 1, 0, 0, MISSING, 1, 0]) == 1  # Delétang et al.'s examples
    assert md([1, 0, 1, 1, MISSING, 1, FILLER]) == 0
    assert md([MISSING, 1]) == 1 and md([0, MISSING, FILLER]) == 0 and md([MISSING, 0, 1, 1, 0, 1]) == 1
    assert cs.odds_first([0, 0, 1, 1, 0, 1, 0, 1]) == [0, 1, 0, 0, 0, 1, 1, 1]
    assert cs.odds_first([1, 1, 0]) == [1, 0, 1] and cs.odds_first([1]) == [1]
    add, mul, op = cs.binary_addition, cs.binary_multiplication, cs.OPERATOR
    assert add([0, 0, 1, op, 0, 1, 1, 0, 1]) == [0, 1, 0, 1, 1, END]  # 4 + 22 = 26
    assert add([1, 0, 0, 1, op, 0, 0, 0, 0, 0, 1]) == [1, 0, 0, 1, 0, 1, END]  # 9 + 32 = 41
    assert add([1, op, 1]) == [0, 1, END] and add([1, 0, op, 0, 0]) == [1, END]  # m = 0 written "00"
    assert mul([0, 0, 1, op, 0, 1, 1, 0, 1]) == [0, 0, 0, 1, 1, 0, 1, END]  # 4 × 22 = 88
    assert mul([1, 0, 0, 1, op, 0, 0, 0, 0, 0, 1]) == [0, 0, 0, 0, 0, 1, 0, 0, 1, END]  # 9 × 32 = 288
    assert mul([1, op, 1]) == [1, END] and mul([1, 1, op, 0]) == [0, END]
    sq = cs.compute_sqrt
    assert sq([1, 0, 0, 1, 0, 1]) == [1, 1, 0] and sq([0, 0, 0, 1, 1, 1]) == [0, 1, 0]  # √37 -> 6, √7 -> 2
    assert sq([1]) == [1] and sq([1, 1, 1, 1, 1]) == [1, 0, 1]  # √31 -> 5 in 3 bits
    assert sq([1, 0, 0, 0, 0]) == [1, 0, 0]  # √16 -> 4


def test_references_match_slow_obvious_forms() -> None:
    """Expressions against Python's eval; equations by trying every x; arithmetic and roots against ints."""
    g = gen(0)
    for n in range(1, 30):
        for draw in cf._row_draws(4, n, g):
            word = cf._expression(n, draw, (PLUS, MINUS, TIMES))
            assert len(word) == n and cf.modular_arithmetic_brackets(word) == eval(text(word)) % 5, text(word)
    equations = cf._equations(torch.arange(3, 40).repeat(3), g)
    for word, n in zip(equations.tolist(), torch.arange(3, 40).repeat(3).tolist(), strict=True):
        lhs = text(word[: n - 2])
        solutions = [x for x in range(5) if eval(lhs.replace("x", f"({x})")) % 5 == word[n - 1]]
        assert solutions == [cf.solve_equation(word[:n])], text(word[:n])
    for _ in range(200):
        n, m = (int(v) for v in torch.randint(0, 2**40, (2,), generator=g))
        word = [int(b) for b in f"{n:b}"[::-1]] + [cs.OPERATOR] + [int(b) for b in f"{m:b}"[::-1]]
        for reference, value in ((cs.binary_addition, n + m), (cs.binary_multiplication, n * m)):
            digits = reference(word)
            assert digits[-1] == END and int("".join(map(str, digits[-2::-1])), 2) == value
            assert digits[-2] == 1 or digits == [0, END], "no leading zeros"
        root = int("".join(map(str, cs.compute_sqrt([int(b) for b in f"{n:b}"]))), 2)
        assert root * root <= n < (root + 1) * (root + 1)


# ---- batches --------------------------------------------------------------------------------------------------


@functools.cache
def grammatical(word: tuple[int, ...]) -> bool:
    """Delétang et al.'s grammar, the slow way: d, -d, (d), (-d), or (E op E) split at every operator."""
    if len(word) <= 4:
        inner = word[1:-1] if len(word) >= 3 and word[0] == OPEN and word[-1] == CLOSE else word
        return inner[-1:] in ((0,), (1,), (2,), (3,), (4,), (X,)) and inner[:-1] in ((), (MINUS,))
    if word[0] != OPEN or word[-1] != CLOSE:
        return False
    inside = word[1:-1]
    return any(
        inside[k] in (PLUS, MINUS, TIMES) and grammatical(inside[:k]) and grammatical(inside[k + 1 :])
        for k in range(1, len(inside) - 1)
    )


def check_word(name: str, word: list[int]) -> None:
    """What the module docstrings promise of each task's words."""
    L = len(word)
    if name == "modular-arithmetic-brackets" and L <= 40:
        assert grammatical(tuple(word)), text(word)
    elif name == "solve-equation":
        assert word.count(X) == 1 and word[-2] == EQUALS and word[-1] < 5 and TIMES not in word
        assert L > 40 or grammatical(tuple(word[:-2])), text(word)
    elif name == "missing-duplicate":
        copies = word[:-1] if L % 2 else word
        assert (word[-1] == FILLER) == (L % 2 == 1) and copies.count(MISSING) == 1 and FILLER not in copies
        half, where = L // 2, copies.index(MISSING)
        assert all(copies[t] == copies[t + half] for t in range(half) if where not in (t, t + half))
    elif name == "stack-manipulation":
        stack = next((t for t, token in enumerate(word) if token >= POP), L)
        assert 1 <= stack and (stack < L or L == 1) and all(token >= POP for token in word[stack:])
    elif name.startswith("binary-"):
        split = word.index(cs.OPERATOR)
        assert word.count(cs.OPERATOR) == 1 and 1 <= split <= L - 2
        assert 1 in word[:split] and 1 in word[split + 1 :], "both numbers are nonzero"
    elif name == "compute-sqrt":
        assert 1 in word


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", NAMES)
def test_batches_row_by_row(name: str, split: str) -> None:
    task = SYNTHETIC[name]()
    assert task.spec.name == name and task.spec.kind == "tag"
    batch = task.batch(64, gen(7), split)
    S, sequence = SYMBOLS.get(name, 2), name in ANSWERS
    assert task.spec.vocab_size == S + 2 + sequence
    query, blank, pad = S, S + 1, S + 1 + sequence
    lo, hi = (40, 256) if split == "test" else (3, 40)
    B, T = batch.x.shape
    assert batch.y.shape == batch.mask.shape == (B, T) and batch.lengths.shape == (B,) and B == 64
    assert int(batch.lengths.max()) == T
    reference = ANSWERS[name] if sequence else ONE_ANSWER[name]
    rows = zip(batch.x.tolist(), batch.y.tolist(), batch.mask.tolist(), batch.lengths.tolist(), strict=True)
    for x, y, mask, length in rows:
        L = x.index(query)
        assert lo <= L <= hi and max(x[:L]) < S
        check_word(name, x[:L])
        answer = reference(x[:L]) if sequence else [reference(x[:L])]
        K = len(answer) if sequence else 0
        assert length == L + 1 + K
        assert x[L + 1 : L + 1 + K] == [blank] * K and x[L + 1 + K :] == [pad] * (T - length)
        scored = list(range(L + 1, L + 1 + K)) if sequence else [L]
        assert [t for t in range(T) if mask[t]] == scored
        assert [y[t] for t in scored] == answer and all(y[t] == 0 for t in range(T) if not mask[t])
    assert set(batch.y[batch.mask].tolist()) <= set(range(task.spec.num_outputs))


@pytest.mark.parametrize("name", NAMES)
def test_length_ranges_reach_both_ends_and_every_answer(name: str) -> None:
    task = SYNTHETIC[name](min_length=5, max_length=9, test_min_length=12, test_max_length=15)
    for split, (first, last) in (("train", (5, 9)), ("valid", (5, 9)), ("test", (12, 15))):
        batch = task.batch(200, gen(1), split)
        L = (batch.x == SYMBOLS.get(name, 2)).long().argmax(dim=1)  # the query's position
        assert set(L.tolist()) == set(range(first, last + 1)), f"{name} {split}: {sorted(set(L.tolist()))}"
        assert set(batch.y[batch.mask].tolist()) == set(range(task.spec.num_outputs)), "every answer id occurs"


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_batch(name: str) -> None:
    task = SYNTHETIC[name]()
    for split in SPLITS:
        a, b, c = (task.batch(8, gen(seed), split) for seed in (3, 3, 4))
        assert all(torch.equal(ta, tb) for ta, tb in zip(a, b, strict=True)), f"{name} {split}"
        assert a.x.shape != c.x.shape or not torch.equal(a.x, c.x), f"{name} {split}: seeds 3 and 4 agree"


def test_the_shortest_words() -> None:
    for name in NAMES:
        shortest = SHORTEST.get(name, 1)
        task = SYNTHETIC[name](min_length=shortest, max_length=shortest)
        batch = task.batch(20, gen(0))
        assert set((batch.x == SYMBOLS.get(name, 2)).long().argmax(dim=1).tolist()) == {shortest}, name


def test_metrics_count_the_scored_positions_only() -> None:
    """A perfect output scores 1; always guessing answer 0 scores the share of 0s among the scored targets."""
    task = SYNTHETIC["binary-addition"]()
    batch = task.batch(16, gen(2))
    perfect = 10.0 * torch.nn.functional.one_hot(batch.y, task.spec.num_outputs).double()  # (B, T, 3)
    assert compute_metrics(task.spec, perfect, batch)["accuracy"] == 1.0
    zeros = torch.zeros_like(perfect)
    zeros[..., 0] = 1.0
    share = float((batch.y[batch.mask] == 0).double().mean())
    assert compute_metrics(task.spec, zeros, batch)["accuracy"] == pytest.approx(share, abs=1e-7)


# ---- bad arguments --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments", "words"),
    [
        ("reverse-string", {"min_length": 0}, ["min_length is 0", "expected an integer >= 1"]),
        ("bucket-sort", {"max_length": 2.5}, ["max_length is 2.5", "expected an integer >= 1"]),
        ("stack-manipulation", {"min_length": 10, "max_length": 5}, ["max_length is 5", "min_length (10)"]),
        ("odds-first", {"test_min_length": 300}, ["test_max_length is 256", "test_min_length (300)"]),
        ("compute-sqrt", {"test_max_length": 10**9}, ["test_max_length is 1000000000", "at most 1,000,000"]),
        ("solve-equation", {"min_length": 2}, ["min_length is 2", "expected an integer >= 3", "= and a digit"]),
        ("missing-duplicate", {"test_min_length": 1}, ["test_min_length is 1", ">= 2", "written twice"]),
        ("binary-addition", {"max_length": 2, "min_length": 2}, ["min_length is 2", ">= 3", "+ and a number"]),
        ("binary-multiplication", {"test_max_length": 2}, ["test_max_length is 2", ">= 3", "× and a number"]),
        ("modular-arithmetic-brackets", {"min_length": True}, ["min_length is True", "expected an integer"]),
    ],
)
def test_bad_arguments_raise_one_line(name: str, arguments: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        SYNTHETIC[name](**arguments)
    one_line(caught, *words)


@pytest.mark.parametrize("name", NAMES)
def test_bad_batch_arguments(name: str) -> None:
    task = SYNTHETIC[name]()
    with pytest.raises(ValueError) as caught:
        task.batch(2, gen(0), "dev")
    one_line(caught, "split is 'dev', expected one of train, valid, test")
    with pytest.raises(ValueError) as caught:
        task.batch(0, gen(0))
    one_line(caught, "batch_size is 0, expected an integer >= 1")
    with pytest.raises(ValueError) as caught:
        task.batch(10**6, gen(0), "test")  # refused before anything is drawn
    one_line(caught, "batch_size is 1000000", f"expected at most {MAX_BATCH_STEPS:,}")
