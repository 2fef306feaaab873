"""`lstmkit walkthrough`: the seeds' stages, the three formats, the JSON schema, and --spec."""

import json

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.explain import walkthrough
from lstmkit.explain.walkthrough import as_text, example_file
from lstmkit.reference import examples
from tests.helpers import lstmkit

LSTM_FIELDS = "x h_prev c_prev hx pre_i pre_f pre_g pre_o i f g o forget_term input_term c tanh_c h".split()
GRU_FIELDS = "x h_prev hx pre_r pre_z xn hn r z reset_term pre_n n new_term keep_term h".split()
RNN_FIELDS = "x h_prev hx pre h".split()


def test_default_is_the_seeds_lstm_in_hand_mode(capsys):
    code, out, _ = lstmkit(capsys, "walkthrough")
    assert code == 0
    assert "LSTM walkthrough, hand mode, t = 1..3" in out
    for title in (
        "Initialize",
        "Linear transform",
        "Non-linear transform",
        "Update memory",
        "Candidate output",
        "Update hidden state",
    ):
        assert out.count(title) == 3, title
    assert "[-4, -6] → [0, 0]" in out
    assert "[6, 4] → [1, 1]" in out
    assert "[4, -5] → [1, 0]" in out
    assert "[1, -6] → [0.8, -1]" in out
    assert "[0.8, -1] → [0.7, -0.8]" in out
    assert "C'1 .* o1" in out and "C'1 .* i1" in out  # the seed's typo is named and corrected


def test_stage_numbers_follow_the_seeds():
    w = walkthrough.build(examples.seeds_lstm(), "hand")
    assert [(s.number, s.t, s.title) for s in w.stages[:8]] == [
        (1, 0, "Given"),
        (2, 1, "Initialize"),
        (3, 1, "Linear transform"),
        (4, 1, "Non-linear transform"),
        (5, 1, "Update memory"),
        (6, 1, "Candidate output"),
        (7, 1, "Update hidden state"),
        (8, 2, "Initialize"),
    ]


def test_exact_mode_text(capsys):
    code, out, _ = lstmkit(capsys, "walkthrough", "--mode", "exact")
    assert code == 0
    assert "[0.765107, -0.983238]" in out
    assert "[0.632491, -0.00505]" in out


@pytest.mark.parametrize(("cell", "fields"), [("lstm", LSTM_FIELDS), ("gru", GRU_FIELDS), ("rnn", RNN_FIELDS)])
def test_json_schema(capsys, cell, fields):
    code, out, _ = lstmkit(capsys, "walkthrough", "--cell", cell, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["schema"] == "lstmkit.walkthrough/1"
    assert (data["cell"], data["mode"]) == (cell, "hand")
    assert [s["t"] for s in data["steps"]] == [1, 2, 3]
    for step in data["steps"]:
        assert list(step) == ["t", *fields]
        assert all(isinstance(v, list) and all(isinstance(x, float) for x in v) for k, v in step.items() if k != "t")


def test_json_exact_values_and_spec_round_trip(capsys, tmp_path):
    _, out, _ = lstmkit(capsys, "walkthrough", "--mode", "exact", "--format", "json")
    data = json.loads(out)
    s1 = data["steps"][0]
    np.testing.assert_allclose(s1["c"], [0.765107, -0.983238], atol=5e-7)
    np.testing.assert_allclose(s1["h"], [0.632491, -0.005050], atol=5e-7)
    np.testing.assert_array_equal(s1["pre_f"], [-4, -6])
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps(data["spec"]))
    _, again, _ = lstmkit(capsys, "walkthrough", "--mode", "exact", "--format", "json", "--spec", str(path))
    assert json.loads(again)["steps"] == data["steps"]


def test_hand_json_carries_rounded_values(capsys):
    _, out, _ = lstmkit(capsys, "walkthrough", "--format", "json")
    s1, s2, _ = json.loads(out)["steps"]
    assert s1["h"] == [0.7, 0.0] and s1["c"] == [0.8, -1.0]
    assert s2["h_prev"] == s1["h"]


def test_markdown(capsys):
    code, out, _ = lstmkit(capsys, "walkthrough", "--format", "markdown", "--cell", "gru")
    assert code == 0
    assert out.startswith("# GRU walkthrough, hand mode")
    assert "## [3] Linear transform  (t = 1)" in out
    assert "| Reset gate r1 | σ |" in out


def test_output_file_is_written(tmp_path, capsys):
    target = tmp_path / "w.md"
    assert main(["walkthrough", "--format", "markdown", "-o", str(target)]) == 0
    assert target.read_text().startswith("# LSTM walkthrough")
    assert [p.name for p in tmp_path.iterdir()] == ["w.md"]  # no temporary file left behind


def test_user_spec(tmp_path, capsys):
    data = {
        "cell": "rnn",
        "input_size": 1,
        "hidden_size": 1,
        "weights": {"W": [[0.5, 1.0]], "b": [0.0]},
        "inputs": [[1.0], [2.0]],
        "initial_state": {"h": [0.0]},
    }
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    code, out, _ = lstmkit(capsys, "walkthrough", "--spec", str(path), "--mode", "exact", "--format", "json")
    assert code == 0
    steps = json.loads(out)["steps"]
    h1 = np.tanh(1.0)
    np.testing.assert_allclose(steps[0]["h"], [h1])
    np.testing.assert_allclose(steps[1]["h"], [np.tanh(0.5 * h1 + 2.0)])


def test_every_text_row_is_rendered():
    w = walkthrough.build(examples.seeds_gru(), "exact")
    text = as_text.to_text(w, width=160)
    for stage in w.stages:
        assert f"[{stage.number}] {stage.title}" in text
        for row in stage.rows:
            assert row.label in text


SPEC_ERRORS = [
    (lambda d: d["weights"].update(W_f=[[1, 2, 3, 4]] * 2), r"weights\.W_f has shape \(2, 4\), expected \(2, 5\)"),
    (lambda d: d["weights"].pop("W_o"), r"missing field 'weights\.W_o', expected shape \(2, 5\)"),
    (lambda d: d.pop("inputs"), r"missing field 'inputs'"),
    (lambda d: d["weights"].update(b_i=[1, "x"]), r"weights\.b_i must be numbers"),
    (lambda d: d["inputs"].append([1, 2]), r"inputs has rows of different lengths: row 3 has 2, row 0 has 3"),
    (lambda d: d.update(inputs=[]), r"inputs has shape \(0,\), expected \(T, 3\)"),
    (lambda d: d["initial_state"].update(c=[1, 2, 3]), r"initial_state\.c has shape \(3,\), expected \(2,\)"),
    (lambda d: d.update(hidden_size=0), r"field 'hidden_size' is 0, expected a positive integer"),
    (lambda d: d["weights"].update(W_x=[[0]]), r"unknown field 'weights\.W_x' for cell lstm"),
    (lambda d: d.update(cell="s4"), r"field 'cell' is 's4', expected one of lstm, gru, rnn, slstm, mlstm, ssm, mamba"),
]


@pytest.mark.parametrize(("mutate", "message"), SPEC_ERRORS)
def test_bad_spec_is_one_line_exit_2(tmp_path, capsys, mutate, message):
    data = example_file.to_dict(examples.seeds_lstm())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, out, err = lstmkit(capsys, "walkthrough", "--spec", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"lstmkit walkthrough: error: {path}: ")
    assert __import__("re").search(message, err), err


def test_nan_in_spec(tmp_path, capsys):
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(example_file.to_dict(examples.seeds_lstm())).replace("0.3", "NaN"))
    code, _, err = lstmkit(capsys, "walkthrough", "--spec", str(path))
    assert code == 2 and "NaN is not a number" in err and err.count("\n") == 1


def test_spec_not_json(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text("{ not json")
    code, _, err = lstmkit(capsys, "walkthrough", "--spec", str(path))
    assert code == 2 and "not valid JSON (line 1" in err


def test_spec_cell_disagrees_with_flag(tmp_path, capsys):
    path = tmp_path / "lstm.json"
    path.write_text(json.dumps(example_file.to_dict(examples.seeds_lstm())))
    code, _, err = lstmkit(capsys, "walkthrough", "--spec", str(path), "--cell", "gru")
    assert code == 2 and "field 'cell' is 'lstm' but --cell is 'gru'" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["walkthrough", "--cell", "lstn"], "argument --cell: invalid choice: 'lstn'"),
        (["walkthrough", "--mode", "paper"], "argument --mode: invalid choice: 'paper'"),
        (["walkthrough", "--format", "pdf"], "argument --format: invalid choice: 'pdf'"),
        (["gradients", "--length", "1"], "length is 1, expected an integer from 2 to 10,000"),
        (["gradients", "--length", "ten"], "argument --length: invalid int value: 'ten'"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert message in err and err.count("\n") == 1, err
