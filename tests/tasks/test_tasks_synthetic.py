"""The synthetic task generators: shapes, determinism, spec coherence, hand-checked labels, bad arguments."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lstmkit.tasks.base import SPLITS, Batch, TaskSpec, compute_loss, compute_metrics, tag_mask
from lstmkit.tasks.synthetic import (
    MQAR,
    SYNTHETIC,
    AddingProblem,
    CopyRecall,
    CycleNavigation,
    EvenPairs,
    ModularArithmetic,
    Parity,
    TemporalOrder,
    formal,
    temporal_order,
)
from lstmkit.tasks.synthetic.formal import MINUS, PLUS, TIMES
from lstmkit.tasks.synthetic.temporal_order import END, START, X, Y
from tests.helpers import assert_close

NAMES = list(SYNTHETIC)
FORMAL = {
    "parity": formal.parity,
    "even-pairs": formal.even_pairs,
    "cycle-navigation": formal.cycle_navigation,
    "modular-arithmetic": formal.modular_arithmetic,
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_batch(name: str, batch_size: int = 6, seed: int = 0, split: str = "train", **kwargs: int) -> Batch:
    return SYNTHETIC[name](**kwargs).batch(batch_size, gen(seed), split)


# ---- every task -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name: str, split: str) -> None:
    task = SYNTHETIC[name]()
    spec = task.spec
    batch = task.batch(6, gen(0), split)
    B, T = batch.x.shape[:2]
    assert B == 6 and spec.name == name
    for tensor in batch:
        assert tensor is None or tensor.device.type == "cpu"
    if spec.vocab_size is None:
        assert batch.x.dtype == torch.float32 and batch.x.shape == (B, T, spec.input_size)
    else:
        assert batch.x.dtype == torch.long and batch.x.shape == (B, T)
    if spec.kind == "regress":
        assert batch.y.dtype == torch.float32 and batch.y.shape == (B, spec.num_outputs)
    elif spec.kind == "classify":
        assert batch.y.dtype == torch.long and batch.y.shape == (B,)
    else:
        assert batch.y.dtype == torch.long and batch.y.shape == (B, T)
        assert batch.mask is not None and batch.mask.dtype == torch.bool and batch.mask.shape == (B, T)
    if batch.lengths is not None:
        assert batch.lengths.dtype == torch.long and batch.lengths.shape == (B,)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_batch_other_seed_other_batch(name: str) -> None:
    for split in SPLITS:
        a, b, c = (make_batch(name, 8, seed, split) for seed in (3, 3, 4))
        for ta, tb in zip(a, b, strict=True):
            assert (ta is None and tb is None) or torch.equal(ta, tb), f"{name} {split}: same seed, different batch"
        assert a.x.shape != c.x.shape or not torch.equal(a.x, c.x), f"{name} {split}: seeds 3 and 4 give the same x"


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", NAMES)
def test_batches_agree_with_spec(name: str, split: str) -> None:
    spec = SYNTHETIC[name]().spec
    batch = make_batch(name, 64, 1, split)
    if spec.vocab_size is not None:
        assert 0 <= int(batch.x.min()) and int(batch.x.max()) < spec.vocab_size
    if spec.kind != "regress":
        assert 0 <= int(batch.y.min()) and int(batch.y.max()) < spec.num_outputs
    T = batch.x.shape[1]
    if batch.lengths is not None:
        assert int(batch.lengths.min()) >= 1 and int(batch.lengths.max()) == T
    if spec.kind == "tag":
        counted = tag_mask(batch)
        assert torch.equal(counted, batch.mask), "the mask must lie inside each row's length"
        assert bool(counted.any(dim=1).all()), "every row must have a position that counts"


@pytest.mark.parametrize("name", NAMES)
def test_loss_and_metrics_run_on_a_random_output(name: str) -> None:
    spec = SYNTHETIC[name]().spec
    batch = make_batch(name, 5, 2)
    shape = (5, batch.x.shape[1], spec.num_outputs) if spec.kind == "tag" else (5, spec.num_outputs)
    output = torch.randn(shape, generator=gen(9), requires_grad=True)
    loss = compute_loss(spec, output, batch)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and output.grad is not None
    metrics = compute_metrics(spec, output, batch)
    expected = {"mse"} if spec.kind == "regress" else {"loss", "accuracy"}
    assert set(metrics) == expected and all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def cross_entropy(logits: list[float], target: int) -> float:
    """-log softmax(logits)[target], by hand."""
    return math.log(sum(math.exp(z) for z in logits)) - logits[target]


def assert_metrics(metrics: dict[str, float], loss: float, accuracy: float) -> None:
    assert set(metrics) == {"loss", "accuracy"}
    assert metrics["loss"] == pytest.approx(loss, abs=1e-15)
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-7)  # a float32 mean


def test_loss_and_metrics_equal_a_hand_computation_on_a_tiny_batch() -> None:
    """regress: the mean of squared errors; classify and tag: the mean cross-entropy and the share of argmax
    hits, tag only over the positions that count (inside each row's length, where the mask allows)."""
    regress = TaskSpec("r", "regress", num_outputs=2, input_size=1)
    output, y = torch.tensor([[0.5, -1.0], [2.0, 0.0]], dtype=torch.float64), torch.tensor([[1.0, 1.0], [2.0, -3.0]])
    batch = Batch(x=torch.zeros(2, 3, 1), y=y.double())
    mse = (0.5**2 + 2.0**2 + 0.0**2 + 3.0**2) / 4
    assert_close(compute_loss(regress, output, batch), mse, "regress loss", atol=1e-15)
    assert compute_metrics(regress, output, batch) == pytest.approx({"mse": mse}, abs=1e-15)

    rows = [[2.0, 0.0, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 0.0]]
    classify = TaskSpec("c", "classify", num_outputs=3, vocab_size=5)
    batch = Batch(x=torch.zeros(3, 4, dtype=torch.long), y=torch.tensor([0, 1, 1]))
    loss = sum(cross_entropy(z, t) for z, t in zip(rows, [0, 1, 1], strict=True)) / 3
    output = torch.tensor(rows, dtype=torch.float64)
    assert_close(compute_loss(classify, output, batch), loss, "classify loss", atol=1e-15)
    # argmax: 0 (hit), 2 (miss), 0 (the first of a tie: miss)
    assert_metrics(compute_metrics(classify, output, batch), loss, accuracy=1 / 3)

    tag = TaskSpec("t", "tag", num_outputs=3, vocab_size=5)
    output = torch.tensor([rows, [rows[2], rows[1], rows[0]]], dtype=torch.float64)  # (B=2, T=3, 3)
    y = torch.tensor([[0, 2, 0], [1, 2, 0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    batch = Batch(x=torch.zeros(2, 3, dtype=torch.long), y=y, lengths=torch.tensor([3, 2]), mask=mask)
    counted = [(rows[0], 0), (rows[1], 2), (rows[2], 1), (rows[1], 2)]  # row 0: t = 0, 1 (mask); row 1: t < 2
    loss = sum(cross_entropy(z, t) for z, t in counted) / 4
    assert_close(compute_loss(tag, output, batch), loss, "tag loss", atol=1e-15)
    assert_metrics(compute_metrics(tag, output, batch), loss, accuracy=3 / 4)


# ---- adding ---------------------------------------------------------------------------------------------------


def test_adding_target_is_the_sum_of_the_two_marked_values() -> None:
    batch = AddingProblem(length=50).batch(200, gen(0))
    values, markers = batch.x[..., 0], batch.x[..., 1]
    assert bool(((values >= 0) & (values < 1)).all())
    assert torch.equal(markers.sum(1), torch.full((200,), 2.0)), "exactly two markers per row"
    assert torch.equal(markers[:, :25].sum(1), torch.ones(200)), "one marker in the first half"
    assert torch.equal(markers[:, 25:].sum(1), torch.ones(200)), "one marker in the second half"
    torch.testing.assert_close(batch.y[:, 0], (values * markers).sum(1))


def test_adding_by_hand_at_length_two() -> None:
    # length 2: the halves are [0] and [1], so both steps are marked and the target is x0 + x1
    batch = AddingProblem(length=2).batch(3, gen(5))
    assert torch.equal(batch.x[..., 1], torch.ones(3, 2))
    torch.testing.assert_close(batch.y[:, 0], batch.x[:, 0, 0] + batch.x[:, 1, 0])


def test_adding_baseline_is_the_variance_of_the_sum() -> None:
    task = AddingProblem(length=10)
    assert task.spec.baseline == pytest.approx(1 / 6)
    batch = task.batch(20_000, gen(0))
    mse = float(((batch.y - 1.0) ** 2).mean())
    assert abs(mse - 1 / 6) < 0.005, f"MSE of predicting 1.0 is {mse:.4f}, expected 1/6 = 0.1667"


# ---- temporal order -------------------------------------------------------------------------------------------


def test_temporal_order_class_by_hand() -> None:
    a, b = 0, 1
    assert temporal_order.temporal_order_class([START, a, Y, b, X, END]) == 2  # YX
    assert temporal_order.temporal_order_class([START, X, a, X, END]) == 0  # XX
    assert temporal_order.temporal_order_class([START, X, b, Y, END]) == 1  # XY
    assert temporal_order.temporal_order_class([START, Y, a, X, b, Y, END]) == 5  # YXY = 101


def test_temporal_order_windows_at_length_100_are_the_papers() -> None:
    assert temporal_order.windows(100, 2) == [(10, 20), (50, 60)]
    assert temporal_order.windows(100, 3) == [(10, 20), (33, 43), (66, 76)]


@pytest.mark.parametrize(("length", "num_symbols"), [(100, 2), (100, 3), (10, 3), (37, 2)])
def test_temporal_order_batches(length: int, num_symbols: int) -> None:
    batch = TemporalOrder(length=length, num_symbols=num_symbols).batch(300, gen(1))
    assert bool((batch.x[:, 0] == START).all()) and bool((batch.x[:, -1] == END).all())
    for row, label in zip(batch.x.tolist(), batch.y.tolist(), strict=True):
        relevant = [t for t, token in enumerate(row) if token in (X, Y)]
        assert len(relevant) == num_symbols
        for t, (lo, hi) in zip(relevant, temporal_order.windows(length, num_symbols), strict=True):
            assert lo <= t <= hi
        assert label == temporal_order.temporal_order_class(row)
    assert set(batch.y.tolist()) == set(range(2**num_symbols)), "every order should occur in 300 rows"


# ---- copy -----------------------------------------------------------------------------------------------------


def test_copy_by_hand() -> None:
    task = CopyRecall(length=1, num_symbols=3, copy_length=2)
    assert task.total_length == 6 and task.spec.vocab_size == 5
    batch = task.batch(4, gen(0))
    for x, y, mask in zip(batch.x.tolist(), batch.y.tolist(), batch.mask.tolist(), strict=True):
        s1, s2 = x[:2]
        assert 1 <= s1 <= 3 and 1 <= s2 <= 3
        assert x == [s1, s2, 0, 4, 0, 0]
        assert y == [0, 0, 0, 0, s1, s2]
        assert mask == [False, False, False, False, True, True]


def test_copy_targets_are_the_first_symbols() -> None:
    task = CopyRecall(length=100, num_symbols=8, copy_length=10)
    batch = task.batch(16, gen(2))
    assert batch.x.shape == (16, 2 * 10 + 100 + 1)
    assert torch.equal(batch.y[batch.mask].view(16, 10), batch.x[:, :10])
    assert bool((batch.x[:, 10:110] == 0).all()) and bool((batch.x[:, 110] == 9).all())
    assert bool((batch.x[:, 111:] == 0).all())


# ---- formal languages -----------------------------------------------------------------------------------------


def test_formal_references_by_hand() -> None:
    assert formal.parity([1, 0, 1]) == 0
    assert formal.parity([1, 1, 1]) == 1
    assert formal.parity([0]) == 0
    assert formal.even_pairs([0, 0, 1, 1, 1, 0]) == 0  # one "01", one "10" (Delétang et al.'s example)
    assert formal.even_pairs([0, 1, 0, 1, 0, 0, 1]) == 1  # three "01", two "10"
    assert formal.even_pairs([1]) == 0
    assert formal.cycle_navigation([2, 0, 1, 0, 0]) == 3  # +1 -1 0 -1 -1 = -2 = 3 mod 5
    assert formal.cycle_navigation([2, 2, 2, 0]) == 2
    assert formal.cycle_navigation([0]) == 4
    assert formal.modular_arithmetic([1, PLUS, 2, TIMES, 3]) == 2  # 1 + 6 = 7
    assert formal.modular_arithmetic([1, MINUS, 1, MINUS, 1]) == 4  # -1
    assert formal.modular_arithmetic([0, TIMES, 1, PLUS, 4, TIMES, 3, MINUS, 2]) == 0  # 0 + 12 - 2 = 10
    assert formal.modular_arithmetic([4, TIMES, 4, TIMES, 4]) == 4  # 64
    assert formal.modular_arithmetic([3]) == 3
    assert formal.modular_arithmetic([2, MINUS, 3, TIMES, 4]) == 0  # 2 - 12 = -10


def test_even_pairs_is_first_differs_from_last_and_arithmetic_matches_python() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        word = torch.randint(0, 2, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g).tolist()
        assert formal.even_pairs(word) == int(word[0] != word[-1])
        n = int(torch.randint(0, 6, (1,), generator=g))
        numbers = torch.randint(0, 5, (n + 1,), generator=g).tolist()
        ops = torch.randint(PLUS, TIMES + 1, (n,), generator=g).tolist()
        word = [numbers[0], *itertools.chain.from_iterable(zip(ops, numbers[1:], strict=True))]
        text = "".join(str(t) if t < 5 else {PLUS: "+", MINUS: "-", TIMES: "*"}[t] for t in word)
        assert formal.modular_arithmetic(word) == eval(text) % 5, text  # the string holds digits and + - * only


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", list(FORMAL))
def test_formal_batches(name: str, split: str) -> None:
    task = SYNTHETIC[name]()
    batch = task.batch(400, gen(7), split)
    S = task.spec.vocab_size - 2  # word symbols; then the query, then the padding
    words = batch.lengths - 1
    lo, hi = (40, 256) if split == "test" else (3, 40)
    assert int(words.min()) >= lo and int(words.max()) <= hi
    if name == "modular-arithmetic":
        assert bool((words % 2 == 1).all())
        lo, hi = lo | 1, hi - (1 - hi % 2)
    assert int(words.min()) == lo and int(words.max()) == hi, "400 rows should reach both ends of the range"
    for x, y, mask, n in zip(batch.x.tolist(), batch.y.tolist(), batch.mask.tolist(), words.tolist(), strict=True):
        assert max(x[:n]) < S and x[n] == S and all(t == S + 1 for t in x[n + 1 :])
        assert mask == [t == n for t in range(len(x))]
        assert y[n] == FORMAL[name](x[:n])
    answers = batch.y[batch.mask]
    assert set(answers.tolist()) == set(range(task.spec.num_outputs)), "every answer should occur in 400 rows"


def test_formal_length_arguments_are_used() -> None:
    batch = Parity(min_length=5, max_length=5, test_min_length=7, test_max_length=9).batch(50, gen(0), "test")
    assert set(batch.lengths.tolist()) == {8, 9, 10}
    batch = ModularArithmetic(min_length=4, max_length=5).batch(20, gen(0), "valid")
    assert set(batch.lengths.tolist()) == {6}


# ---- MQAR -----------------------------------------------------------------------------------------------------


def test_mqar_by_hand() -> None:
    # one pair in a vocabulary of 4: the key is 1, the value 2 or 3, and the only free position is the query
    batch = MQAR(length=3, num_pairs=1, vocab_size=4).batch(6, gen(0))
    for x, y, mask in zip(batch.x.tolist(), batch.y.tolist(), batch.mask.tolist(), strict=True):
        value = x[1]
        assert value in (2, 3)
        assert x == [1, value, 1] and y == [0, 0, value] and mask == [False, False, True]


@pytest.mark.parametrize(("length", "num_pairs", "vocab_size"), [(64, 4, 256), (128, 8, 256), (256, 16, 8192)])
def test_mqar_targets_are_the_pairs_values(length: int, num_pairs: int, vocab_size: int) -> None:
    K, half = num_pairs, vocab_size // 2
    batch = MQAR(length=length, num_pairs=num_pairs, vocab_size=vocab_size).batch(32, gen(3))
    assert batch.x.shape == (32, length)
    for x, y, mask in zip(batch.x.tolist(), batch.y.tolist(), batch.mask.tolist(), strict=True):
        keys, values = x[0 : 2 * K : 2], x[1 : 2 * K : 2]
        assert len(set(keys)) == K and all(1 <= k < half for k in keys)
        assert len(set(values)) == K and all(half <= v < vocab_size for v in values)
        pairs = dict(zip(keys, values, strict=True))
        queries = [t for t in range(length) if mask[t]]
        assert len(queries) == K and min(queries) >= 2 * K
        assert sorted(x[t] for t in queries) == sorted(keys), "every key is queried exactly once"
        assert all(y[t] == pairs[x[t]] for t in queries)
        assert all(x[t] == 0 and y[t] == 0 for t in range(2 * K, length) if not mask[t])


# ---- bad arguments --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AddingProblem(length=1), r"length is 1, expected an integer >= 2"),
        (lambda: AddingProblem(length=10.0), r"length is 10.0, expected an integer"),
        (lambda: AddingProblem(length=True), r"length is True, expected an integer"),
        (lambda: TemporalOrder(num_symbols=4), r"num_symbols is 4, expected 2 or 3"),
        (lambda: TemporalOrder(length=9), r"length is 9, expected an integer >= 10"),
        (lambda: CopyRecall(copy_length=0), r"copy_length is 0, expected an integer >= 1"),
        (lambda: CopyRecall(num_symbols=0), r"num_symbols is 0, expected an integer >= 1"),
        (lambda: CopyRecall(length=-1), r"length is -1, expected an integer >= 0"),
        (lambda: Parity(min_length=0), r"min_length is 0, expected an integer >= 1"),
        (lambda: EvenPairs(min_length=10, max_length=5), r"max_length is 5, expected >= min_length \(10\)"),
        (lambda: CycleNavigation(test_min_length=300), r"test_max_length is 256, expected >= test_min_length \(300\)"),
        (lambda: ModularArithmetic(min_length=4, max_length=4), r"min_length and max_length are both 4, .* odd"),
        (lambda: MQAR(length=10, num_pairs=4), r"length is 10, expected an integer >= 3 · num_pairs = 12"),
        (lambda: MQAR(num_pairs=4, vocab_size=8), r"vocab_size is 8, expected an integer >= 2 · num_pairs \+ 2 = 10"),
        (lambda: MQAR(num_pairs=0), r"num_pairs is 0, expected an integer >= 1"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("name", NAMES)
def test_bad_batch_arguments(name: str) -> None:
    task = SYNTHETIC[name]()
    with pytest.raises(ValueError, match=r"split is 'dev', expected one of train, valid, test"):
        task.batch(2, gen(0), "dev")
    with pytest.raises(ValueError, match=r"batch_size is 0, expected an integer >= 1"):
        task.batch(0, gen(0))
