"""The real tasks' evaluation contract (split_size, iterate, baselines), each baseline against a slow obvious form.

The datasets come from the cache test_tasks_real.py fills (.cache/lstmkit-test); each task is built once here.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lstmkit.tasks import compute_metrics
from lstmkit.tasks.base import count_targets, tag_mask
from lstmkit.tasks.real import REAL
from lstmkit.tasks.real.baselines import (
    dtw_distances,
    fit_logistic,
    majority_accuracy,
    nearest_neighbour_accuracy,
    sparse_rows,
)
from lstmkit.tasks.real.sentiment import ngrams, words
from lstmkit.tasks.real.shakespeare import BIGRAM_K, add_k, bigram_counts, bigram_loss, unigram_log_p
from lstmkit.tasks.real.vowels import mean_std
from tests.helpers import CACHE

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def tasks():
    """The tasks built so far, by name and arguments. One thread while they fit: on an oversubscribed machine
    (several test runs on 2 cores) the sparse products of the logistic regression ran 30x slower on 2 threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {}
    torch.set_num_threads(threads)


def task(tasks: dict, name: str, **args):
    key = (name, *sorted(args.items()))
    if key not in tasks:
        tasks[key] = REAL[name](CACHE, **args)
    return tasks[key]


def weighted_metric(spec, batches, predict, metric: str) -> float:
    """A metric over every batch, each weighted by the targets it holds (what an exact evaluator computes)."""
    total = count = 0
    for batch in batches:
        n = count_targets(spec, batch)
        total += compute_metrics(spec, predict(batch), batch)[metric] * n
        count += n
    return total / count


# --- time series ---------------------------------------------------------------------------------------------------


def test_timeseries_iterate_covers_each_month_once(tasks):
    forecast = task(tasks, "timeseries")
    for split in SPLITS:
        batches = list(forecast.iterate(split, 16))
        assert all(len(b.y) == 16 for b in batches[:-1]) and 1 <= len(batches[-1].y) <= 16
        every = forecast.split_examples(split)
        assert torch.equal(torch.cat([b.y for b in batches]), every.y) and torch.equal(
            torch.cat([b.x for b in batches]), every.x
        ), f"{split}: iterate must give split_examples' rows, in order"
        assert sum(len(b.y) for b in batches) == forecast.split_size(split) == len(every.y)
        assert next(iter(forecast.iterate(split, 16))).x.equal(batches[0].x), "the same batches on every call"


def test_timeseries_persistence_is_predicting_zero_and_round_trips_to_ppm(tasks):
    forecast = task(tasks, "timeseries", horizon=3)
    for split in SPLITS:
        zero = weighted_metric(forecast.spec, forecast.iterate(split, 50), lambda b: torch.zeros_like(b.y), "mse")
        assert abs(forecast.baselines(split)["persistence"] - zero) < 1e-6 * zero, split
        last = forecast.last_observed(split)
        months = list(range(*forecast.first_targets(split)))
        assert torch.equal(last, torch.tensor([float(forecast.ppm[t - 1]) for t in months], dtype=torch.float64))
        ppm = forecast.to_ppm(forecast.split_examples(split).y, last)
        expected = torch.stack([forecast.ppm[t : t + 3] for t in months])
        assert (ppm - expected).abs().max() < 1e-4, "to_ppm undoes the relative targets (float32 rounding only)"


@pytest.mark.parametrize("relative", [1, 0])
def test_timeseries_seasonal_naive_by_a_loop_over_months(tasks, relative):
    forecast = task(tasks, "timeseries", horizon=14, window=6, relative=relative)
    for split in ("train", "test"):
        errors = []
        for t in range(*forecast.first_targets(split)):
            last = float(forecast.ppm[t - 1])
            for k in range(14):
                lag = 12 if k < 12 else 24  # the latest month of the same season that is already observed
                guess, truth = float(forecast.ppm[t + k - lag]), float(forecast.ppm[t + k])
                scale = forecast.scale if relative else forecast.std
                target = (truth - last) / scale if relative else (truth - forecast.mean) / scale
                prediction = (guess - last) / scale if relative else (guess - forecast.mean) / scale
                errors.append((prediction - float(torch.tensor(target).float())) ** 2)
        slow = sum(errors) / len(errors)
        assert abs(forecast.baselines(split)["seasonal naive"] - slow) < 1e-9 * slow, split
    assert forecast.first_targets("train")[0] == 12, "12 months of history for the seasonal baseline"


def test_timeseries_linear_ar_is_least_squares_and_beats_persistence(tasks):
    forecast = task(tasks, "timeseries")
    beta = forecast._linear_ar()
    x, y = forecast._windows(torch.arange(*forecast.first_targets("train")))
    design = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    residual = design @ beta - y
    assert (design.T @ residual).abs().max() < 1e-8 * len(x), "normal equations: residual orthogonal to the inputs"
    for split in SPLITS:
        scores = forecast.baselines(split)
        assert list(scores) == ["persistence", "seasonal naive", "linear AR"]
        assert scores["linear AR"] < 0.2 * scores["persistence"], split


def test_timeseries_relative_argument_is_checked():
    with pytest.raises(ValueError, match="relative is 2, expected at most 1"):
        REAL["timeseries"](CACHE, relative=2)


# --- Shakespeare ---------------------------------------------------------------------------------------------------


def test_shakespeare_iterate_predicts_each_character_once(tasks):
    plays = task(tasks, "shakespeare", seq_len=1000)
    for split in ("valid", "test"):
        ids = plays.split_ids(split)
        batches = list(plays.iterate(split, 64))
        predicted = torch.cat([b.y[tag_mask(b)] for b in batches])
        assert len(predicted) == plays.split_size(split) == len(ids) - 1
        assert torch.equal(predicted, ids[1:]), "every character after the first, once, in order"
        contexts = torch.cat([b.x[tag_mask(b)] for b in batches])
        assert torch.equal(contexts, ids[:-1]), "each predicted from the character before it"
        assert all(len(b.y) == 64 for b in batches[:-1]) and all(b.lengths is None for b in batches[:-1])
        assert batches[-1].lengths is not None and int(batches[-1].lengths[-1]) == (len(ids) - 1) % 1000


def test_unigram_and_bigram_by_explicit_counting():
    text = [0, 1, 0, 1, 2, 0, 0, 1]  # V = 3
    V, k = 3, 0.5
    pairs: dict[tuple[int, int], int] = {}
    for a, c in itertools.pairwise(text):
        pairs[a, c] = pairs.get((a, c), 0) + 1
    counts = bigram_counts(torch.tensor(text), V)
    assert counts.tolist() == [[pairs.get((a, c), 0) for c in range(V)] for a in range(V)]
    scored = [1, 2, 2, 0]
    slow = 0.0
    for a, c in itertools.pairwise(scored):
        row = sum(pairs.get((a, j), 0) for j in range(V))
        slow -= math.log((pairs.get((a, c), 0) + k) / (row + k * V))
    assert abs(bigram_loss(add_k(counts, k), torch.tensor(scored)) - slow / 3) < 1e-12
    unigram = unigram_log_p(torch.tensor(text), V)
    assert torch.allclose(unigram.exp(), torch.tensor([5 / 11, 4 / 11, 2 / 11], dtype=torch.float64))


def test_shakespeare_baselines(tasks):
    plays = task(tasks, "shakespeare", seq_len=1000)
    counts = bigram_counts(plays.split_ids("train"), len(plays.vocab))
    valid_losses = [bigram_loss(add_k(counts, k), plays.split_ids("valid")) for k in BIGRAM_K]
    for split in ("valid", "test"):
        scores = plays.baselines(split)
        assert list(scores) == ["unigram", "bigram"]
        ids = plays.split_ids(split)
        unigram = -float(unigram_log_p(plays.split_ids("train"), len(plays.vocab))[ids[1:]].mean())
        assert scores["unigram"] == unigram and 2.5 < unigram < math.log(83)
        assert 2.0 < scores["bigram"] < unigram - 0.5
    assert plays.baselines("valid")["bigram"] == min(valid_losses), "k chosen on valid"
    uniform = weighted_metric(plays.spec, plays.iterate("valid", 64), lambda b: torch.zeros(*b.x.shape, 83), "loss")
    assert abs(uniform - math.log(83)) < 1e-5
    assert plays.spec.baseline == plays.baselines("valid")["unigram"]


# --- sentiment -----------------------------------------------------------------------------------------------------


def test_words_and_ngrams():
    assert words("Don't LOVE it!!  Really? 10/10") == ["don't", "love", "it", "!", "!", "really", "?", "10", "10"]
    assert ngrams(["a", "b", "a", "b"]) == ["a", "b", "a b", "b a"]


def test_sentiment_iterate_and_baselines(tasks):
    reviews = task(tasks, "sentiment")
    for split in SPLITS:
        batches = list(reviews.iterate(split, 500))
        data = reviews.data[split]
        assert sum(len(b.y) for b in batches) == reviews.split_size(split) == len(data.y)
        assert torch.equal(torch.cat([b.y for b in batches]), data.y)
        assert torch.equal(torch.cat([b.lengths for b in batches]), data.lengths)
        for b, start in zip(batches, range(0, len(data.y), 500), strict=True):
            assert b.x.dtype == torch.long and b.x.shape[1] == int(b.lengths.max())
            assert torch.equal(b.x, data.x[start : start + len(b.y), : b.x.shape[1]].long())
    for split in ("valid", "test"):
        scores = reviews.baselines(split)
        assert list(scores) == ["majority class", "bag-of-words logistic regression"]
        y = reviews.data[split].y
        assert scores["majority class"] == float((y == 1).double().mean()), "positive is the train majority"
        assert scores["bag-of-words logistic regression"] > scores["majority class"] + 0.15
    assert reviews.spec.baseline == reviews.baselines("valid")["majority class"]


def test_logistic_regression_reaches_its_optimum_sparse_or_dense():
    g = torch.Generator().manual_seed(0)
    rows = [torch.randperm(12, generator=g)[: int(torch.randint(1, 5, (1,), generator=g))].tolist() for _ in range(40)]
    labels = torch.tensor([int(sum(r) % 3) for r in rows])
    sparse = sparse_rows(rows, 12)
    dense = sparse.to_dense()
    assert dense.sum().item() == sum(len(r) for r in rows) and all(dense[n, rows[n]].eq(1).all() for n in range(40))
    fits = [fit_logistic(features, labels, 3, l2=0.05) for features in (sparse, dense)]
    assert torch.allclose(fits[0].W, fits[1].W, atol=1e-6) and torch.allclose(fits[0].b, fits[1].b, atol=1e-6)
    W, b = fits[1].W.clone().requires_grad_(), fits[1].b.clone().requires_grad_()
    loss = torch.nn.functional.cross_entropy(dense @ W + b, labels) + 0.025 * (W * W).sum()
    loss.backward()
    assert W.grad.abs().max() < 1e-5 and b.grad.abs().max() < 1e-5, "autograd's gradient vanishes at the fit"
    with pytest.raises(ValueError, match="l2 is 0, expected a number > 0"):
        fit_logistic(dense, labels, 3, l2=0)


def test_majority_accuracy_by_hand():
    assert majority_accuracy(torch.tensor([2, 0, 2, 1]), torch.tensor([2, 2, 0, 1, 2])) == 3 / 5
    assert majority_accuracy(torch.tensor([1, 0]), torch.tensor([0, 1, 1])) == 1 / 3, "ties go to the smaller"


# --- vowels --------------------------------------------------------------------------------------------------------


def slow_dtw(a: list[list[float]], b: list[list[float]]) -> float:
    D = [[math.inf] * (len(b) + 1) for _ in range(len(a) + 1)]
    D[0][0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = sum((u - v) ** 2 for u, v in zip(a[i - 1], b[j - 1], strict=True))
            D[i][j] = cost + min(D[i - 1][j], D[i][j - 1], D[i - 1][j - 1])
    return D[len(a)][len(b)]


def test_dtw_against_the_textbook_table():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 5, 2, generator=g), torch.randn(4, 6, 2, generator=g)
    a_lengths, b_lengths = torch.tensor([5, 1, 3]), torch.tensor([6, 2, 1, 4])
    fast = dtw_distances(a, a_lengths, b, b_lengths)
    for n in range(3):
        for m in range(4):
            slow = slow_dtw(a[n, : a_lengths[n]].tolist(), b[m, : b_lengths[m]].tolist())
            assert abs(float(fast[n, m]) - slow) < 1e-9, (n, m)
    assert dtw_distances(a[:1], a_lengths[:1], a[:1], a_lengths[:1]).item() < 1e-12
    assert slow_dtw([[0.0], [1.0], [1.0]], [[0.0], [1.0]]) == 0.0, "warping repeats a frame for free"


def test_vowels_iterate_and_baselines(tasks):
    vowels = task(tasks, "vowels")
    for split in SPLITS:
        batches = list(vowels.iterate(split, 100))
        data = vowels.data[split]
        assert sum(len(b.y) for b in batches) == vowels.split_size(split) == len(data.y)
        assert torch.equal(torch.cat([b.y for b in batches]), data.y)
        assert torch.equal(torch.cat([b.lengths for b in batches]), data.lengths)
    data = vowels.data["test"]
    frames = data.x[5, : data.lengths[5]].double()
    assert torch.allclose(mean_std(data)[5], torch.cat([frames.mean(0), frames.std(0, unbiased=False)]))
    scores = vowels.baselines("test")
    assert list(scores) == ["majority class", "1-NN DTW", "mean-std logistic regression"]
    assert scores["majority class"] == float(
        (data.y == torch.bincount(vowels.data["train"].y).argmax()).double().mean()
    )
    assert scores["1-NN DTW"] == nearest_neighbour_accuracy(vowels.data["train"], data, chunk=7), "chunks agree"
    assert scores["1-NN DTW"] > 0.9 and scores["mean-std logistic regression"] > 0.9
    assert vowels.spec.baseline == vowels.baselines("valid")["majority class"]
