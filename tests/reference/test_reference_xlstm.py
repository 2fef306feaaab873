"""sLSTM and mLSTM reference cells: manual BPTT == central differences (float64)."""

import numpy as np
import pytest

from lstmkit.reference import mlstm, slstm
from lstmkit.reference.gradcheck import numerical_gradient, relative_error

T = 6


@pytest.mark.parametrize("state", ["random", "zero"])
def test_slstm_bptt_matches_central_differences(state):
    H, NH = 6, 2
    rng = np.random.default_rng(0)
    p = slstm.sLSTMParams.random(H, NH, seed=1, forget_bias=1.0)
    p = slstm.sLSTMParams(p.R * 3.0, p.b)
    xs = rng.normal(scale=2.0, size=(T, 4 * H))
    if state == "random":
        state0 = slstm.sLSTMState(rng.normal(size=H), rng.normal(size=H), rng.uniform(0.5, 2, H), rng.normal(size=H))
    else:
        state0 = slstm.zero_state(H)
    dhs = rng.normal(size=(T, H))
    dstate = slstm.sLSTMState(*(rng.normal(size=H) for _ in range(4)))

    def loss():
        steps = slstm.run(p, xs, state0)
        last = steps[-1]
        final = sum(float(d @ a) for d, a in zip(dstate, (last.h, last.c, last.n, last.m), strict=True))
        return float(np.sum(dhs * np.array([s.h for s in steps]))) + final

    grads = slstm.backward(p, slstm.run(p, xs, state0), dhs, dstate)
    checks = {"R": (grads.params.R, p.R), "b": (grads.params.b, p.b), "xs": (grads.xs, xs)}
    if state == "random":  # at n = 0 the restart rule makes the state's gradient one-sided
        checks.update({f"state0.{k}": (getattr(grads.state0, k), getattr(state0, k)) for k in "hcnm"})
    for label, (analytic, array) in checks.items():
        err = relative_error(analytic, numerical_gradient(loss, array))
        assert err < 1e-7, f"sLSTM {label}: relative error {err:.2e}"


def test_slstm_h_is_independent_of_the_stabilizer():
    """Shifting m_0 rescales c and n alike: h is unchanged (why the stabilizer is safe)."""
    H = 4
    rng = np.random.default_rng(2)
    p = slstm.sLSTMParams.random(H, 2, seed=3)
    xs = rng.normal(size=(5, 4 * H))
    c0, n0 = rng.normal(size=H), rng.uniform(0.5, 1, H)
    a = slstm.run(p, xs, slstm.sLSTMState(np.zeros(H), c0, n0, np.zeros(H)))
    shift = 3.0
    b = slstm.run(p, xs, slstm.sLSTMState(np.zeros(H), c0 * np.exp(-shift), n0 * np.exp(-shift), np.full(H, shift)))
    np.testing.assert_allclose([s.h for s in a], [s.h for s in b], rtol=1e-12)


@pytest.mark.parametrize("m0", [0.0, -3.0])
def test_mlstm_bptt_matches_central_differences(m0):
    DK, DV = 4, 3
    rng = np.random.default_rng(5)
    qs, ks, vs = rng.normal(size=(T, DK)), rng.normal(size=(T, DK)), rng.normal(size=(T, DV))
    pre_is, pre_fs = rng.normal(scale=3.0, size=T), rng.normal(scale=3.0, size=T)
    state0 = mlstm.mLSTMState(rng.normal(size=(DK, DV)), rng.normal(size=DK), m0)
    dhs = rng.normal(size=(T, DV))
    dC, dn, dm = rng.normal(size=(DK, DV)), rng.normal(size=DK), rng.normal()

    def loss():
        steps = mlstm.run(qs, ks, vs, pre_is, pre_fs, state0)
        last = steps[-1]
        return float(np.sum(dhs * np.array([s.h for s in steps])) + np.sum(dC * last.C) + dn @ last.n + dm * last.m)

    steps = mlstm.run(qs, ks, vs, pre_is, pre_fs, state0)
    assert any(abs(s.qn) < np.exp(-s.m) for s in steps) or m0 == 0.0  # the lower bound is exercised
    grads = mlstm.backward(steps, dhs, mlstm.mLSTMState(dC, dn, dm))
    for name, analytic, array in [
        ("q", grads.q, qs),
        ("k", grads.k, ks),
        ("v", grads.v, vs),
        ("pre_i", grads.pre_i, pre_is),
        ("pre_f", grads.pre_f, pre_fs),
        ("C0", grads.state0.C, state0.C),
        ("n0", grads.state0.n, state0.n),
    ]:
        err = relative_error(analytic, numerical_gradient(loss, array))
        assert err < 1e-7, f"mLSTM {name}: relative error {err:.2e}"
