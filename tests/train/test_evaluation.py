"""lstmkit.evaluation: a finite split evaluated batch by batch equals one forward over the whole split, for every
kind and batch size (an uneven last batch, tag rows that count different numbers of positions); a synthetic task
gives exactly the examples asked for, the same ones every time; the baselines of a split are the task's own."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit.evaluation import DEFAULT_EXAMPLES, EVAL_SEEDS, evaluate_split, split_baselines
from lstmkit.tasks.base import Batch, compute_metrics, count_targets
from tests.train.fake_tasks import N_EXAMPLES, CausalModel, FiniteTask, GeneratedTask

torch.set_num_threads(1)


def whole_split(task: FiniteTask, split: str) -> Batch:
    """Every example of the split in one batch, padded to the split's longest row."""
    return next(task.iterate(split, N_EXAMPLES[split]))


@pytest.mark.parametrize("kind", ["regress", "classify", "tag"])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 100])
def test_exact_equals_one_forward_over_the_whole_split(kind, batch_size):
    task = FiniteTask(kind)
    model = CausalModel(task.spec).double()  # float64: the loss agrees to rounding; accuracy is a float32 mean
    whole = whole_split(task, "valid")
    expected = compute_metrics(task.spec, model(whole.x, whole.lengths), whole)
    found = evaluate_split(model, task, "valid", batch_size)
    assert found["examples"] == N_EXAMPLES["valid"]
    assert found["targets"] == count_targets(task.spec, whole) == task.split_size("valid")
    assert found.keys() - {"examples", "targets"} == expected.keys()
    for name, value in expected.items():
        rel = 1e-7 if name == "accuracy" else 1e-12
        assert found[name] == pytest.approx(value, rel=rel), (name, found, expected)


def test_tag_batches_are_weighted_by_their_counted_positions():
    """The plain mean of the batches' metrics is not the split's: the batches count different numbers of positions."""
    task = FiniteTask("tag")
    model = CausalModel(task.spec)
    batches = list(task.iterate("valid", 3))
    counts = [count_targets(task.spec, b) for b in batches]
    assert len(set(counts)) > 1, "the test needs batches with different numbers of counted positions"
    per_batch = [compute_metrics(task.spec, model(b.x, b.lengths), b)["loss"] for b in batches]
    by_hand = sum(n * loss for n, loss in zip(counts, per_batch, strict=True)) / sum(counts)
    plain = sum(per_batch) / len(per_batch)
    found = evaluate_split(model, task, "valid", 3)["loss"]
    assert found == pytest.approx(by_hand, rel=1e-6)
    assert abs(found - plain) > 1e-4, "the weighting changes the result here, so this test can fail"


def test_a_batch_without_counted_positions_adds_nothing():
    task = FiniteTask("tag")
    task.data["valid"].mask[0] = False  # row 0 alone is its batch of 1: 0/0 without the guard
    model = CausalModel(task.spec)
    whole = whole_split(task, "valid")
    expected = compute_metrics(task.spec, model(whole.x, whole.lengths), whole)
    found = evaluate_split(model, task, "valid", 1)
    assert found["loss"] == pytest.approx(expected["loss"], rel=1e-6)


def test_a_task_whose_iterate_and_split_size_disagree_is_refused():
    task = FiniteTask("classify")
    task.split_size = lambda split: 99
    with pytest.raises(ValueError, match="iterate gave 7 examples, but split_size says 99"):
        evaluate_split(CausalModel(task.spec), task, "valid", 2)


def test_the_model_is_left_in_the_mode_it_was_in():
    task = FiniteTask("classify")
    model = CausalModel(task.spec).train()
    evaluate_split(model, task, "test", 2)
    assert model.training


@pytest.mark.parametrize(("examples", "batch_size"), [(1, 4), (10, 4), (12, 4), (5, 100)])
def test_a_synthetic_task_gives_exactly_the_examples_asked_for(examples, batch_size):
    task = GeneratedTask()
    model = CausalModel(task.spec)
    found = evaluate_split(model, task, "test", batch_size, examples=examples)
    assert found["examples"] == found["targets"] == examples
    generator = torch.Generator().manual_seed(EVAL_SEEDS["test"])  # the same examples by hand
    batches = [task.batch(min(batch_size, examples - s), generator, "test") for s in range(0, examples, batch_size)]
    whole = Batch(x=torch.cat([b.x for b in batches]), y=torch.cat([b.y for b in batches]))
    expected = compute_metrics(task.spec, model(whole.x), whole)
    assert found["accuracy"] == pytest.approx(expected["accuracy"], rel=1e-6)
    assert evaluate_split(model, task, "test", batch_size, examples=examples) == found, "the same examples again"


def test_a_synthetic_task_gets_the_default_number_of_examples_unless_told():
    task = GeneratedTask()
    model = CausalModel(task.spec)
    found = evaluate_split(model, task, "valid", 100)
    assert found == evaluate_split(model, task, "valid", 100, examples=DEFAULT_EXAMPLES)
    assert found["examples"] == DEFAULT_EXAMPLES


def test_the_eval_seeds_are_out_of_reach_of_training_seeds():
    from lstmkit.train import MAX_SEED

    assert min(EVAL_SEEDS.values()) > MAX_SEED + 1_000_003 and max(EVAL_SEEDS.values()) < 2**64
    assert len(set(EVAL_SEEDS.values())) == 3


@pytest.mark.parametrize(
    ("task", "kwargs", "needle"),
    [
        (FiniteTask("classify"), {"examples": 10}, "fixed valid split of 7 examples"),
        (GeneratedTask(), {"examples": 0}, "examples is 0, expected an integer >= 1"),
        (GeneratedTask(), {"examples": 10**8}, "examples is 100000000, expected at most 10,000,000"),
        (GeneratedTask(), {"examples": 3, "batch_size": 0}, "batch_size is 0"),
        (GeneratedTask(), {"examples": 3, "split": "dev"}, "split is 'dev'"),
    ],
)
def test_bad_arguments_are_one_line(task, kwargs, needle):
    arguments = {"split": "valid", "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=needle):
        evaluate_split(CausalModel(task.spec), task, arguments.pop("split"), arguments.pop("batch_size"), **arguments)


def test_split_baselines_are_the_tasks_own_or_the_trivial_predictor(monkeypatch):
    finite = FiniteTask("regress")
    test = split_baselines(finite, "test")
    train, data = finite.data["train"], finite.data["test"]
    mean_guess = float(((data.y - train.y.mean(0)) ** 2).mean())  # computed here from the data, not typed
    assert list(test) == ["trivial", "half of trivial"] and test["trivial"] == pytest.approx(mean_guess)
    assert split_baselines(finite, "valid")["trivial"] == finite.spec.baseline != test["trivial"]
    assert split_baselines(GeneratedTask(baseline=0.25), "test") == {"trivial predictor": 0.25}
    monkeypatch.delattr(FiniteTask, "baselines")  # without baselines(): the spec's, measured on the valid split only
    assert split_baselines(finite, "valid") == {"trivial predictor": finite.spec.baseline}
    assert split_baselines(finite, "test") == {}
    with pytest.raises(ValueError, match="split is 'dev'"):
        split_baselines(GeneratedTask(), "dev")


def test_a_synthetic_task_without_a_baseline_gets_its_answer_frequencies():
    """Fitted on generated train examples, scored on the split's: the majority class (classify), or the loss of
    predicting the train answers' frequencies at every counted position (tag), both counted here by hand."""
    from lstmkit.tasks.synthetic.formal import Parity

    def answers(task, split):
        generator = torch.Generator().manual_seed(EVAL_SEEDS[split])
        batches = [task.batch(256, generator, split) for _ in range(DEFAULT_EXAMPLES // 256)]
        return torch.cat([b.y[b.mask] if b.mask is not None else b.y for b in batches])

    task = GeneratedTask(baseline=None)
    majority = int(torch.bincount(answers(task, "train"), minlength=3).argmax())
    expected = float((answers(task, "test") == majority).double().mean())
    assert split_baselines(task, "test") == {"majority class": pytest.approx(expected, abs=1e-15)}
    parity = Parity()
    train, test = answers(parity, "train"), answers(parity, "test")
    p1, q1 = float(train.double().mean()), float(test.double().mean())
    loss = -(q1 * math.log(p1) + (1 - q1) * math.log(1 - p1))
    assert split_baselines(parity, "test") == {"answer frequencies": pytest.approx(loss, rel=1e-12)}
    assert abs(loss - math.log(2)) < 0.01
