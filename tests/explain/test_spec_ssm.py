"""--spec files for the state-space cells (ssm, mamba): the worked examples' specs round-trip, and each bad file
gives one line naming the field, exit status 2, through the CLI."""

import json
import re

import numpy as np
import pytest

from lstmkit.explain.walkthrough import example_file
from lstmkit.reference import ssm
from lstmkit.reference.examples import EXAMPLES
from tests.helpers import assert_close, lstmkit


@pytest.mark.parametrize("cell", example_file.STATE_SPACE)
def test_spec_round_trips(cell):
    example = EXAMPLES[cell]()
    spec = json.loads(json.dumps(example_file.to_dict(example)))
    back = example_file.from_dict(spec)
    assert back.cell == cell and example_file.to_dict(back) == spec
    arrays = [name for name, value in example.params._asdict().items() if not isinstance(value, str)]
    for name in arrays:  # all but the ssm's discretization, which to_dict == spec already compared
        assert_close(getattr(back.params, name), getattr(example.params, name), name, atol=0.0)
    assert_close((back.xs, back.state0.h, back.gate), (example.xs, example.state0.h, example.gate), cell, atol=0.0)


def test_one_channel_ssm_spec_drops_the_channel_axis():
    spec = example_file.to_dict(EXAMPLES["ssm"]())
    assert spec["weights"]["A"] == [-1.0, -4.6] and spec["weights"]["delta"] == 0.5
    assert spec["initial_state"] == {"h": [0.0, 0.0]}


@pytest.mark.parametrize("discretization", ssm.DISCRETIZATIONS)
def test_ssm_spec_with_channels(discretization):
    p = ssm.SSMParams.random(3, 2, seed=1, discretization=discretization)
    h0 = ssm.SSMState(np.arange(6.0).reshape(3, 2))
    example = EXAMPLES["ssm"]()._replace(params=p, xs=np.ones((4, 3)), state0=h0)
    spec = example_file.to_dict(example)
    assert np.shape(spec["weights"]["A"]) == (3, 2) and np.shape(spec["weights"]["delta"]) == (3,)
    back = example_file.from_dict(json.loads(json.dumps(spec)))
    assert back.params.discretization == discretization
    assert_close(back.state0.h, h0.h, "h0", atol=0.0)


def set_weight(name, value):
    return lambda d: d["weights"].update({name: value})


SPEC_ERRORS = [
    ("ssm", lambda d: d.update(hidden_size=2), r"unknown field 'hidden_size' for cell ssm, expected .*state_size"),
    ("ssm", lambda d: d.pop("state_size"), r"missing field 'state_size', expected a positive integer"),
    ("ssm", lambda d: d.update(discretization="euler"), r"field 'discretization' is \"euler\", expected one of zoh"),
    ("ssm", lambda d: d.update(discretization=None), r"field 'discretization' is null, expected one of zoh"),
    ("ssm", lambda d: d.update(gate=[[1.0]] * 3), r"unknown field 'gate' for cell ssm"),
    ("ssm", set_weight("A", [-1, 0.5]), r"weights\.A has 0\.5 at index \(1,\), expected negative numbers"),
    ("ssm", set_weight("A", [0, -1]), r"weights\.A has 0 at index \(0,\), expected negative numbers"),
    ("ssm", set_weight("delta", 0), r"weights\.delta has 0, expected positive numbers"),
    ("ssm", set_weight("delta", -0.5), r"weights\.delta has -0\.5, expected positive numbers"),
    ("ssm", set_weight("A", [[-1, -4.6]]), r"weights\.A has shape \(1, 2\), expected \(2,\) \(N\)"),
    ("ssm", set_weight("D", [0.5]), r"weights\.D has shape \(1,\), expected \(\) \(a number\)"),
    ("ssm", set_weight("B", [1, 1, 1]), r"weights\.B has shape \(3,\), expected \(2,\) \(N\)"),
    ("ssm", lambda d: d["weights"].pop("C"), r"missing field 'weights\.C', expected shape \(2,\)"),
    ("ssm", lambda d: d["initial_state"].update(h=[[0, 0]]), r"initial_state\.h has shape \(1, 2\), expected \(2,\)"),
    ("mamba", lambda d: d.update(gate=d["gate"][:2]), r"gate has shape \(2, 2\), expected \(3, 2\)"),
    ("mamba", lambda d: d.update(gate=[row[:1] for row in d["gate"]]), r"gate has shape \(3, 1\), expected \(3, 2\)"),
    ("mamba", lambda d: d.update(gate="silu"), r"field 'gate' must be a list, got str"),
    ("mamba", lambda d: d.update(discretization="zoh"), r"unknown field 'discretization' for cell mamba"),
    (
        "mamba",
        set_weight("W_B", [[0, 1, 2], [1, 0, 2]]),
        r"weights\.W_B has shape \(2, 3\), expected \(2, 2\) \(N, C\)",
    ),
    ("mamba", set_weight("W_B", [0, 1]), r"weights\.W_B has shape \(2,\), expected \(2, 2\) \(N, C\)"),
    ("mamba", set_weight("A", [[-1, 2], [-1, -2]]), r"weights\.A has 2 at index \(0, 1\), expected negative numbers"),
    ("mamba", set_weight("b_delta", [1, "1"]), r"weights\.b_delta must be numbers, got \"1\""),
    ("mamba", lambda d: d["initial_state"].update(h=[0, 0]), r"initial_state\.h has shape \(2,\), expected \(2, 2\)"),
    ("mamba", lambda d: d.update(state_size=3), r"weights\.A has shape \(2, 2\), expected \(2, 3\)"),
]


@pytest.mark.parametrize(("cell", "mutate", "message"), SPEC_ERRORS)
def test_bad_state_space_spec_is_one_line(tmp_path, capsys, cell, mutate, message):
    data = example_file.to_dict(EXAMPLES[cell]())
    example_file.from_dict(data)  # the unchanged spec is good: the error below is the mutation's
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, out, err = lstmkit(capsys, "walkthrough", "--spec", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(path) in err and re.search(message, err), err
