"""`lstmkit eval` end to end: exact over a finite split by default (== one forward over the whole split, computed
here), generated examples for a synthetic task, --batches sampling as before, the evaluated split's baselines, the
title saying how, and every flag that does not fit the task refused in one line.

The finite task is tests/train/fake_tasks.FiniteTask registered under a name for the test; runs train in a second.
"""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch

from lstmkit.evaluation import evaluate_split
from lstmkit.experiment import load_run
from lstmkit.tasks import TASKS
from lstmkit.tasks.base import compute_metrics
from lstmkit.train import TrainConfig, evaluate
from tests.helpers import TINY, lstmkit, one_line_error
from tests.train.fake_tasks import N_EXAMPLES, FiniteTask

torch.set_num_threads(1)


@pytest.fixture
def finite_run(tmp_path, capsys, monkeypatch):
    """A run trained 4 steps on a finite classification task (test split: N_EXAMPLES["test"] examples)."""
    monkeypatch.setitem(TASKS, "finite-classify", partial(FiniteTask, "classify"))
    run = tmp_path / "finite"
    code, _, err = lstmkit(capsys, "train", "--task", "finite-classify", *TINY, "--steps", 4, "--run-dir", run)
    assert code == 0, err
    return run


@pytest.fixture
def adding_run(tmp_path, capsys):
    run = tmp_path / "adding"
    code, _, err = lstmkit(
        capsys, "train", "--task", "adding", "--task-arg", "length=6", *TINY, "--steps", 2, "--run-dir", run
    )
    assert code == 0, err
    return run


def eval_json(capsys, *argv) -> dict:
    code, out, err = lstmkit(capsys, "eval", *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_a_finite_split_is_evaluated_whole_by_default(finite_run, capsys):
    record = eval_json(capsys, finite_run)
    task, model = FiniteTask("classify"), load_run(finite_run).model
    whole = next(task.iterate("test", N_EXAMPLES["test"]))  # the whole test split in one batch
    with torch.no_grad():
        expected = compute_metrics(task.spec, model.eval()(whole.x, whole.lengths), whole)
    assert record["mode"] == "exact" and record["examples"] == record["targets"] == N_EXAMPLES["test"]
    assert record["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert record["accuracy"] == pytest.approx(expected["accuracy"], rel=1e-6)
    assert record["baselines"] == pytest.approx(task.baselines("test"))  # the test split's, not the valid split's
    assert record["baseline"] == pytest.approx(task.baselines("test")["trivial"])
    assert record["baseline_metric"] == "accuracy"
    assert record["baseline"] != task.spec.baseline, "the test split's trivial baseline differs from the valid one's"
    again = eval_json(capsys, finite_run, "--exact", "--batch-size", 2)
    assert {k: again[k] for k in ("loss", "accuracy")} == pytest.approx({k: record[k] for k in ("loss", "accuracy")})


def test_the_table_says_how_and_shows_the_splits_baselines(finite_run, capsys):
    code, out, err = lstmkit(capsys, "eval", finite_run, "--split", "valid")
    assert code == 0, err
    text = " ".join(out.split())
    assert f"valid split · exact: every example once ({N_EXAMPLES['valid']} examples)" in text
    baselines = FiniteTask("classify").baselines("valid")
    for name, value in baselines.items():
        assert f"accuracy of {name} (valid baseline) │ {value:.4g}" in text


def test_batches_samples_as_the_in_run_evaluation_does(finite_run, capsys):
    record = eval_json(capsys, finite_run, "--batches", 3)
    run = load_run(finite_run)
    config = TrainConfig(**{**run.meta["train"], "eval_batches": 3})
    expected = evaluate(run.model, FiniteTask("classify"), config, split="test")
    assert record["mode"] == "sampled" and record["examples"] == 3 * config.batch_size and "targets" not in record
    assert {k: record[k] for k in expected} == pytest.approx(expected)


def test_a_synthetic_task_is_evaluated_on_generated_examples(adding_run, capsys):
    record = eval_json(capsys, adding_run)
    assert record["mode"] == "generated" and record["examples"] == 2048
    assert (
        record["baselines"] == {"trivial predictor": pytest.approx(1 / 6)}
        and record["baseline"] == record["baselines"]["trivial predictor"]
    )
    record = eval_json(capsys, adding_run, "--examples", 10, "--batch-size", 4)
    run = load_run(adding_run)
    expected = evaluate_split(run.model, TASKS["adding"](length=6), "test", 4, examples=10)
    assert record["examples"] == 10 and record["mse"] == pytest.approx(expected["mse"], rel=1e-6)
    code, out, _ = lstmkit(capsys, "eval", adding_run, "--examples", 10)
    assert code == 0 and "test split · 10 generated examples (fixed seed)" in " ".join(out.split())


@pytest.mark.parametrize(
    ("which", "flags", "needles"),
    [
        ("adding", ["--exact"], ["--exact: task adding generates its examples without end", "--examples N"]),
        ("finite", ["--examples", "5"], ["--examples: task finite-classify's splits are fixed", "--batches N"]),
        ("adding", ["--examples", "0"], ["--examples is 0, expected an integer from 1 to 10,000,000"]),
        ("adding", ["--batches", "0"], ["--batches is 0", "from 1 to 100,000"]),
        ("adding", ["--exact", "--batches", "2"], ["not allowed with argument"]),
        ("adding", ["--examples", "2", "--batches", "2"], ["not allowed with argument"]),
        ("adding", ["--batch-size", "0"], ["batch_size is 0"]),
    ],
)
def test_flags_that_do_not_fit_are_one_line(which, flags, needles, finite_run, adding_run, capsys):
    code, _, err = lstmkit(capsys, "eval", finite_run if which == "finite" else adding_run, *flags)
    one_line_error(code, err, *needles)


def test_a_tag_split_counts_its_scored_positions(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(TASKS, "finite-tag", partial(FiniteTask, "tag"))
    run = tmp_path / "tag"
    code, _, err = lstmkit(capsys, "train", "--task", "finite-tag", *TINY, "--steps", 2, "--run-dir", run)
    assert code == 0, err
    task, model = FiniteTask("tag"), load_run(run).model
    whole = next(task.iterate("test", N_EXAMPLES["test"]))
    with torch.no_grad():
        expected = compute_metrics(task.spec, model.eval()(whole.x, whole.lengths), whole)
    record = eval_json(capsys, run, "--batch-size", 3)  # batches of 3, 3, 3, 2 rows counting different positions
    assert record["targets"] == task.split_size("test") and record["examples"] == N_EXAMPLES["test"]
    assert record["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    code, out, _ = lstmkit(capsys, "eval", run)
    expected_title = f"every example once ({N_EXAMPLES['test']} examples, {task.split_size('test')} scored positions)"
    assert code == 0 and expected_title in " ".join(out.split())
