"""`lstmkit exercise --cell ssm | mamba`: friendly seeded draws, what makes one dull, the function tables that
give every exp, softplus and SiLU the hand needs, and the sheets against the hand-mode walkthrough."""

import numpy as np
import pytest

from lstmkit.explain import exercise
from lstmkit.explain.exercise import problem, sheets
from lstmkit.explain.walkthrough import example_file, stages
from lstmkit.reference.mamba import silu, softplus
from lstmkit.reference.rounding import hand
from lstmkit.reference.ssm import DISCRETIZATIONS
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
    dA = tenths(p.delta[:, None] * p.A)
    assert dA.min() >= -15 and dA.max() <= -1  # ΔA in -1.5..-0.1, exactly on the tenths
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
    """A seed draws the same numbers for every discretization (unless that one's draw is dull and redrawn)."""
    same = 0
    for seed in range(10):
        zoh = example_file.to_dict(draw("ssm", seed, (3, 1, 2)))
        for name in DISCRETIZATIONS[1:]:
            spec = {**zoh, "discretization": name}
            if not exercise.is_dull(example_file.from_dict(spec)):
                assert example_file.to_dict(draw("ssm", seed, (3, 1, 2), name)) == spec
                same += 1
    assert same >= 15


# --- what makes a draw dull ---------------------------------------------------------------------------------


def lively(cell: str, seed: int, size) -> None:
    """The docstring's rules, checked from the hand trace (independently of is_dull)."""
    ex = draw(cell, seed, size)
    p = ex.params
    matrices = (p.B, p.C) if cell == "ssm" else (p.W_delta, p.W_B, p.W_C)
    assert all(np.any(m, axis=-1).all() if cell == "ssm" else np.any(m) for m in matrices)
    steps = stages.trace(ex, hand)
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


def test_dull_mamba_draws_are_recognised():
    ex = draw("mamba", 0, (2, 2, 2))
    assert not exercise.is_dull(ex)
    for name in ("W_delta", "W_B", "W_C"):
        zeros = np.zeros_like(getattr(ex.params, name)).tolist()
        assert exercise.is_dull(edited(ex, {name: zeros})), name
    assert exercise.is_dull(edited(ex, gate=[[0, 0], [0, 0]]))  # the gate closes every output
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
    (["--cell", "ssm", "--hidden-size", "2"], "--hidden-size is for the gated cells, ssm has a state size"),
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
