"""`lstmkit compare` shows every baseline of the valid split (the split of its curves): a row each in results.md, a
dict in results.json, a named dashed line in curves.png on each panel in its metric. The task is
tests/train/fake_tasks.FiniteTask, whose baselines are computed from its data; the models train 2 steps."""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch

from lstmkit.compare import Result, curves_figure, markdown_table
from lstmkit.tasks import TASKS
from tests.helpers import TINY, lstmkit
from tests.train.fake_tasks import FiniteTask

torch.set_num_threads(1)


def dashed(axis) -> dict[str, float]:
    """The dashed horizontal lines of a panel: label -> height."""
    return {line.get_label(): float(line.get_ydata()[0]) for line in axis.lines if line.get_linestyle() == "--"}


@pytest.mark.parametrize(("kind", "metric"), [("regress", "mse"), ("classify", "accuracy"), ("tag", "loss")])
def test_compare_shows_every_baseline_of_the_valid_split(kind, metric, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(TASKS, f"finite-{kind}", partial(FiniteTask, kind))
    out_dir = tmp_path / "cmp"
    argv = ["compare", "--task", f"finite-{kind}", "--models", "lstm", "gru", *TINY, "--steps", 2, "--out", out_dir]
    code, out, err = lstmkit(capsys, *argv)
    assert code == 0, err
    baselines = FiniteTask(kind).baselines("valid")  # computed by the task from its data
    summary = json.loads((out_dir / "results.json").read_text())
    assert summary["baselines"] == pytest.approx(baselines) and list(summary["baselines"]) == list(baselines)
    assert summary["baseline_split"] == "valid" and summary["baseline_metric"] == metric
    table = (out_dir / "results.md").read_text()
    assert out.count("| baseline: ") == len(baselines), out
    header = table.splitlines()[0].split("|")
    column = [c.strip() for c in header].index(f"valid {metric}")
    for name, value in baselines.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| baseline: {name} |"))
        assert row.split("|")[column].strip() == f"{value:.4g}", (row, column)
        assert f"- Baseline ({name}): {metric} {value:.4g}" in table


def test_each_baseline_is_a_named_dashed_line_on_the_panels_in_its_metric():
    baselines = {"persistence": 0.02, "seasonal naive": 0.01}
    left, right = curves_figure([], "regress", baselines).axes
    expected = {f"baseline: {name}": value for name, value in baselines.items()}
    assert dashed(left) == expected and dashed(right) == expected
    assert right.get_ylabel() == "validation mse"
    left, right = curves_figure([], "classify", {"majority class": 0.55, "logistic regression": 0.7}).axes
    assert dashed(left) == {}, "a training loss is not an accuracy"
    assert dashed(right) == {"baseline: majority class": 0.55, "baseline: logistic regression": 0.7}
    left, right = curves_figure([], "tag", {"bigram": 2.5}).axes  # the curves then show the validation loss
    assert dashed(left) == dashed(right) == {"baseline: bigram": 2.5} and right.get_ylabel() == "validation loss"
    left, right = curves_figure([], "tag", {}).axes
    assert dashed(right) == {} and right.get_ylabel() == "validation accuracy"
    _, right = curves_figure([], "regress", 0.167).axes  # a bare number: a spec's baseline, the trivial predictor
    assert dashed(right) == {"baseline: trivial predictor": 0.167}


def test_the_table_has_a_row_per_baseline_in_its_metrics_column(tmp_path):
    result = Result("lstm", 10, {"loss": 1.0, "accuracy": 0.7}, 1.0, tmp_path)
    table = markdown_table([result], "classify", {"majority class": 0.55, "bag of words": 0.75})
    assert "| baseline: majority class | — | — | 0.55 | — |" in table
    assert "| baseline: bag of words | — | — | 0.75 | — |" in table
    assert table.endswith("- Baseline (majority class): accuracy 0.55\n- Baseline (bag of words): accuracy 0.75\n")
    assert "baseline" not in markdown_table([result], "classify", {}).lower()
