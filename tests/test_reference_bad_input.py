"""Reference functions reject bad input with one line naming the field, the shape found and expected."""

import numpy as np
import pytest

from lstmkit.reference import gru, lstm, rnn


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
