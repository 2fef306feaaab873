"""`lstmkit exercise --cell ssm | mamba`: friendly seeded draws, what makes one dull, the function tables that
give every exp, softplus and SiLU the hand needs, and the sheets against the hand-mode walkthrough."""

import json
import re
import shlex

import numpy as np
import pytest

from lstmkit.explain import exercise, walkthrough
from lstmkit.explain.exercise import problem, sheets
from lstmkit.explain.walkthrough import as_text, example_file, stages
from lstmkit.reference.mamba import silu, softplus
from lstmkit.reference.rounding import hand
from lstmkit.reference.ssm import DISCRETIZATIONS
from tests.explain.test_exercise import computed_values, html_answers, markdown_answers
from tests.helpers import lstmkit, one_line_error

CELLS = ("ssm", "mamba")
SIZES = [(2, 2, 2), (1, 1, 1), (3, 1, 4), (4, 4, 4), (4, 2, 1)]
"""(steps, channels C, state size N): the default, the smallest, a lopsided one, the largest, a long one."""
SEEDS = range(6)


def draw(cell: str, seed: int, size=(2, 2, 2), discretization: str = "zoh"):
    return exercise.random_example(cell, seed, *size, discretization if cell == "ssm" else "zoh")


def tenths(a) -> np.ndarray:
    """a × 10, checked to be whole numbers."""
    a = np.asarray(a, dtype=float) * 10
    np.testing.assert_allclose(a, np.round(a), atol=1e-9, err_msg="not a multiple of 0.1")
    return np.round(a)


def integers(a, low: int, high: int) -> None:
    a = np.asarray(a, dtype=float)
    np.testing.assert_array_equal(a, np.round(a), err_msg="not whole numbers")
    assert low <= a.min() and a.max() <= high, (a, low, high)


# --- what is drawn ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_ssm_draws_friendly_numbers(seed, size):
    ex = draw("ssm", seed, size)
    p = ex.params
    assert set(p.delta.tolist()) <= {0.5, 1.0}
    dA = tenths(p.delta[:, None] * p.A)  # exactly on the tenths
    assert set(dA.ravel().tolist()) <= {-1.0, -2.0, -5.0, -7.0, -9.0, -12.0, -16.0}
    a_bar = np.exp(dA / 10)
    np.testing.assert_allclose(a_bar, np.round(a_bar, 1), atol=0.02)  # Ā close to a tenth
    tenths(p.A)  # A itself has one decimal
    for m in (p.B, p.C):
        integers(m, -2, 2)
    integers(p.D, -1, 1)
    integers(ex.xs, -2, 2)
    integers(ex.state0.h, -1, 1)
    assert ex.gate is None and p.discretization == "zoh"
    assert np.asarray(ex.xs).shape == (size[0], size[1]) and p.state_size == size[2]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_mamba_draws_friendly_numbers(seed, size):
    ex = draw("mamba", seed, size)
    p = ex.params
    integers(p.A, -2, -1)
    for m in (p.W_delta, p.b_delta, p.W_B, p.W_C, p.D):
        integers(m, -1, 1)
    integers(ex.xs, -1, 2)
    integers(ex.gate, -1, 2)
    assert not np.any(ex.state0.h)
    for s in stages.trace(ex, hand):
        integers(s.pre_delta, -10, 10)  # whole numbers: softplus is read from the table
        tenths(s.dA)


@pytest.mark.parametrize("cell", CELLS)
def test_same_seed_same_draw_different_seed_different_one(cell):
    assert example_file.to_dict(draw(cell, 4)) == example_file.to_dict(draw(cell, 4))
    weights = [example_file.to_dict(draw(cell, seed))["weights"] for seed in (1, 2)]
    assert weights[0] != weights[1]


def test_the_discretization_does_not_change_the_numbers():
    """Every draw's numbers are the same for every discretization, so a seed gives the same numbers unless one
    discretization finds its first draw dull and redraws."""
    for seed in range(10):
        raw = [problem._draw_ssm(np.random.default_rng(seed), 3, 1, 2, name) for name in DISCRETIZATIONS]
        assert all({**r, "discretization": "zoh"} == raw[0] for r in raw), seed
    same = 0
    for seed in range(20):
        specs = [example_file.to_dict(draw("ssm", seed, (3, 1, 2), name)) for name in DISCRETIZATIONS]
        same += all(spec["weights"] == specs[0]["weights"] and spec["inputs"] == specs[0]["inputs"] for spec in specs)
    assert same >= 15


# --- what makes a draw dull ---------------------------------------------------------------------------------


def lively(cell: str, seed: int, size) -> None:
    """The docstring's rules, checked from the hand trace (independently of is_dull)."""
    ex = draw(cell, seed, size)
    p = ex.params
    matrices = (p.B, p.C) if cell == "ssm" else (p.W_delta, p.W_B, p.W_C)
    assert all(np.any(m, axis=-1).all() if cell == "ssm" else np.any(m) for m in matrices)
    steps = stages.trace(ex, hand)
    for c in range(p.input_size):
        assert any(np.any(s.h[c]) for s in steps), f"channel {c + 1} does nothing"
    for s in steps:
        assert np.any(s.h) and np.any(s.y if cell == "ssm" else s.out)
        assert max(np.max(np.abs(v)) for v in s if v is not None) <= problem.LARGE
    if cell == "mamba" and np.size([s.delta for s in steps]) > 1:
        assert len({float(d) for s in steps for d in s.delta}) > 1  # selection at work: Δ changes


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("size", SIZES)
def test_every_draw_is_lively(cell, size):
    for seed in SEEDS:
        lively(cell, seed, size)


def edited(ex, weights=None, **fields):
    """The example with some weights (or inputs, gate) replaced."""
    data = example_file.to_dict(ex)
    data["weights"].update(weights or {})
    data.update(fields)
    return example_file.from_dict(data)


def test_dull_ssm_draws_are_recognised():
    ex = draw("ssm", 0, (2, 2, 2))
    assert not exercise.is_dull(ex)
    B = np.asarray(ex.params.B).copy()
    B[1] = 0
    assert exercise.is_dull(edited(ex, {"B": B.tolist()}))  # channel 2's state is never written
    C = np.asarray(ex.params.C).copy()
    C[0] = 0
    assert exercise.is_dull(edited(ex, {"C": C.tolist()}))  # channel 1's state is never read
    assert exercise.is_dull(edited(ex, inputs=(np.asarray(ex.xs) * 20).tolist()))  # blows up
    quiet = edited(ex, inputs=[[0, 0], [0, 0]], initial_state={"h": [[0, 0], [0, 0]]})
    assert exercise.is_dull(quiet)  # nothing ever enters the state
    one_quiet = edited(ex, inputs=[[0, 1], [0, 1]], initial_state={"h": [[0, 0], [1, 1]]})
    assert exercise.is_dull(one_quiet)  # channel 1 never holds anything


def test_dull_mamba_draws_are_recognised():
    ex = draw("mamba", 0, (2, 2, 2))
    assert not exercise.is_dull(ex)
    for name in ("W_delta", "W_B", "W_C"):
        zeros = np.zeros_like(getattr(ex.params, name)).tolist()
        assert exercise.is_dull(edited(ex, {name: zeros})), name
    assert exercise.is_dull(edited(ex, gate=[[0, 0], [0, 0]]))  # the gate closes every output
    assert exercise.is_dull(edited(ex, inputs=[[0, 1], [0, 2]]))  # channel 1's state stays empty
    assert exercise.is_dull(edited(ex, inputs=(np.asarray(ex.xs) * 20).tolist()))  # blows up
    one = draw("mamba", 0, (2, 1, 2))
    constant = edited(one, inputs=[[1], [1]], gate=[[1], [1]], weights={"W_delta": [[1]], "b_delta": [0]})
    assert {float(s.delta[0]) for s in stages.trace(constant, hand)} == {1.3}
    assert exercise.is_dull(constant)  # the same Δ at every step: no selection to see


# --- the function tables ------------------------------------------------------------------------------------


def table_lookup(ex) -> dict[str, dict[float, float]]:
    """The sheet's function tables as name -> {z: f(z)}, read back from their text."""
    found = {}
    for t in sheets._functions(problem.Exercise(0, ex, None, None)):
        if t.caption:  # a grid: z = -(row + column)
            name = t.caption.split(" at z", 1)[0]
            for row in t.rows:
                for k, cell in enumerate(row[1:]):
                    z = -(abs(int(row[0])) + k / 10)
                    found.setdefault(name, {})[round(z, 1)] = float(cell)
        else:
            for row in t.rows:
                for name, cell in zip(t.header[1:], row[1:], strict=True):
                    found.setdefault(name, {})[float(row[0])] = float(cell)
    return found


@pytest.mark.parametrize("discretization", DISCRETIZATIONS)
def test_the_ssm_table_gives_every_a_bar(discretization):
    for seed in SEEDS:
        ex = draw("ssm", seed, (2, 4, 4), discretization)
        table = table_lookup(ex)
        name = "(1 + z/2) / (1 - z/2)" if discretization == "bilinear" else "exp(z)"
        assert list(table) == [name]
        s = stages.trace(ex, hand)[0]
        for z, a_bar in zip(s.dA.ravel(), s.A_bar.ravel(), strict=True):
            assert hand(np.array(table[name][round(float(z), 1)])) == a_bar, (z, a_bar)


def test_the_mamba_tables_give_every_exp_softplus_and_silu():
    looked_up = 0
    for seed in SEEDS:
        ex = draw("mamba", seed, (4, 2, 2))
        table = table_lookup(ex)
        assert set(table) == {"exp(z)", "softplus(z)", "SiLU(z)"}
        for s in stages.trace(ex, hand):
            for z, a_bar in zip(s.dA.ravel(), s.A_bar.ravel(), strict=True):
                z = round(float(z), 1)
                assert (hand(np.array(table["exp(z)"][z])) if z > -3 else 0.0) == a_bar
            for z, delta in zip(s.pre_delta, s.delta, strict=True):
                z = float(z)
                assert (hand(np.array(table["softplus(z)"][z])) if abs(z) <= 3 else max(z, 0.0)) == delta
            for z, g in zip(s.gate, s.silu_gate, strict=True):
                assert hand(np.array(table["SiLU(z)"][float(z)])) == g
                looked_up += 1
    assert looked_up == 6 * 4 * 2
    exact_table = table_lookup(draw("mamba", 0))
    np.testing.assert_allclose(exact_table["softplus(z)"][1.0], softplus(1.0), atol=5e-4)
    np.testing.assert_allclose(exact_table["SiLU(z)"][-1.0], silu(np.array(-1.0)), atol=5e-4)
    np.testing.assert_allclose(exact_table["exp(z)"][-1.3], np.exp(-1.3), atol=5e-4)


# --- bad sizes ----------------------------------------------------------------------------------------------

BAD = [
    (["--cell", "ssm", "--state-size", "5"], "state size is 5, expected an integer from 1 to 4"),
    (["--cell", "mamba", "--state-size", "0"], "state size is 0, expected an integer from 1 to 4"),
    (["--cell", "mamba", "--input-size", "5"], "input size is 5, expected an integer from 1 to 4"),
    (["--cell", "ssm", "--steps", "5"], "steps is 5, expected an integer from 1 to 4"),
    (["--cell", "ssm", "--hidden-size", "2"], "--hidden-size is for lstm, gru, rnn, slstm; ssm has a state size"),
    (["--cell", "lstm", "--state-size", "2"], "--state-size is for ssm and mamba, lstm has a hidden size"),
    (["--cell", "mamba", "--discretization", "zoh"], "--discretization is for --cell ssm only"),
    (["--cell", "ssm", "--discretization", "euler"], "invalid choice: 'euler'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_arguments_are_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = lstmkit(capsys, "exercise", *argv)
    one_line_error(code, err, message)
    assert out == "" and list(tmp_path.iterdir()) == []


def test_library_errors_name_the_problem():
    with pytest.raises(ValueError, match="discretization is 'bilinear', but only the ssm has one"):
        exercise.random_example("mamba", 0, discretization="bilinear")
    with pytest.raises(ValueError, match="discretization is 'euler', expected one of zoh, bilinear, zoh-euler"):
        exercise.random_example("ssm", 0, discretization="euler")
    with pytest.raises(ValueError, match="state size is 9"):
        exercise.random_example("ssm", 0, hidden_size=9)


# --- the sheets (against the hand-mode walkthrough) ---------------------------------------------------------


def make(cell: str, seed: int, size=(2, 2, 2), discretization: str = "zoh") -> exercise.Exercise:
    return exercise.make(cell, seed, *size, discretization if cell == "ssm" else "zoh")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("size", SIZES)
def test_answer_key_is_the_hand_walkthrough(cell, size):
    for seed in (0, 7):
        ex = make(cell, seed, size)
        hand_walkthrough = walkthrough.build(ex.example, "hand")
        expected = computed_values(hand_walkthrough)
        assert markdown_answers(sheets.answers_markdown(ex)) == expected
        assert html_answers(sheets.answers_html(ex)) == expected
        tenths(expected)
        rows = {(stage.t, row.label): row.value for stage in ex.hand.stages for row in stage.rows}
        for t, s in enumerate(stages.trace(ex.example, hand), start=1):  # the states, straight from the reference
            np.testing.assert_array_equal(rows[(t, f"h{t}")], s.h)


@pytest.mark.parametrize("discretization", DISCRETIZATIONS)
def test_every_discretization_has_its_own_answer_key(discretization):
    ex = make("ssm", 3, (3, 1, 2), discretization)
    assert f"--discretization {discretization}" in ex.command
    expected = computed_values(walkthrough.build(ex.example, "hand"))
    assert markdown_answers(sheets.answers_markdown(ex)) == expected
    formula = "(1 + ΔA/2) / (1 - ΔA/2)" if discretization == "bilinear" else "exp(ΔA)"
    assert f"| Ā | {formula} |" in sheets.worksheet_markdown(ex)


@pytest.mark.parametrize("cell", CELLS)
def test_worksheet_has_one_empty_box_per_number(cell):
    ex = make(cell, 3, (3, 2, 3))
    count = len(computed_values(ex.hand))
    md = sheets.worksheet_markdown(ex)
    assert md.count(sheets.BOX_MD) == count and markdown_answers(md) == []
    page = sheets.worksheet_html(ex)
    assert re.findall(r'<span class="box"[^>]*>([^<]*)</span>', page) == [""] * count
    assert "data-value" not in page and "data-exact" not in page
    for name in example_file.to_dict(ex.example)["weights"]:  # [1] Given in full
        assert f"| {name} |" in md and f'<td class="what">{name}</td>' in page
    grid = "exp(z) at z = -(row + column)"
    assert grid in md and f'<p class="caption">{grid}' in page
    assert ("| z | softplus(z) | SiLU(z) |" in md) == (cell == "mamba") and "| z | σ(z) |" not in md


@pytest.mark.parametrize("cell", CELLS)
def test_whole_sequence_stages_say_t_1_to_T(cell):
    ex = make(cell, 2, (3, 1, 2))
    whole = [stage for stage in ex.hand.stages if stage.t == stages.ALL_STEPS]
    assert whole and ex.hand.stages[-len(whole) :] == whole  # after the last step
    for text in (sheets.worksheet_markdown(ex), sheets.answers_markdown(ex)):
        for stage in whole:
            assert f"## [{stage.number}] {stage.title}  (t = 1..3)\n" in text
    for page in (sheets.worksheet_html(ex), sheets.answers_html(ex)):
        for stage in whole:
            assert f"<h2>[{stage.number}] {stage.title}  (t = 1..3)</h2>" in page
    for text in (sheets.worksheet_markdown(ex), sheets.answers_html(ex)):
        assert "(t = -1)" not in text and "(t = 3)" in text


def test_the_worksheet_keeps_notes_that_quote_no_values():
    ex = make("mamba", 1, (3, 2, 2))
    md, key = sheets.worksheet_markdown(ex), sheets.answers_markdown(ex)
    assert "Selection, one Δ per channel" in key and "Selection" not in md  # it quotes Δ and Ā
    assert "ZOH for A, Euler for B." in md  # a note of fixed text stays
    ssm_md = sheets.worksheet_markdown(make("ssm", 1, (3, 1, 2)))
    assert "A linear recurrence: no σ, no tanh" in ssm_md and "the SSM is time-invariant" in ssm_md


@pytest.mark.parametrize(("cell", "extra"), [("ssm", ["--discretization", "bilinear"]), ("mamba", [])])
def test_saved_spec_reads_back_with_walkthrough(cell, extra, tmp_path, capsys):
    argv = ["exercise", "--cell", cell, "--seed", "8", "--steps", "3", "--input-size", "1", *extra]
    code, out, _ = lstmkit(capsys, *argv, "-o", tmp_path / "ex.md")
    assert code == 0 and "ex.json" in out
    code, out, _ = lstmkit(capsys, "walkthrough", "--spec", tmp_path / "ex.json", "--format", "json")
    assert code == 0
    ex = make(cell, 8, (3, 1, 2), "bilinear" if extra else "zoh")
    assert json.loads(out) == as_text.to_json_dict(ex.hand)  # the walkthrough of the spec is the exercise
    answers = markdown_answers((tmp_path / "ex-answers.md").read_text())
    assert answers == computed_values(ex.hand)


@pytest.mark.parametrize(("cell", "extra"), [("ssm", ["--discretization", "zoh-euler"]), ("mamba", [])])
def test_the_printed_command_makes_the_same_page(cell, extra, capsys):
    code, first, _ = lstmkit(capsys, "exercise", "--cell", cell, "--seed", "9", "--state-size", "3", *extra)
    assert code == 0
    command = next(line.strip() for line in first.splitlines() if line.strip().startswith("lstmkit exercise "))
    assert "--state-size 3" in command and "--hidden-size" not in command
    assert ("--discretization zoh-euler" in command) == (cell == "ssm")
    _, again, _ = lstmkit(capsys, *shlex.split(command)[1:])
    assert again == first
