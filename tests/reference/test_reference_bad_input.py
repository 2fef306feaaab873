"""Reference functions reject bad input with one line naming the field, the shape found and expected."""

import numpy as np
import pytest

from lstmkit.reference import gru, lstm, mlstm, rnn, slstm


def test_wrong_input_width():
    p = lstm.LSTMParams.random(3, 2)
    with pytest.raises(ValueError, match=r"inputs has shape \(4, 5\), expected \(T, 3\)"):
        lstm.run(p, np.zeros((4, 5)))


def test_empty_sequence():
    with pytest.raises(ValueError, match="inputs has 0 time steps, expected at least 1"):
        gru.run(gru.GRUParams.random(3, 2), np.zeros((0, 3)))


def test_nan_input():
    with pytest.raises(ValueError, match=r"inputs has a non-finite value nan at index \(1, 2\)"):
        rnn.run(rnn.RNNParams.random(3, 2), np.array([[0, 0, 0], [0, 0, np.nan]]))


def test_wrong_weight_shape():
    p = lstm.LSTMParams.random(3, 2)
    bad = p._replace(W_hh=np.zeros((8, 3)))
    with pytest.raises(ValueError, match=r"W_hh has shape \(8, 3\), expected \(8, 2\)"):
        lstm.run(bad, np.zeros((1, 3)))


def test_wrong_state_shape():
    p = lstm.LSTMParams.random(3, 2)
    with pytest.raises(ValueError, match=r"c0 has shape \(3,\), expected \(2,\)"):
        lstm.run(p, np.zeros((1, 3)), lstm.LSTMState(np.zeros(2), np.zeros(3)))


def test_non_numbers():
    p = rnn.RNNParams.random(3, 2)
    with pytest.raises(ValueError, match="inputs must be numbers"):
        rnn.run(p, [["a", "b", "c"]])


def test_concat_layout_shape():
    q = lstm.to_concat(lstm.LSTMParams.random(3, 2))
    with pytest.raises(ValueError, match=r"W_f has shape \(2, 5\), expected \(2, 6\)"):
        lstm.from_concat(q, input_size=4)


def test_from_torch_missing_key():
    with pytest.raises(ValueError, match="state dict has no 'weight_hh_l0'"):
        lstm.from_torch({"weight_ih_l0": np.zeros((8, 3))})


# ---- every public step checks its inputs as run does ----------------------------------------------------------

CLASSIC = {"rnn": (rnn, rnn.RNNParams), "gru": (gru, gru.GRUParams), "lstm": (lstm, lstm.LSTMParams)}


def one_line_error(call, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as caught:
        call()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", list(CLASSIC))
def test_classic_step_checks_its_inputs(name):
    cell, Params = CLASSIC[name]
    p, H = Params.random(3, 2), 2
    state = cell.zero_state(H)
    x = np.zeros(3)
    one_line_error(lambda: cell.step(p, np.zeros(4), state), r"x has shape \(4,\), expected \(3,\) \(input_size\)")
    one_line_error(lambda: cell.step(p, np.zeros((1, 3)), state), r"x has shape \(1, 3\), expected \(3,\)")
    one_line_error(
        lambda: cell.step(p, np.array([0, np.nan, 0]), state), r"x has a non-finite value nan at index \(1,\)"
    )
    one_line_error(lambda: cell.step(p, ["a", "b", "c"], state), "x must be numbers")
    bad_h = state._replace(h=np.array([0.0, np.inf]))
    one_line_error(lambda: cell.step(p, x, bad_h), r"h has a non-finite value inf at index \(1,\)")
    one_line_error(lambda: cell.step(p, x, state._replace(h=np.zeros(3))), r"h has shape \(3,\), expected \(2,\)")
    one_line_error(lambda: cell.step(p, x, np.zeros(H)), rf"state is array\(.*expected a {type(state).__name__}\(h")
    one_line_error(lambda: cell.step(p._replace(W_hh=np.zeros((len(p.b_hh), 3))), x, state), r"W_hh has shape")
    one_line_error(lambda: cell.step(p._replace(b_ih=p.b_ih * np.nan), x, state), "b_ih has a non-finite value nan")
    one_line_error(lambda: cell.step(p, x, state, rounding="hand"), "rounding is 'hand', expected a function")
    if name == "lstm":
        one_line_error(lambda: cell.step(p, x, state._replace(c=np.full(2, np.nan))), "c has a non-finite value nan")


def test_slstm_step_checks_its_inputs():
    p = slstm.sLSTMParams.random(4, 2)
    state = slstm.zero_state(4)
    x = np.zeros(16)
    one_line_error(lambda: slstm.step(p, np.zeros(4), state), r"x has shape \(4,\), expected \(16,\) \(4·hidden_size\)")
    one_line_error(lambda: slstm.step(p, np.full(16, -np.inf), state), "x has a non-finite value -inf")
    for field in "hcnm":
        bad = state._replace(**{field: np.full(4, np.nan)})
        one_line_error(lambda bad=bad: slstm.step(p, x, bad), f"{field} has a non-finite value nan")
    one_line_error(lambda: slstm.step(p, x, state._replace(m=np.zeros(5))), r"m has shape \(5,\), expected \(4,\)")
    one_line_error(lambda: slstm.step(p, x, (state.h, state.c)), r"state is .*expected a sLSTMState\(h, c, n, m\)")
    one_line_error(lambda: slstm.step(p._replace(b=np.zeros(3)), x, state), r"b has shape \(3,\), expected \(16,\)")
    one_line_error(lambda: slstm.run(p, np.zeros((2, 16)), state._replace(n=np.full(4, np.inf))), "n has a non-finite")


def mlstm_step(**change):
    args = {
        "q": np.ones(3),
        "k": np.ones(3),
        "v": np.ones(2),
        "pre_i": 0.5,
        "pre_f": 1.0,
        "state": mlstm.zero_state(3, 2),
        "eps": 1e-6,
    } | change
    return mlstm.step(**args)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"q": np.ones((1, 3))}, r"q has shape \(1, 3\) and v \(2,\), expected \(DK,\) and \(DV,\)"),
        ({"k": np.ones(4)}, r"k has shape \(4,\), expected \(3,\) \(DK, as q\)"),
        ({"v": np.array([1.0, np.nan])}, r"v has a non-finite value nan at index \(1,\)"),
        ({"q": np.array([1.0, np.inf, 0.0])}, "q has a non-finite value inf"),
        ({"pre_i": np.nan}, r"pre_i has the value nan at index \(\), expected a number or -inf"),
        ({"pre_i": np.inf}, "pre_i has the value inf"),
        ({"pre_f": "x"}, "pre_f must be numbers"),
        ({"pre_f": [1.0, 2.0]}, r"pre_f has shape \(2,\), expected \(\)"),
        ({"state": mlstm.zero_state(3, 2)._replace(C=np.zeros((2, 3)))}, r"C has shape \(2, 3\), expected \(3, 2\)"),
        ({"state": mlstm.zero_state(3, 2)._replace(n=np.full(3, np.nan))}, "n has a non-finite value nan"),
        ({"state": mlstm.zero_state(3, 2, m=np.nan)}, "m has the value nan"),
        ({"state": (np.zeros((3, 2)), np.zeros(3))}, r"state is a tuple, expected an mLSTMState\(C, n, m\)"),
        ({"eps": -1.0}, "eps is -1.0, expected a number >= 0"),
        ({"eps": np.nan}, "eps has a non-finite value"),
    ],
)
def test_mlstm_step_checks_its_inputs(change, pattern):
    one_line_error(lambda: mlstm_step(**change), pattern)


def test_mlstm_step_takes_closed_gates_and_an_empty_stabilizer():
    closed = mlstm_step(pre_f=-np.inf, state=mlstm.mLSTMState(np.ones((3, 2)), np.ones(3), 0.0))
    assert closed.f == 0.0 and np.isfinite(closed.h).all(), "f̃ = −∞ forgets everything"
    fresh = mlstm_step(state=mlstm.zero_state(3, 2, m=-np.inf))
    assert fresh.m == 0.5 and fresh.i == 1.0 and np.isfinite(fresh.h).all()
    one_line_error(lambda: mlstm_step(pre_i=np.inf), "pre_i has the value inf")


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"pre_is": np.zeros(4)}, r"pre_is has shape \(4,\), expected \(5,\)"),
        ({"pre_fs": np.full(5, np.nan)}, r"pre_fs has the value nan at index \(0,\)"),
        ({"ks": np.zeros((5, 2))}, r"ks has shape \(5, 2\), expected \(5, 3\)"),
        ({"vs": np.zeros((4, 2))}, r"vs has shape \(4, 2\), expected \(5, 2\)"),
        ({"qs": np.zeros((0, 3)), "ks": np.zeros((0, 3)), "vs": np.zeros((0, 2))}, "qs has 0 time steps"),
        ({"state0": mlstm.zero_state(3, 2)._replace(C=np.zeros((3, 3)))}, r"C0 has shape \(3, 3\), expected \(3, 2\)"),
        ({"rounding": None}, "rounding is None, expected a function"),
    ],
)
def test_mlstm_run_checks_its_inputs(change, pattern):
    args = {
        "qs": np.ones((5, 3)),
        "ks": np.ones((5, 3)),
        "vs": np.ones((5, 2)),
        "pre_is": np.zeros(5),
        "pre_fs": np.zeros(5),
    } | change
    one_line_error(lambda: mlstm.run(**args), pattern)
