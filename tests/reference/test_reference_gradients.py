"""Manual BPTT of every reference cell == central differences (float64, relative error < 1e-7)."""

import numpy as np
import pytest

from lstmkit.reference import gru, lstm, rnn
from lstmkit.reference.gradcheck import numerical_gradient, relative_error

CELLS = {
    "rnn": (rnn, rnn.RNNParams, rnn.RNNState),
    "gru": (gru, gru.GRUParams, gru.GRUState),
    "lstm": (lstm, lstm.LSTMParams, lstm.LSTMState),
}
I, H, T = 3, 4, 6


@pytest.mark.parametrize("name", sorted(CELLS))
def test_bptt_matches_central_differences(name):
    cell, Params, State = CELLS[name]
    rng = np.random.default_rng(1)
    p = Params.random(I, H, seed=2)
    p = Params(*(a * 2.0 for a in p))  # larger weights: gates away from 0.5, a stricter check
    xs = rng.normal(size=(T, I))
    state0 = State(*(rng.normal(size=H) for _ in State._fields))
    dhs = rng.normal(size=(T, H))  # L = Σ_t dhs[t]·h_t + Σ_fields dstate·state_T
    dstate = State(*(rng.normal(size=H) for _ in State._fields))

    def loss():
        steps = cell.run(p, xs, state0)
        last = steps[-1]
        final = sum(
            float(dstate_k @ getattr(last, field)) for field, dstate_k in zip(State._fields, dstate, strict=True)
        )
        return float(np.sum(dhs * np.array([s.h for s in steps]))) + final

    grads = cell.backward(p, cell.run(p, xs, state0), dhs, dstate)
    checks = {f"params.{k}": (getattr(grads.params, k), getattr(p, k)) for k in Params._fields}
    checks["xs"] = (grads.xs, xs)
    checks.update({f"state0.{k}": (getattr(grads.state0, k), getattr(state0, k)) for k in State._fields})
    for label, (analytic, array) in checks.items():
        numeric = numerical_gradient(loss, array)
        err = relative_error(analytic, numeric)
        assert err < 1e-7, (
            f"{name} {label}: relative error {err:.2e}, max |diff| {np.abs(analytic - numeric).max():.2e}"
        )


def test_gradcheck_catches_a_wrong_gradient():
    """The check itself can fail: a backward with a sign error is caught."""
    p = lstm.LSTMParams.random(I, H, seed=0)
    xs = np.random.default_rng(0).normal(size=(T, I))
    dhs = np.ones((T, H))
    grads = lstm.backward(p, lstm.run(p, xs), dhs)

    def loss():
        return float(np.sum([s.h.sum() for s in lstm.run(p, xs)]))

    numeric = numerical_gradient(loss, p.W_hh)
    assert relative_error(grads.params.W_hh, numeric) < 1e-7
    assert relative_error(-grads.params.W_hh, numeric) > 0.5
