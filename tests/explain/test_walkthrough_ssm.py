"""The state-space walkthroughs (`--cell ssm`, `--cell mamba`): stages, the whole-sequence views, hand mode, JSON."""

import json

import numpy as np
import pytest

from lstmkit.explain import walkthrough
from lstmkit.explain.walkthrough import ALL_STEPS, as_text, example_file
from lstmkit.explain.walkthrough.as_page import to_html
from lstmkit.reference import exact, hand, mamba, ssm
from lstmkit.reference.examples import EXAMPLES, Example
from tests.explain.test_walkthrough_html import evaluate, page_numbers
from tests.helpers import lstmkit

STATE_SPACE_FIELDS = {
    "ssm": "x h_prev delta dA A_bar B_bar A_bar_h B_bar_x h Ch Dx y".split(),
    "mamba": "x h_prev pre_delta delta B C dA A_bar B_bar B_bar_x A_bar_h h y_ssm Dx y".split(),
}
GATE_FIELDS = ["gate", "silu_gate", "y_gated"]


def discretized(discretization: str) -> Example:
    ex = EXAMPLES["ssm"]()
    return ex._replace(params=ex.params._replace(discretization=discretization))


def two_channel_ssm(discretization: str) -> Example:
    """C = 2, N = 3, S4D-Real init (Ā close to 1) and a non-zero h0, so the free response is drawn too."""
    rng = np.random.default_rng(5)
    params = ssm.SSMParams.random(2, 3, seed=1, discretization=discretization)
    return Example("ssm", params, rng.normal(size=(4, 2)), ssm.SSMState(rng.normal(size=(2, 3))))


def ungated_mamba() -> Example:
    """C = 3, N = 2, Mamba's init, no gate, a non-zero h0."""
    rng = np.random.default_rng(6)
    params = mamba.MambaParams.random(3, 2, seed=2)
    return Example("mamba", params, rng.normal(size=(4, 3)), mamba.MambaState(rng.normal(size=(3, 2))))


VARIANTS = {
    **{f"ssm-{d}": (lambda d=d: discretized(d)) for d in ssm.DISCRETIZATIONS},
    **{f"ssm-2-channels-{d}": (lambda d=d: two_channel_ssm(d)) for d in ssm.DISCRETIZATIONS},
    "mamba": EXAMPLES["mamba"],
    "mamba-ungated": ungated_mamba,
}


@pytest.mark.parametrize(("cell", "view"), [("ssm", "Convolution view"), ("mamba", "Matrix view")])
def test_stage_titles(cell, view):
    w = walkthrough.build(EXAMPLES[cell](), "hand")
    for t in (1, 2, 3):
        assert [s.title for s in w.stages if s.t == t] == ["Initialize", "Discretize", "Update state", "Output"]
    assert [(s.number, s.title) for s in w.stages if s.t == ALL_STEPS] == [(14, view), (15, "Family resemblance")]
    assert f"[14] {view}  (t = 1..3)" in as_text.to_text(w, width=160)
    assert "## [15] Family resemblance  (t = 1..3)" in as_text.to_markdown(w)


@pytest.mark.parametrize("name", VARIANTS)
def test_recurrence_equals_the_whole_sequence_view(name):
    """In exact mode y_conv (ssm) and y_matrix (mamba), as the walkthrough shows them, are the recurrence's y."""
    w = walkthrough.build(VARIANTS[name](), "exact")
    rows = [row for stage in w.stages if stage.t == ALL_STEPS for row in stage.rows]
    views = [row.value for row in rows if row.label.startswith(("y_conv", "y_matrix"))]
    ys = np.array([s.y for s in w.steps])
    assert len(views) == ys.shape[1]  # one row per channel
    np.testing.assert_allclose(np.stack(views, axis=1), ys, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", VARIANTS)
def test_equations_compute_their_values_for_every_variant(name):
    """Every discretization's formulas, several channels, h0's share, Mamba ungated: each drawn equation holds."""
    w = walkthrough.build(VARIANTS[name](), "exact")
    rows = [row for stage in w.stages for row in stage.rows if row.terms]
    assert len(rows) > 8 * len(w.steps)  # ΔA, B̄, Ā ⊙ h, B̄ x, h, C h, D x, y at least, then the view
    for row in rows:
        np.testing.assert_allclose(evaluate(row.terms), np.ravel(row.value), rtol=1e-12, atol=1e-12, err_msg=row.label)


@pytest.mark.parametrize("name", ["ssm-2-channels-bilinear", "mamba-ungated"])
def test_every_number_on_the_page_is_the_traces_for_variants(name):
    example = VARIANTS[name]()
    hand_w, exact_w = walkthrough.build(example, "hand"), walkthrough.build(example, "exact")
    numbers = page_numbers(to_html(hand_w, exact_w))
    for mode, w in (("hand", hand_w), ("exact", exact_w)):
        for stage in w.stages:
            for row in stage.rows:
                got = numbers[(stage.number, row.label, "given" if stage.t == 0 else mode, "value")]
                np.testing.assert_array_equal(got, np.ravel(row.value), err_msg=f"{stage.title} {row.label}")


@pytest.mark.parametrize("cell", ["ssm", "mamba"])
def test_hand_mode_rounds_every_intermediate_and_stays_near_exact(cell):
    ex = EXAMPLES[cell]()
    hand_steps, exact_steps = walkthrough.trace(ex, hand), walkthrough.trace(ex, exact)
    given = {"x", "gate"} | ({"delta"} if cell == "ssm" else set())  # the SSM's Δ is a weight, not computed
    for s in hand_steps:
        for name, value in s._asdict().items():
            if name in given or value is None:
                continue
            tenths = np.asarray(value, dtype=float) * 10
            np.testing.assert_allclose(tenths, np.round(tenths), atol=1e-9, err_msg=f"{cell} {name}")
    for name, value in hand_steps[0]._asdict().items():
        np.testing.assert_allclose(value, getattr(exact_steps[0], name), atol=0.1, err_msg=f"{cell} step 1 {name}")


def test_ssm_step_one_numbers():
    """The README's numbers: ΔA = [-0.5, -2.3], Ā = [0.6, 0.1], B̄ = h1 = [0.4, 0.2], y1 = 1.1 by hand."""
    by_hand, exactly = (walkthrough.build(EXAMPLES["ssm"](), mode).steps[0] for mode in ("hand", "exact"))
    np.testing.assert_array_equal(by_hand.dA, [[-0.5, -2.3]])
    np.testing.assert_array_equal(by_hand.A_bar, [[0.6, 0.1]])
    np.testing.assert_array_equal(by_hand.B_bar, [[0.4, 0.2]])
    np.testing.assert_array_equal(by_hand.h, [[0.4, 0.2]])
    np.testing.assert_array_equal(by_hand.y, [1.1])
    np.testing.assert_allclose(exactly.A_bar, np.exp([[-0.5, -2.3]]), rtol=1e-15)
    np.testing.assert_allclose(exactly.B_bar, [[0.393469, 0.195596]], atol=5e-7)
    np.testing.assert_allclose(exactly.y, [1.089065], atol=5e-7)


def test_mamba_step_one_numbers():
    """Δ1 = softplus(0) = ln 2 (0.7 by hand), so Ā1 = exp(-ln 2 (1, 2)) = [0.5, 0.25] exactly ([0.5, 0.2] by hand)."""
    by_hand, exactly = (walkthrough.build(EXAMPLES["mamba"](), mode).steps[0] for mode in ("hand", "exact"))
    np.testing.assert_array_equal(by_hand.delta, [0.7, 0.7])
    np.testing.assert_array_equal(by_hand.A_bar, [[0.5, 0.2], [0.5, 0.2]])
    np.testing.assert_array_equal(by_hand.y, [1.1, -1.1])
    np.testing.assert_array_equal(by_hand.y_gated, [0.8, -2.0])
    np.testing.assert_allclose(exactly.delta, [np.log(2)] * 2, rtol=1e-15)
    np.testing.assert_allclose(exactly.A_bar, [[0.5, 0.25], [0.5, 0.25]], rtol=1e-15)
    np.testing.assert_allclose(exactly.y, [1.079442, -1.079442], atol=5e-7)


@pytest.mark.parametrize("mode", ["hand", "exact"])
def test_selection_note_names_the_overwritten_and_the_kept_channel(mode):
    w = walkthrough.build(EXAMPLES["mamba"](), mode)
    notes = {s.t: s.note for s in w.stages if s.title == "Update state"}
    assert "channel 1: Δ = 3" in notes[3] and "the state is overwritten by the input" in notes[3]
    assert "channel 2: Δ = 0.1" in notes[3] and "the state is kept" in notes[3]
    assert notes[3].index("overwritten") < notes[3].index("channel 2")  # channel 1 is the overwritten one
    assert "overwritten" not in notes[1] and "is kept" not in notes[1]  # Δ1 = 0.7 in both channels: in between


def test_ssm_text_shows_step_one(capsys):
    code, out, _ = lstmkit(capsys, "walkthrough", "--cell", "ssm")
    assert code == 0
    assert "Diagonal SSM (S4D-style) walkthrough, hand mode, t = 1..3" in out
    assert "[-0.5  -2.3] → [0.6  0.1]" in out  # Ā = exp(ΔA)
    assert "(Ā - 1) / A ⊙ B" in out


def test_page_groups_whole_sequence_stages_as_all_t():
    ex = EXAMPLES["ssm"]()
    html = to_html(walkthrough.build(ex, "hand"), walkthrough.build(ex, "exact"))
    assert '<span>all t</span><button type="button" title="Convolution view" data-go="14">' in html
    assert 'data-title="[14] Convolution view (t = 1..3)"' in html and "t = -1" not in html


@pytest.mark.parametrize("cell", ["ssm", "mamba"])
def test_json_fields_and_views(capsys, cell):
    _, out, _ = lstmkit(capsys, "walkthrough", "--cell", cell, "--mode", "exact", "--format", "json")
    data = json.loads(out)
    steps = walkthrough.trace(EXAMPLES[cell](), exact)
    extra = GATE_FIELDS if cell == "mamba" else []
    for step, s in zip(data["steps"], steps, strict=True):
        assert list(step) == ["t", *STATE_SPACE_FIELDS[cell], *extra]
        for name in list(step)[1:]:
            np.testing.assert_array_equal(step[name], getattr(s, name), err_msg=name)
    ys = [step["y"] for step in data["steps"]]
    if cell == "ssm":
        conv = ssm.convolution(EXAMPLES["ssm"]().params, EXAMPLES["ssm"]().xs)
        np.testing.assert_array_equal(data["kernel"], conv.kernel)
        np.testing.assert_allclose(data["y_conv"], ys, atol=1e-12)
        assert "matrix" not in data
    else:
        np.testing.assert_array_equal(data["matrix"], mamba.matrix_view(EXAMPLES["mamba"]().params, steps).matrix)
        np.testing.assert_allclose(data["y_matrix"], ys, atol=1e-12)
        assert "kernel" not in data


def test_ungated_mamba_json_has_no_gate_fields():
    data = as_text.to_json_dict(walkthrough.build(ungated_mamba(), "hand"))
    assert all(list(step) == ["t", *STATE_SPACE_FIELDS["mamba"]] for step in data["steps"])
    assert "gate" not in data["spec"]


def _round_trip(capsys, tmp_path, spec: dict) -> dict:
    """spec -> JSON (through the CLI) -> its spec -> JSON again: the same steps, the same spec."""
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(spec))
    code, out, _ = lstmkit(capsys, "walkthrough", "--mode", "exact", "--format", "json", "--spec", str(first))
    assert code == 0
    data = json.loads(out)
    second.write_text(json.dumps(data["spec"]))
    code, again, _ = lstmkit(capsys, "walkthrough", "--mode", "exact", "--format", "json", "--spec", str(second))
    assert code == 0
    assert json.loads(again) == data
    return data


@pytest.mark.parametrize("cell", ["ssm", "mamba"])
def test_json_spec_round_trip(capsys, tmp_path, cell):
    _, out, _ = lstmkit(capsys, "walkthrough", "--cell", cell, "--mode", "exact", "--format", "json")
    data = json.loads(out)
    assert data["cell"] == cell and len(data["steps"]) == 3
    assert _round_trip(capsys, tmp_path, data["spec"]) == data


@pytest.mark.parametrize("discretization", ssm.DISCRETIZATIONS)
@pytest.mark.parametrize("make", [discretized, two_channel_ssm])
def test_json_spec_round_trip_for_every_discretization(capsys, tmp_path, discretization, make):
    example = make(discretization)
    data = _round_trip(capsys, tmp_path, example_file.to_dict(example))
    assert data["spec"]["discretization"] == discretization
    expected = walkthrough.trace(example, exact)
    np.testing.assert_allclose([s["y"] for s in data["steps"]], [s.y for s in expected], rtol=0, atol=1e-15)
    np.testing.assert_allclose(data["y_conv"], [s.y for s in expected], rtol=0, atol=1e-12)
