"""The formal-language table's machinery (lstmkit.yardsticks): the score by hand, chance measured on the scored
examples, a two-cell table trained end to end and resumed, bad arguments in one line. The table itself is
`make yardsticks` (its numbers are in the README)."""

from __future__ import annotations

import json

import pytest
import torch

from lstmkit.tasks.synthetic.formal import Parity
from lstmkit.yardsticks.__main__ import main
from lstmkit.yardsticks.formal_table import BUDGET, EVAL_EXAMPLES, LEVELS, cell_config, chance, tasks_present
from lstmkit.yardsticks.render import markdown, rank_normalised, row_means


def cell(task, row, accuracy, chance=0.5):
    return {"task": task, "row": row, "accuracy": accuracy, "chance": chance, "seconds": 60.0}


def test_rank_normalised_by_hand():
    cells = [cell("a", "x", 1.0), cell("a", "y", 0.5), cell("a", "z", 0.75)]
    cells += [cell("b", "x", 0.52), cell("b", "y", 0.45), cell("b", "z", 0.5)]  # nobody 0.05 above chance: all 0
    cells += [cell("c", "x", 0.99), cell("c", "y", 0.99), cell("c", "z", 0.4)]  # below chance: 0, not negative
    scores = rank_normalised(cells)
    assert scores["a", "x"] == 1 and scores["a", "y"] == 0 and scores["a", "z"] == pytest.approx(0.5)
    assert {scores["b", r] for r in "xyz"} == {0.0}
    assert scores["c", "x"] == scores["c", "y"] == 1 and scores["c", "z"] == 0
    means = row_means(scores, ["a", "b", "c"], ["x", "y", "z"])
    assert means == pytest.approx({"x": 2 / 3, "y": 1 / 3, "z": 1 / 6})
    by = {(c["task"], c["row"]): c for c in cells}
    text = markdown(by, scores, means, ["a", "b", "c"], ["x", "y", "z"], LEVELS)
    assert "| x | 1.00 | 0.52 | 0.99 | 0.67 |" in text and "| *chance* | 0.50 | 0.50 | 0.50 | |" in text


def test_chance_is_the_majority_answer_of_the_scored_examples():
    task = Parity()
    generator = torch.Generator().manual_seed(BUDGET.seed + 1_000_003)
    answers = torch.cat([task.batch(32, generator, "test").y.sum(1) for _ in range(EVAL_EXAMPLES // 32)])
    ones = int(answers.sum())  # y is 0 off the query, the answer at it: the ones are the odd words
    assert chance(task, BUDGET) == max(ones, EVAL_EXAMPLES - ones) / EVAL_EXAMPLES


def test_every_task_of_the_table_is_registered_and_the_curriculum_is_set():
    assert tasks_present() == [t for names in LEVELS.values() for t in names]
    assert cell_config(3000).curriculum == "max_length=10@1200" and cell_config(BUDGET.steps).steps == 3000


def test_a_small_table_trains_writes_and_resumes(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["formal", "--out", str(out), "--only", "parity", "--rows", "lstm,transformer", "--steps", "3"]
    assert main([*argv, "--workers", "1"]) == 0
    cells = json.loads((out / "table.json").read_text())["cells"]
    assert {c["row"] for c in cells} == {"lstm", "transformer"} and all(0 <= c["accuracy"] <= 1 for c in cells)
    assert (out / "table.png").read_bytes()[:4] == b"\x89PNG" and "| lstm |" in (out / "table.md").read_text()
    stamp = (out / "cells" / "parity--lstm.json").stat().st_mtime_ns
    assert main([*argv, "--workers", "1"]) == 0  # nothing left to train: the cells are kept
    assert (out / "cells" / "parity--lstm.json").stat().st_mtime_ns == stamp
    (out / "cells" / "parity--transformer.json").unlink()  # a task with a row missing is left out of the table
    assert main([*argv, "--render"]) == 2 and "no task of the table has every row" in capsys.readouterr().err
    assert not (out / "cells" / "parity--transformer.json").exists(), "--render trains nothing"


@pytest.mark.parametrize(
    ("extra", "needle"), [(["--rows", "gpt"], "unknown rows or tasks gpt"), (["--workers", "0"], "--workers is 0")]
)
def test_bad_arguments_are_one_line(extra, needle, tmp_path, capsys):
    assert main(["formal", "--out", str(tmp_path / "t"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
