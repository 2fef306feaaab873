"""Seeds' layout <-> PyTorch's stacked layout, and the reference == torch.nn on the same weights."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.reference import gru, lstm, rnn

TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
MODULES = {"lstm": lstm, "gru": gru, "rnn": rnn}
PARAMS = {"lstm": lstm.LSTMParams, "gru": gru.GRUParams, "rnn": rnn.RNNParams}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_concat_round_trip_is_exact(name):
    cell = MODULES[name]
    p = PARAMS[name].random(3, 2, seed=4)
    q = cell.to_concat(p)
    q2 = cell.to_concat(cell.from_concat(q, input_size=3))
    for field in q._fields:
        np.testing.assert_array_equal(getattr(q2, field), getattr(q, field), err_msg=field)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_concat_layout_computes_the_same_cell(name):
    """stacked -> concat -> stacked may move bias between b_ih and b_hh, but the outputs are equal."""
    cell = MODULES[name]
    p = PARAMS[name].random(3, 5, seed=5)
    p2 = cell.from_concat(cell.to_concat(p), input_size=3)
    xs = np.random.default_rng(0).normal(size=(4, 3))
    h1 = np.array([s.h for s in cell.run(p, xs)])
    h2 = np.array([s.h for s in cell.run(p2, xs)])
    np.testing.assert_allclose(h2, h1, rtol=0, atol=1e-14)


def test_lstm_concat_rows_are_the_seeds_gates():
    q = lstm.to_concat(lstm.LSTMParams.random(3, 2, seed=1))
    p = lstm.from_concat(q, 3)
    np.testing.assert_array_equal(p.W_ih[2:4], q.W_f[:, 2:])  # rows H..2H are f (order i, f, g, o)
    np.testing.assert_array_equal(p.W_hh[4:6], q.W_c[:, :2])  # rows 2H..3H are g = C̃


@pytest.mark.parametrize("name", sorted(MODULES))
def test_reference_equals_torch_nn(name):
    """Reference weights loaded into torch.nn.* with strict=True give the same hidden states (float64)."""
    cell = MODULES[name]
    p = PARAMS[name].random(3, 4, seed=6)
    module = TORCH[name](3, 4, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in cell.to_torch(p).items()}, strict=True)
    xs = np.random.default_rng(3).normal(size=(7, 3))
    with torch.no_grad():
        out, _ = module(torch.from_numpy(xs))
    ours = np.array([s.h for s in cell.run(p, xs)])
    np.testing.assert_allclose(ours, out.numpy(), rtol=0, atol=1e-13)
    back = cell.from_torch(module.state_dict())
    for field in p._fields:
        np.testing.assert_array_equal(getattr(back, field), getattr(p, field), err_msg=field)


def test_seeds_example_through_torch_nn_lstm():
    from lstmkit.reference import examples

    ex = examples.seeds_lstm()
    module = torch.nn.LSTM(3, 2, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in lstm.to_torch(ex.params).items()})
    h0 = torch.from_numpy(ex.state0.h)[None]
    c0 = torch.from_numpy(ex.state0.c)[None]
    with torch.no_grad():
        out, (_, c_n) = module(torch.from_numpy(ex.xs), (h0, c0))
    steps = lstm.run(ex.params, ex.xs, ex.state0)
    np.testing.assert_allclose(out[0].numpy(), [0.632491, -0.005050], atol=5e-7)
    np.testing.assert_allclose(c_n[0].numpy(), steps[-1].c, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(MODULES)), I=st.integers(1, 5), H=st.integers(1, 5), seed=st.integers(0, 1000))
def test_any_size_round_trips_and_matches_torch(name, I, H, seed):
    cell = MODULES[name]
    p = PARAMS[name].random(I, H, seed=seed)
    q = cell.to_concat(cell.from_concat(cell.to_concat(p), input_size=I))
    for field in q._fields:
        np.testing.assert_allclose(getattr(q, field), getattr(cell.to_concat(p), field), rtol=0, atol=0)
    module = TORCH[name](I, H, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in cell.to_torch(p).items()}, strict=True)
    xs = np.random.default_rng(seed).normal(size=(3, I))
    with torch.no_grad():
        out, _ = module(torch.from_numpy(xs))
    np.testing.assert_allclose(np.array([s.h for s in cell.run(p, xs)]), out.numpy(), rtol=0, atol=1e-13)
