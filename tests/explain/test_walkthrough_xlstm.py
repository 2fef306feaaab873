"""The sLSTM and mLSTM walkthroughs: the seeds' layout, hand mode, the runner from raw inputs, --spec."""

import json
import re

import numpy as np
import pytest

from lstmkit.explain import walkthrough
from lstmkit.explain.walkthrough import example_file
from lstmkit.reference import exact, hand, mlstm, slstm
from lstmkit.reference.examples import EXAMPLES, XS
from tests.helpers import lstmkit


def test_slstm_concat_layout_round_trips_with_heads():
    cell = slstm.sLSTMCellParams(
        W=np.random.default_rng(0).normal(size=(16, 3)), cell=slstm.sLSTMParams.random(4, num_heads=2, seed=1)
    )
    concat = slstm.to_concat(cell)
    assert concat.W_f.shape == (4, 7)
    assert not concat.W_f[:2, 2:4].any() and not concat.W_f[2:, :2].any()  # block-diagonal h columns
    back = slstm.from_concat(concat, input_size=3, num_heads=2)
    np.testing.assert_array_equal(back.W, cell.W)
    np.testing.assert_array_equal(back.cell.R, cell.cell.R)
    np.testing.assert_array_equal(back.cell.b, cell.cell.b)


def test_slstm_concat_refuses_mixing_across_heads():
    concat = slstm.to_concat(slstm.sLSTMCellParams(W=np.zeros((16, 3)), cell=slstm.sLSTMParams.random(4, 2)))
    concat.W_z[0, 3] = 2.0
    with pytest.raises(ValueError, match=r"W_z\[0, 3\] is 2, expected 0: with 2 head\(s\) the h columns"):
        slstm.from_concat(concat, input_size=3, num_heads=2)


def test_slstm_run_cell_is_the_cell_on_projected_inputs():
    p = EXAMPLES["slstm"]().params
    xs = np.random.default_rng(2).normal(size=(5, 3))
    a = slstm.run_cell(p, xs)
    b = slstm.run(p.cell, xs @ p.W.T)
    for s, r in zip(a, b, strict=True):
        np.testing.assert_array_equal(s.h, r.h)
    # the concatenated layout computes the same pre-activations as W x + R h + b
    concat = slstm.to_concat(p)
    hx = np.concatenate([a[0].h_prev, xs[0]])
    np.testing.assert_allclose(a[0].pre_f, concat.W_f @ hx + concat.b_f, atol=1e-12)


def test_mlstm_run_cell_is_the_cell_on_projected_inputs():
    p = EXAMPLES["mlstm"]().params
    steps = mlstm.run_cell(p, XS)
    direct = mlstm.run(XS @ p.W_q.T, XS @ p.W_k.T, XS @ p.W_v.T, XS @ p.w_i + p.b_i, XS @ p.w_f + p.b_f)
    for s, r in zip(steps, direct, strict=True):
        np.testing.assert_array_equal(s.h, r.h)
        np.testing.assert_array_equal(s.kv, np.outer(r.k, r.v))


@pytest.mark.parametrize("cell", ["slstm", "mlstm"])
def test_hand_mode_rounds_every_intermediate_and_stays_near_exact(cell):
    ex = EXAMPLES[cell]()
    run = walkthrough.RUN[cell]
    hand_steps, exact_steps = run(ex.params, ex.xs, ex.state0, hand), run(ex.params, ex.xs, ex.state0, exact)
    for s in hand_steps:
        for name, value in s._asdict().items():
            if name in ("restart", "x", "rh", "den"):  # inputs, booleans; den carries the 1e-6 eps
                continue
            tenths = np.asarray(value, dtype=float) * 10
            np.testing.assert_allclose(tenths, np.round(tenths), atol=1e-9, err_msg=f"{cell} {name}")
    # rounding once per intermediate moves the first step's output by little
    np.testing.assert_allclose(hand_steps[0].h, exact_steps[0].h, atol=0.1)


def test_slstm_walkthrough_numbers():
    w = walkthrough.build(EXAMPLES["slstm"](), "hand")
    first = w.steps[0]
    # The seeds' step-1 pre-activations, now read as ĩ, f̃, z̃, õ.
    np.testing.assert_array_equal(first.pre_i, [6, 4])
    np.testing.assert_array_equal(first.pre_f, [-4, -6])
    np.testing.assert_array_equal(first.m, [6, 4])  # ĩ beats log σ(f̃) + m0
    np.testing.assert_array_equal(first.i, [1, 1])
    np.testing.assert_array_equal(first.h, [0.8, 0.0])
    titles = [s.title for s in w.stages if s.t == 1]
    assert titles == [
        "Initialize",
        "Linear transform",
        "Exponential gates, stabilized",
        "Update memory",
        "Update hidden state",
    ]


def test_mlstm_walkthrough_shows_outer_product_normalizer_stabilizer_and_retrieval():
    w = walkthrough.build(EXAMPLES["mlstm"](), "exact")
    rows = {row.label: row for stage in w.stages for row in stage.rows}
    s1 = w.steps[0]
    np.testing.assert_array_equal(rows["k1 v1ᵀ"].value, np.outer(s1.k, s1.v))
    np.testing.assert_array_equal(rows["Memory C1"].value, s1.C)
    np.testing.assert_array_equal(rows["Normalizer n1"].value, s1.n)
    assert float(rows["Stabilizer m1"].value) == s1.m
    np.testing.assert_array_equal(rows["q̂1ᵀ C1"].value, s1.q_scaled @ s1.C)
    denominator = max(abs(s1.q_scaled @ s1.n), np.exp(-s1.m)) + 1e-6
    np.testing.assert_allclose(rows["h1"].value, s1.q_scaled @ s1.C / denominator)


@pytest.mark.parametrize("cell", ["slstm", "mlstm"])
def test_json_spec_round_trip(capsys, tmp_path, cell):
    _, out, _ = lstmkit(capsys, "walkthrough", "--cell", cell, "--mode", "exact", "--format", "json")
    data = json.loads(out)
    assert data["cell"] == cell and len(data["steps"]) == 3
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data["spec"]))
    code, again, _ = lstmkit(capsys, "walkthrough", "--mode", "exact", "--format", "json", "--spec", str(path))
    assert code == 0
    assert json.loads(again)["steps"] == data["steps"]


XLSTM_SPEC_ERRORS = [
    ("slstm", lambda d: d.update(num_heads=3), r"num_heads is 3, expected a positive divisor of hidden_size 2"),
    ("slstm", lambda d: d.update(key_size=2), r"unknown field 'key_size' for cell slstm"),
    ("mlstm", lambda d: d.pop("key_size"), r"missing field 'key_size', expected a positive integer"),
    ("mlstm", lambda d: d["weights"].update(b_i=[1, 2]), r"weights\.b_i has shape \(2,\), expected \(\) \(a number\)"),
    ("mlstm", lambda d: d["initial_state"].update(C=[[0, 0]]), r"initial_state\.C has shape \(1, 2\), expected \(4"),
]


@pytest.mark.parametrize(("cell", "mutate", "message"), XLSTM_SPEC_ERRORS)
def test_bad_xlstm_spec_is_one_line(tmp_path, capsys, cell, mutate, message):
    data = example_file.to_dict(EXAMPLES[cell]())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, out, err = lstmkit(capsys, "walkthrough", "--spec", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
