"""Mamba's selective scan (lstmkit.reference.mamba): == an independent scan written here from the paper's
equations, manual BPTT == central differences and == torch autograd, the matrix view == the recurrence, hand
mode, the selection in the worked example, the extremes, bad input (float64 throughout)."""

import numpy as np
import pytest
import torch

from lstmkit.reference import exact, hand, mamba
from lstmkit.reference.examples import EXAMPLES
from lstmkit.reference.gradcheck import numerical_gradient, relative_error
from tests.helpers import assert_close, peak

# C channels, N state entries per channel, T time steps, S sequences in a batch
C, N, T = 3, 4, 6
S = 5
FIELDS = mamba.MambaParams._fields


def random_params(seed: int = 0) -> mamba.MambaParams:
    """Weights of order 1, so Δ = softplus(·) spreads over (0.1, 3) and Ā is neither ≈ 1 nor ≈ 0 (a stricter check
    than Mamba's init, where Δ ≈ 0.01)."""
    rng = np.random.default_rng(seed)
    return mamba.MambaParams(
        A=-rng.uniform(0.5, 2.0, (C, N)),
        W_delta=rng.normal(size=(C, C)),
        b_delta=rng.normal(size=C),
        W_B=rng.normal(size=(N, C)),
        W_C=rng.normal(size=(N, C)),
        D=rng.normal(size=C),
    )


def decimals(a) -> bool:
    """Every entry a multiple of 0.1 (to float noise)."""
    a = np.asarray(a, dtype=np.float64) * 10
    return bool(np.all(np.abs(a - np.round(a)) < 1e-9))


# ---- an independent selective scan ---------------------------------------------------------------------------------


def selective_scan(A, W_delta, b_delta, W_B, W_C, D, xs, h0, z=None):
    """Gu & Dao 2023, Algorithm 2 (S6), in torch over a batch of sequences xs (S, T, C) at once:
    Δ = softplus(x W_Δᵀ + b_Δ), B = x W_Bᵀ, C = x W_Cᵀ;  Ā = exp(Δ ⊗ A), B̄ x = Δ ⊗ B · x  (S, T, C, N);
    h_t = Ā_t h_{t−1} + B̄_t x_t;  y = h · C + D x;  out = y SiLU(z). Returns (Δ, Ā, h (S, T, C, N), y, out)."""
    delta = torch.log1p(torch.exp(xs @ W_delta.T + b_delta))  # (S, T, C)
    Bs, Cs = xs @ W_B.T, xs @ W_C.T  # (S, T, N)
    A_bar = torch.exp(torch.einsum("stc,cn->stcn", delta, A))
    B_bar_x = torch.einsum("stc,stn,stc->stcn", delta, Bs, xs)
    h, hs = h0, []
    for t in range(xs.shape[1]):
        h = A_bar[:, t] * h + B_bar_x[:, t]
        hs.append(h)
    hs = torch.stack(hs, dim=1)
    y = torch.einsum("stcn,stn->stc", hs, Cs) + D * xs
    out = y if z is None else y * z * torch.sigmoid(z)
    return delta, A_bar, hs, y, out


def batch(seed: int, gated: bool):
    rng = np.random.default_rng(seed)
    xs, h0 = rng.normal(size=(S, T, C)), rng.normal(size=(S, C, N))
    return xs, h0, (rng.normal(size=(S, T, C)) if gated else None)


@pytest.mark.parametrize("gated", [False, True])
def test_run_matches_the_papers_selective_scan(gated):
    p = random_params(seed=1)
    xs, h0, zs = batch(2, gated)
    as_t = torch.from_numpy
    delta, A_bar, hs, y, out = selective_scan(
        *(as_t(a) for a in p), as_t(xs), as_t(h0), None if zs is None else as_t(zs)
    )
    for k in range(S):
        steps = mamba.run(p, xs[k], mamba.MambaState(h0[k]), gate=None if zs is None else zs[k])
        for name, ours, theirs in [
            ("Δ", [s.delta for s in steps], delta[k]),
            ("Ā", [s.A_bar for s in steps], A_bar[k]),
            ("h", [s.h for s in steps], hs[k]),
            ("y", [s.y for s in steps], y[k]),
            ("out", [s.out for s in steps], out[k]),
        ]:
            assert_close(np.array(ours), theirs.numpy(), f"{name} of sequence {k}", atol=1e-12, rtol=1e-12)
        assert (steps[0].gate is None) == (not gated)


@pytest.mark.parametrize("gated", [False, True])
def test_bptt_matches_torch_autograd(gated):
    p = random_params(seed=3)
    xs, h0, zs = batch(4, gated)
    xs, h0, zs = xs[0], h0[0], None if zs is None else zs[0]
    rng = np.random.default_rng(5)
    douts, dh = rng.normal(size=(T, C)), rng.normal(size=(C, N))
    leaves = [torch.tensor(a, requires_grad=True) for a in (*p, xs, h0)]
    z_leaf = None if zs is None else torch.tensor(zs, requires_grad=True)
    *_, hs, _, out = selective_scan(*leaves[:6], leaves[6][None], leaves[7][None], None if zs is None else z_leaf[None])
    ((out[0] * torch.tensor(douts)).sum() + (hs[0, -1] * torch.tensor(dh)).sum()).backward()
    grads = mamba.backward(p, mamba.run(p, xs, mamba.MambaState(h0), gate=zs), douts, mamba.MambaState(dh))
    for name, mine, leaf in zip((*FIELDS, "xs", "h0"), (*grads.params, grads.xs, grads.state0.h), leaves, strict=True):
        assert_close(mine, leaf.grad, f"d{name}", atol=1e-11, rtol=1e-11)
    if gated:
        assert_close(grads.gate, z_leaf.grad, "dz", atol=1e-11, rtol=1e-11)
    else:
        assert grads.gate is None


# ---- gradients by central differences ------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["random", "mamba"])
@pytest.mark.parametrize("gated", [False, True])
def test_bptt_matches_central_differences(gated, init):
    p = random_params(seed=6) if init == "random" else mamba.MambaParams.random(C, N, seed=6)
    rng = np.random.default_rng(7)
    xs, h0 = rng.normal(size=(T, C)), mamba.MambaState(rng.normal(size=(C, N)))
    zs = rng.normal(size=(T, C)) if gated else None
    douts, dh = rng.normal(size=(T, C)), rng.normal(size=(C, N))  # L = Σ_t douts_t · out_t + dh · h_T

    def loss():
        steps = mamba.run(p, xs, h0, gate=zs)
        return float(np.sum(douts * np.array([s.out for s in steps])) + np.sum(dh * steps[-1].h))

    grads = mamba.backward(p, mamba.run(p, xs, h0, gate=zs), douts, mamba.MambaState(dh))
    checks = {f"params.{k}": (getattr(grads.params, k), getattr(p, k)) for k in FIELDS}
    checks["xs"], checks["state0.h"] = (grads.xs, xs), (grads.state0.h, h0.h)
    if gated:
        checks["gate"] = (grads.gate, zs)
    for label, (analytic, array) in checks.items():
        numeric = numerical_gradient(loss, array)
        err = relative_error(analytic, numeric)
        assert err < 1e-7, f"{label}: relative error {err:.2e}"


def test_a_log_gradient_matches_central_differences():
    p = random_params(seed=8)
    A_log = np.log(-p.A)
    rng = np.random.default_rng(9)
    xs, zs, douts = rng.normal(size=(T, C)), rng.normal(size=(T, C)), rng.normal(size=(T, C))

    def loss():
        steps = mamba.run(p._replace(A=mamba.from_A_log(A_log)), xs, gate=zs)
        return float(np.sum(douts * np.array([s.out for s in steps])))

    grads = mamba.backward(p, mamba.run(p, xs, gate=zs), douts)
    err = relative_error(mamba.a_log_gradient(grads, p), numerical_gradient(loss, A_log))
    assert err < 1e-7, f"∂L/∂A_log: relative error {err:.2e}"
    assert_close(mamba.from_A_log(A_log), p.A, "A = -exp(A_log)", atol=1e-15, rtol=1e-15)


# ---- the matrix view -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("from_zero", [True, False])
def test_matrix_view_equals_recurrence(from_zero):
    p = random_params(seed=10)
    rng = np.random.default_rng(11)
    xs = rng.normal(size=(T, C))
    h0 = mamba.MambaState(np.zeros((C, N)) if from_zero else rng.normal(size=(C, N)))
    steps = mamba.run(p, xs, h0, gate=rng.normal(size=(T, C)))
    view, y = mamba.matrix_view(p, steps), np.array([s.y for s in steps])
    assert_close(view.y, y, "matrix view y", atol=1e-12 * peak(y))
    assert np.abs(view.free).max() == 0.0 if from_zero else np.abs(view.free).max() > 1e-3
    for c in range(C):
        assert_close(view.matrix[c] @ xs[:, c], view.Mx[:, c], f"M x, channel {c}", atol=1e-13)


def test_matrix_view_follows_its_formula():
    """M_ts = Σ_n C_t[n] exp(Σ_{k=s+1..t} Δ_k A[n]) B_s[n] Δ_s for s ≤ t, zero above, entry by entry."""
    p = random_params(seed=12)
    steps = mamba.run(p, np.random.default_rng(13).normal(size=(T, C)))
    view = mamba.matrix_view(p, steps)
    for c in range(C):
        for t in range(T):
            for s in range(T):
                exponent = sum(steps[k].delta[c] * p.A[c] for k in range(s + 1, t + 1)) + np.zeros(N)
                decay = np.exp(exponent) if s <= t else np.zeros(N)
                M_ts = np.sum(steps[t].C * decay * steps[s].B * steps[s].delta[c])
                assert_close(view.decay[c, :, t, s], decay, f"decay[{c}, :, {t}, {s}]", atol=1e-15, rtol=1e-14)
                assert_close(view.matrix[c, t, s], M_ts, f"M[{c}, {t}, {s}]", atol=1e-14, rtol=1e-13)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("big", [1e6, 1e300])
def test_matrix_view_after_one_huge_step(big):
    """Channel 0's Δ_1 is huge (its state wiped, nothing written as its x_1 is 0), its later Δ = log 2: the decays
    after step 1 stay exact (as differences of running sums Σ_k Δ_k A they lost 1e-10 at Δ_1 = 1e6, all at 1e300)."""
    p = random_params(seed=14)._replace(W_delta=np.zeros((C, C)), b_delta=np.zeros(C))
    p.W_delta[0, 1] = big  # channel 0's Δ is chosen by channel 1's input
    xs = np.random.default_rng(15).normal(size=(T, C))
    xs[0, 0], xs[0, 1], xs[1:, 1] = 0.0, 1.0, 0.0
    steps = mamba.run(p, xs, mamba.MambaState(np.ones((C, N))))
    assert steps[0].delta[0] == big and abs(steps[1].delta[0] - np.log(2)) < 1e-15
    y = np.array([s.y for s in steps])
    assert_close(mamba.matrix_view(p, steps).y, y, "matrix view y", atol=1e-12 * peak(y))


# ---- hand mode, the worked example and its selection -----------------------------------------------------------------


def test_hand_mode_rounds_every_intermediate_and_stays_near_exact():
    e = EXAMPLES["mamba"]()
    assert e.gate is not None
    hand_steps = mamba.run(e.params, e.xs, e.state0, hand, gate=e.gate)
    exact_step = mamba.run(e.params, e.xs, e.state0, exact, gate=e.gate)[0]
    for step in hand_steps:
        for field, value in step._asdict().items():
            assert decimals(value), f"hand {field} = {value}"
    for field, value in hand_steps[0]._asdict().items():
        diff = np.abs(value - getattr(exact_step, field)).max()
        assert diff <= 0.1 + 1e-12, f"step 1 {field}: hand {value} is {diff:.3f} from exact"
    for field, value in mamba.matrix_view(e.params, hand_steps, hand)._asdict().items():
        assert decimals(value), f"hand matrix view {field} = {value}"


def test_worked_example_selects():
    """Step 3: channel 1 takes a big step (Δ > 2, Ā < 0.05: overwritten), channel 2 a small one (Δ < 0.2, Ā > 0.75:
    kept); step 1 has Δ = softplus(0) = log 2 in both."""
    e = EXAMPLES["mamba"]()
    steps = mamba.run(e.params, e.xs, e.state0, gate=e.gate)
    assert_close(steps[0].delta, np.full(2, np.log(2)), "Δ at step 1", atol=1e-15)
    s3 = steps[2]
    assert s3.delta[0] > 2 and np.all(s3.A_bar[0] < 0.05), (s3.delta, s3.A_bar)
    assert s3.delta[1] < 0.2 and np.all(s3.A_bar[1] > 0.75), (s3.delta, s3.A_bar)
    kept = np.abs(s3.A_bar_h[1]) / np.maximum(np.abs(s3.A_bar_h[1]) + np.abs(s3.B_bar_x[1]), 1e-300)
    assert np.all(kept[s3.h_prev[1] != 0] > 0.5), "channel 2's new state is mostly its old one"


def test_large_step_overwrites_and_small_step_keeps():
    p = random_params(seed=16)._replace(W_delta=np.zeros((C, C)))
    x, h_prev = np.random.default_rng(17).normal(size=C), mamba.MambaState(np.ones((C, N)))
    A_bars = []
    for b in (-40.0, -5.0, 0.0, 5.0, 200.0):  # Δ = softplus(b) from 4e-18 to 200
        s = mamba.step(p._replace(b_delta=np.full(C, b)), x, h_prev)
        A_bars.append(s.A_bar)
        if b == -40.0:
            assert_close(s.h, h_prev.h, "small Δ: h_t = h_{t−1}", atol=1e-15)
        if b == 200.0:
            assert np.all(s.A_bar_h < 1e-40), "large Δ: nothing of h_{t−1} is kept"
            assert_close(s.h, s.B_bar_x, "large Δ: h_t = B̄_t x_t", atol=1e-40, rtol=1e-15)
    assert np.all(np.diff(np.array(A_bars), axis=0) < 0), "Ā falls as Δ grows"
    assert np.all(A_bars[0] == 1.0) and np.all(A_bars[-1] < 1e-40)


def test_random_is_mambas_initialisation():
    p = mamba.MambaParams.random(C, N, seed=20)
    assert_close(p.A, -np.tile(np.arange(1.0, N + 1), (C, 1)), "A = -(1..N)", atol=0.0)
    assert_close(p.D, np.ones(C), "D", atol=0.0)
    dt = mamba.softplus(p.b_delta)  # b_Δ is the inverse softplus of Δ at init
    assert np.all((1e-3 <= dt) & (dt <= 1e-1)), dt
    assert all(np.abs(w).max() <= 1 / np.sqrt(C) for w in (p.W_delta, p.W_B, p.W_C))


# ---- the extremes --------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("b_delta", "A"), [(1e3, -1.0), (1e300, -1.0), (-1e3, -1.0), (-1e300, -1.0), (0.0, -1e6), (1.0, -1e300)]
)
def test_extremes_stay_finite(b_delta, A):
    """softplus(1e3) overflows as log(1 + e^a) and must not; softplus(-1e3) underflows to Δ = 0 (Ā = 1, nothing
    written); A = -1e300 wipes the state."""
    p = random_params(seed=18)._replace(W_delta=np.zeros((C, C)), b_delta=np.full(C, b_delta), A=np.full((C, N), A))
    rng = np.random.default_rng(19)
    xs, h0, zs = rng.normal(size=(T, C)) * 1e-3, mamba.MambaState(rng.normal(size=(C, N))), rng.normal(size=(T, C))
    steps = mamba.run(p, xs, h0, gate=zs)
    grads = mamba.backward(p, steps, np.ones((T, C)), mamba.MambaState(np.ones((C, N))))
    view = mamba.matrix_view(p, steps)
    for name, value in [*steps[-1]._asdict().items(), *grads.params._asdict().items(), *view._asdict().items()]:
        assert np.isfinite(value).all(), f"{name} = {value}"
    y = np.array([s.y for s in steps])
    assert_close(view.y, y, "matrix view y", atol=1e-12 * peak(y))
    if b_delta == -1e3:
        assert np.all(steps[-1].h == h0.h), "Δ = 0 keeps the state exactly"


# ---- bad input: one line each --------------------------------------------------------------------------------------

GOOD = random_params()
X, H0 = np.zeros((2, C)), mamba.zero_state(C, N)


def entry(array, index, value) -> np.ndarray:
    """A copy of `array` with one entry set."""
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


BAD_RUNS = [
    (
        "A = 0",
        lambda: mamba.run(GOOD._replace(A=entry(GOOD.A, (1, 2), 0.0)), X),
        r"A has 0 at index \(1, 2\), expected negative numbers \(A = -exp\(A_log\)\)",
    ),
    ("A > 0", lambda: mamba.run(GOOD._replace(A=-GOOD.A), X), r"A has [\d.]+ at index \(0, 0\), expected negative"),
    ("A (C,)", lambda: mamba.run(GOOD._replace(A=-np.ones(C)), X), r"A has shape \(3,\), expected \(C, N\)"),
    (
        "ragged A",
        lambda: mamba.run(GOOD._replace(A=[[-1.0], [-1, -2]]), X),
        "A has rows of different lengths: row 1 has 2, row 0 has 1",
    ),
    ("A words", lambda: mamba.run(GOOD._replace(A=[["x"]]), X), "A must be numbers"),
    (
        "W_delta",
        lambda: mamba.run(GOOD._replace(W_delta=np.ones((C, N))), X),
        r"W_delta has shape \(3, 4\), expected \(3, 3\) \(channels, channels\)",
    ),
    ("b_delta", lambda: mamba.run(GOOD._replace(b_delta=np.ones(N)), X), r"b_delta has shape \(4,\), expected \(3,\)"),
    (
        "W_B (C, N)",
        lambda: mamba.run(GOOD._replace(W_B=np.ones((C, N))), X),
        r"W_B has shape \(3, 4\), expected \(4, 3\) \(state size, channels\)",
    ),
    ("W_C", lambda: mamba.run(GOOD._replace(W_C=np.ones(N)), X), r"W_C has shape \(4,\), expected \(4, 3\)"),
    ("D", lambda: mamba.run(GOOD._replace(D=[1.0]), X), r"D has shape \(1,\), expected \(3,\)"),
    (
        "inf weight",
        lambda: mamba.run(GOOD._replace(W_B=entry(GOOD.W_B, (2, 1), -np.inf)), X),
        r"W_B has a non-finite value -inf at index \(2, 1\)",
    ),
    (
        "NaN b_delta",
        lambda: mamba.run(GOOD._replace(b_delta=[0, np.nan, 0]), X),
        r"b_delta has a non-finite value nan at index \(1,\)",
    ),
    ("inputs", lambda: mamba.run(GOOD, np.zeros((2, N))), r"inputs has shape \(2, 4\), expected \(T, 3\)"),
    ("no steps", lambda: mamba.run(GOOD, np.zeros((0, C))), "inputs has 0 time steps, expected at least 1"),
    (
        "NaN input",
        lambda: mamba.run(GOOD, entry(X, (1, 0), np.nan)),
        r"inputs has a non-finite value nan at index \(1, 0\)",
    ),
    (
        "gate rows",
        lambda: mamba.run(GOOD, X, gate=np.zeros((3, C))),
        r"gate has shape \(3, 3\), expected \(2, 3\) \(time steps as inputs, channels\)",
    ),
    ("gate columns", lambda: mamba.run(GOOD, X, gate=np.zeros((2, N))), r"gate has shape \(2, 4\), expected \(2, 3\)"),
    (
        "gate inf",
        lambda: mamba.run(GOOD, X, gate=entry(X, (0, 2), np.inf)),
        r"gate has a non-finite value inf at index \(0, 2\)",
    ),
    (
        "step gate",
        lambda: mamba.step(GOOD, X[0], H0, gate=np.zeros((1, C))),
        r"gate has shape \(1, 3\), expected \(3,\) \(channels\)",
    ),
    (
        "h0 shape",
        lambda: mamba.run(GOOD, X, mamba.MambaState(np.zeros((N, C)))),
        r"h0 has shape \(4, 3\), expected \(3, 4\)",
    ),
    (
        "h0 NaN",
        lambda: mamba.run(GOOD, X, mamba.MambaState(entry(H0.h, (0, 0), np.nan))),
        r"h0 has a non-finite value nan",
    ),
    ("state0 array", lambda: mamba.run(GOOD, X, np.zeros((C, N))), r"state0 is a ndarray, expected a MambaState\(h\)"),
    ("state dict", lambda: mamba.step(GOOD, X[0], {"h": H0.h}), r"state is a dict, expected a MambaState\(h\)"),
    ("step x", lambda: mamba.step(GOOD, np.zeros(N), H0), r"x has shape \(4,\), expected \(3,\)"),
    (
        "rounding",
        lambda: mamba.run(GOOD, X, rounding=None),
        "rounding is None, expected a function such as reference.exact",
    ),
    (
        "view rounding",
        lambda: mamba.matrix_view(GOOD, mamba.run(GOOD, X), rounding=1),
        "rounding is 1, expected a function",
    ),
    (
        "douts",
        lambda: mamba.backward(GOOD, mamba.run(GOOD, X), np.zeros((2, N))),
        r"douts has shape \(2, 4\), expected \(2, 3\)",
    ),
    (
        "dstate",
        lambda: mamba.backward(GOOD, mamba.run(GOOD, X), np.zeros((2, C)), H0.h),
        "dstate is a ndarray, expected a MambaState",
    ),
]


@pytest.mark.parametrize(("what", "call", "message"), BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_bad_input_is_one_line(what, call, message):
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value), what
