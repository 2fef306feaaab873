"""`lstmkit exercise` for the gated cells: seeded random examples, the worksheet's empty boxes, the answer key
against the trace (the state-space cells' in test_exercise_ssm.py)."""

import json
import re
import shlex

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.explain import exercise, walkthrough
from lstmkit.explain.exercise import sheets
from lstmkit.explain.walkthrough import as_text, example_file
from tests.helpers import lstmkit

CELLS = exercise.GATED
SIZES = [(2, 2, 2), (1, 1, 1), (3, 1, 4), (4, 4, 4)]
"""(steps, input size, hidden size): the default, the smallest, a lopsided one, the largest."""


def computed_values(w: walkthrough.Walkthrough) -> list[float]:
    """Every number of every row after [1] Given, in page order."""
    return [float(x) for stage in w.stages[1:] for row in stage.rows for x in np.ravel(row.value)]


def markdown_answers(text: str) -> list[float]:
    """The numbers in the last column of the computed stages' tables (before the exact values' <sub>)."""
    body = text.split("## [2] ", 1)[1].split("## Check your answers", 1)[0]
    values = []
    for line in body.splitlines():
        if line.startswith("| ") and not line.startswith("| what |"):
            answer = line.rsplit(" | ", 1)[1].split("<sub>", 1)[0]
            values += [float(v) for v in re.findall(r"`(-?[0-9.]+)`", answer)]
    return values


def html_answers(page: str) -> list[float]:
    return [float(v) for v in re.findall(r'data-value="([^"]*)"', page)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("steps", "input_size", "hidden_size"), SIZES)
def test_answer_key_is_the_hand_trace(cell, steps, input_size, hidden_size):
    ex = exercise.make(cell, 11, steps, input_size, hidden_size)
    hand = walkthrough.build(ex.example, "hand")
    expected = computed_values(hand)
    assert markdown_answers(sheets.answers_markdown(ex)) == expected
    assert html_answers(sheets.answers_html(ex)) == expected
    assert expected[-hidden_size:] == hand.steps[-1].h.tolist()  # the page ends with the last step's h
    tenths = np.array(expected) * 10
    np.testing.assert_array_equal(tenths, np.round(tenths), err_msg="an answer is not a multiple of 0.1")


@pytest.mark.parametrize("cell", CELLS)
def test_exact_values_sit_beside_the_answers(cell):
    ex = exercise.make(cell, 5)
    exact = [float(x) for x in re.findall(r'data-exact="([^"]*)"', sheets.answers_html(ex))]
    np.testing.assert_allclose(exact, computed_values(ex.exact), atol=5e-7)
    assert "<sub>exact " in sheets.answers_markdown(ex)


@pytest.mark.parametrize("cell", CELLS)
def test_worksheet_has_one_empty_box_per_number(cell):
    ex = exercise.make(cell, 3, steps=3, input_size=2, hidden_size=3)
    count = len(computed_values(ex.hand))
    md = sheets.worksheet_markdown(ex)
    assert md.count(sheets.BOX_MD) == count
    assert markdown_answers(md) == []  # the answer column holds boxes only, never a number
    body = md.split("## [2] ", 1)[1].split("## Check your answers", 1)[0]
    for line in body.splitlines():
        if line.startswith("| ") and not line.startswith("| what |"):
            assert re.fullmatch(r"(\[`____`(, `____`)*\](<br>)?)+", line.rsplit(" | ", 1)[1][:-2]), line
    page = sheets.worksheet_html(ex)
    assert page.count('<span class="box"></span>') == count
    assert re.findall(r'<span class="box"[^>]*>([^<]*)</span>', page) == [""] * count
    assert "data-value" not in page and "data-exact" not in page


@pytest.mark.parametrize("cell", CELLS)
def test_given_stage_is_shown_in_full(cell):
    ex = exercise.make(cell, 2)
    data = json.loads(exercise.spec_text(ex.example))
    md, page = sheets.worksheet_markdown(ex), sheets.worksheet_html(ex)
    for name in data["weights"]:
        assert f"| {name} |" in md and f'<td class="what">{name}</td>' in page
    given = md.split("## [1] Given", 1)[1].split("## [2] ", 1)[0]
    for x in data["inputs"]:
        assert f"`[{', '.join(str(v) for v in x)}]`" in given
    assert ex.command in md and ex.command in page
    assert "half away from zero" in md and "carry the rounded value forward" in md.lower()
    assert ("exp(z)" in md) == (cell == "slstm")


def test_same_seed_same_files_different_seed_different_weights(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        code, out, _ = lstmkit(
            capsys, "exercise", "--cell", "gru", "--seed", "4", "-o", str(tmp_path / folder / "ex.html")
        )
        assert code == 0 and out.count("\n") == 1
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["ex-answers.html", "ex.html", "ex.json"]  # and no temporary file left behind
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for cell in CELLS:
        weights = [example_file.to_dict(exercise.random_example(cell, seed))["weights"] for seed in (1, 2)]
        assert weights[0] != weights[1], cell
        assert example_file.to_dict(exercise.random_example(cell, 1)) == example_file.to_dict(
            exercise.random_example(cell, 1)
        )


def test_the_printed_command_makes_the_same_page(capsys):
    code, first, _ = lstmkit(capsys, "exercise", "--cell", "slstm", "--seed", "9", "--steps", "3", "--input-size", "1")
    assert code == 0 and first.startswith("# sLSTM exercise, seed 9: worksheet")
    command = next(line.strip() for line in first.splitlines() if line.strip().startswith("lstmkit exercise "))
    _, again, _ = lstmkit(capsys, *shlex.split(command)[1:])
    assert again == first
    _, answers, _ = lstmkit(capsys, *shlex.split(command)[1:], "--answers")
    assert answers.startswith("# sLSTM exercise, seed 9: answer key")


@pytest.mark.parametrize("cell", CELLS)
def test_saved_spec_checks_the_answers_with_walkthrough(cell, tmp_path, capsys):
    code, out, _ = lstmkit(capsys, "exercise", "--cell", cell, "--seed", "8", "-o", str(tmp_path / "ex.md"))
    assert code == 0 and "ex.md" in out and "ex-answers.md" in out and "ex.json" in out
    code, out, _ = lstmkit(capsys, "walkthrough", "--spec", str(tmp_path / "ex.json"), "--format", "json")
    assert code == 0
    checked = json.loads(out)
    ex = exercise.make(cell, 8)
    assert checked["steps"] == as_text.to_json_dict(ex.hand)["steps"]
    answers = markdown_answers((tmp_path / "ex-answers.md").read_text())
    assert answers[-len(checked["steps"][-1]["h"]) :] == checked["steps"][-1]["h"]
    assert "lstmkit walkthrough --spec ex.json" in (tmp_path / "ex.md").read_text()


def test_html_is_self_contained_printable_and_escaped(tmp_path, capsys):
    target = tmp_path / "a&<b>.html"
    assert main(["exercise", "--cell", "lstm", "-o", str(target)]) == 0
    capsys.readouterr()
    for page in (target.read_text(), (tmp_path / "a&<b>-answers.html").read_text()):
        assert page.startswith("<!DOCTYPE html>")
        assert "http://" not in page and "https://" not in page
        assert not re.search(r"\b(src|href)\s*=", page)
        assert "@media print" in page
        assert "a&amp;&lt;b&gt;.json" in page and "<b>" not in page


def test_dull_draws_are_recognised():
    ex = exercise.random_example("lstm", 0)
    assert not exercise.is_dull(ex)
    data = example_file.to_dict(ex)
    data["weights"]["W_o"] = np.zeros_like(data["weights"]["W_o"]).tolist()
    assert exercise.is_dull(example_file.from_dict(data))  # a gate whose weights are all zero
    data = example_file.to_dict(ex)
    data["weights"] = {k: (np.asarray(v) * 10).tolist() for k, v in data["weights"].items()}
    assert exercise.is_dull(example_file.from_dict(data))  # every gate saturates


BAD = [
    (["--hidden-size", "5"], "hidden size is 5, expected an integer from 1 to 4"),
    (["--input-size", "0"], "input size is 0, expected an integer from 1 to 4"),
    (["--steps", "0"], "steps is 0, expected an integer from 1 to 4"),
    (["--steps", "9"], "steps is 9, expected an integer from 1 to 4"),
    (["--seed", "-1"], "seed is -1, expected a non-negative integer"),
    (["--cell", "mlstm"], "invalid choice: 'mlstm'"),
    (["--cell", "transformer"], "invalid choice: 'transformer'"),
    (["-o", "ex.json"], "expected a worksheet name such as ex.md or ex.html"),
    (["--answers", "-o", "ex.md"], "drop --answers"),
    (["-o", "no/such/folder/ex.md"], "folder no/such/folder does not exist"),
    (["-o", "."], "-o . is a folder, expected a file name such as ex.html"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_arguments_are_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = lstmkit(capsys, "exercise", *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert out == "" and list(tmp_path.iterdir()) == []


def test_library_errors_name_the_problem():
    with pytest.raises(ValueError, match="cell is 'mlstm', expected one of lstm, gru, rnn, slstm, ssm, mamba"):
        exercise.random_example("mlstm", 0)
    with pytest.raises(ValueError, match="steps is True, expected an integer"):
        exercise.random_example("lstm", 0, steps=True)
