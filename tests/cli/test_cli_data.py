"""`lstmkit data show`: each split's size and baselines, computed by the task (split_size, baselines), shown as the
task gives them; a task without them shows what it has. The dataset is tests/train/fake_tasks.FiniteTask registered
for the test under a name, so nothing is downloaded."""

from __future__ import annotations

import re

import pytest

from lstmkit.tasks.real import REAL
from lstmkit.tasks.synthetic import AddingProblem
from tests.helpers import lstmkit
from tests.train.fake_tasks import FiniteTask


def rows(out: str) -> dict[str, list[str]]:
    """The splits table's rows: split name -> its cells after the name."""
    found = {}
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if cells and cells[0] in ("train", "valid", "test"):
            found[cells[0]] = cells[1:]
    return found


@pytest.mark.parametrize(
    ("kind", "size", "metric"), [("classify", "examples", "accuracy"), ("tag", "positions", "loss")]
)
def test_show_prints_each_splits_size_and_baselines(kind, size, metric, capsys, monkeypatch):
    monkeypatch.setitem(REAL, f"finite-{kind}", lambda cache_dir: FiniteTask(kind))
    code, out, err = lstmkit(capsys, "data", "show", f"finite-{kind}", "--cache-dir", "unused")
    assert code == 0, err
    task = FiniteTask(kind)
    assert f"finite-{kind}: kind {kind}" in out and size in out
    assert f"baselines in {metric}, fitted on the train split" in " ".join(out.split())
    found = rows(out)
    for split in ("train", "valid", "test"):
        baselines = task.baselines(split)  # computed from the data by the task, not typed
        expected = [f"{task.split_size(split):,}", *(f"{v:.4g}" for v in baselines.values())]
        assert found[split] == expected, (split, found)
    assert rows(out)["valid"][1] == f"{task.spec.baseline:.4g}", "the valid split's trivial one is the spec's"


def test_a_task_without_split_sizes_shows_its_baseline_alone(capsys, monkeypatch):
    monkeypatch.setitem(REAL, "generated", lambda cache_dir: AddingProblem(length=5))
    code, out, err = lstmkit(capsys, "data", "show", "generated", "--cache-dir", "unused")
    assert code == 0, err
    assert all(cells == [f"{AddingProblem(length=5).spec.baseline:.4g}"] for cells in rows(out).values()), out
