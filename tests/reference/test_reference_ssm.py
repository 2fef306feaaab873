"""The diagonal SSM (lstmkit.reference.ssm): manual BPTT == central differences and == torch autograd, the
recurrence == a batched one written here with the discretisations as matrix formulas, the convolution view ==
the recurrence, hand mode, the limits of Δ, the extremes, bad input (float64 throughout)."""

import numpy as np
import pytest
import torch

from lstmkit.reference import exact, hand, ssm
from lstmkit.reference.examples import EXAMPLES
from lstmkit.reference.gradcheck import numerical_gradient, relative_error
from tests.helpers import assert_close, peak

# C channels, N state entries per channel, T time steps, S sequences in a batch
C, N, T = 3, 4, 6
S = 5


def random_params(discretization: str, seed: int = 0) -> ssm.SSMParams:
    """Δ A spread over (-3, -0.03), so Ā is neither ≈ 1 nor ≈ 0: a stricter check than S4D's Ā ≈ 1."""
    rng = np.random.default_rng(seed)
    return ssm.SSMParams(
        A=-rng.uniform(0.3, 3.0, (C, N)),
        B=rng.normal(size=(C, N)),
        C=rng.normal(size=(C, N)),
        D=rng.normal(size=C),
        delta=rng.uniform(0.1, 1.0, C),
        discretization=discretization,
    )


PARAMS = {"random": random_params, "s4d": lambda d: ssm.SSMParams.random(C, N, seed=3, discretization=d)}


def ys_of(steps) -> np.ndarray:
    return np.array([s.y for s in steps])


def decimals(a) -> bool:
    """Every entry a multiple of 0.1 (to float noise)."""
    a = np.asarray(a, dtype=np.float64) * 10
    return bool(np.all(np.abs(a - np.round(a)) < 1e-9))


# ---- gradients ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("init", sorted(PARAMS))
@pytest.mark.parametrize("discretization", ssm.DISCRETIZATIONS)
def test_bptt_matches_central_differences(discretization, init):
    p = PARAMS[init](discretization)
    rng = np.random.default_rng(1)
    xs, h0 = rng.normal(size=(T, C)), ssm.SSMState(rng.normal(size=(C, N)))
    dys, dh = rng.normal(size=(T, C)), rng.normal(size=(C, N))  # L = Σ_t dys_t · y_t + dh · h_T

    def loss():
        steps = ssm.run(p, xs, h0)
        return float(np.sum(dys * ys_of(steps)) + np.sum(dh * steps[-1].h))

    grads = ssm.backward(p, ssm.run(p, xs, h0), dys, ssm.SSMState(dh))
    checks = {f"params.{k}": (getattr(grads.params, k), getattr(p, k)) for k in ("A", "B", "C", "D", "delta")}
    checks["xs"], checks["state0.h"] = (grads.xs, xs), (grads.state0.h, h0.h)
    assert grads.params.discretization == discretization
    for label, (analytic, array) in checks.items():
        numeric = numerical_gradient(loss, array)
        err = relative_error(analytic, numeric)
        assert err < 1e-7, f"{discretization} {label}: relative error {err:.2e}"


def torch_ssm(A, B, Cm, D, delta, xs, h0, discretization):
    """The SSM in torch: each discretisation's formula, then h_t = Ā h_{t−1} + B̄ x_t, y_t = C h_t + D x_t."""
    u = delta[:, None] * A
    if discretization == "bilinear":
        A_bar, B_bar = (1 + u / 2) / (1 - u / 2), delta[:, None] * B / (1 - u / 2)
    elif discretization == "zoh":
        A_bar, B_bar = torch.exp(u), torch.expm1(u) / A * B
    else:
        A_bar, B_bar = torch.exp(u), delta[:, None] * B
    h, ys = h0, []
    for x in xs:
        h = A_bar * h + B_bar * x[:, None]
        ys.append((Cm * h).sum(-1) + D * x)
    return torch.stack(ys), h


@pytest.mark.parametrize("discretization", ssm.DISCRETIZATIONS)
def test_bptt_matches_torch_autograd(discretization):
    p = random_params(discretization, seed=4)
    rng = np.random.default_rng(5)
    xs, h0 = rng.normal(size=(T, C)), rng.normal(size=(C, N))
    dys, dh = rng.normal(size=(T, C)), rng.normal(size=(C, N))
    leaves = [torch.tensor(a, requires_grad=True) for a in (p.A, p.B, p.C, p.D, p.delta, xs, h0)]
    ys, h_T = torch_ssm(*leaves, discretization)
    ((ys * torch.tensor(dys)).sum() + (h_T * torch.tensor(dh)).sum()).backward()
    grads = ssm.backward(p, ssm.run(p, xs, ssm.SSMState(h0)), dys, ssm.SSMState(dh))
    ours = (*grads.params[:5], grads.xs, grads.state0.h)
    assert_close(ys.detach(), ys_of(ssm.run(p, xs, ssm.SSMState(h0))), "y", atol=1e-12, rtol=1e-12)
    for name, mine, leaf in zip(("A", "B", "C", "D", "delta", "xs", "h0"), ours, leaves, strict=True):
        assert_close(mine, leaf.grad, f"{discretization} d{name}", atol=1e-11, rtol=1e-11)


# ---- the recurrence against matrix formulas -----------------------------------------------------------------------


def matrix_discretization(p: ssm.SSMParams) -> tuple[np.ndarray, np.ndarray]:
    """Ā (C, N, N) and B̄ (C, N) with A as the matrix np.diag(A_c) of each channel (S4's general formulas):
    zoh Ā = exp(ΔA) (the diagonal's exp), B̄ = (ΔA)⁻¹(exp(ΔA) − I) ΔB;  bilinear Ā = (I − ΔA/2)⁻¹(I + ΔA/2),
    B̄ = (I − ΔA/2)⁻¹ ΔB;  zoh-euler Ā = exp(ΔA), B̄ = ΔB."""
    eye = np.eye(N)
    A_bars, B_bars = [], []
    for c in range(C):
        dA, dB = p.delta[c] * np.diag(p.A[c]), p.delta[c] * p.B[c]
        expm = np.diag(np.exp(np.diag(dA)))  # exp of a diagonal matrix
        if p.discretization == "bilinear":
            A_bars.append(np.linalg.solve(eye - dA / 2, eye + dA / 2))
            B_bars.append(np.linalg.solve(eye - dA / 2, dB))
        else:
            A_bars.append(expm)
            B_bars.append(np.linalg.solve(dA, (expm - eye) @ dB) if p.discretization == "zoh" else dB)
    return np.array(A_bars), np.array(B_bars)


@pytest.mark.parametrize("discretization", ssm.DISCRETIZATIONS)
def test_recurrence_matches_a_batched_matrix_recurrence(discretization):
    p = random_params(discretization, seed=6)
    rng = np.random.default_rng(7)
    xs, h0 = rng.normal(size=(S, T, C)), rng.normal(size=(S, C, N))
    A_bar, B_bar = matrix_discretization(p)
    h, hs, ys = h0, [], []
    for t in range(T):  # all S sequences and C channels at once
        h = np.einsum("cij,scj->sci", A_bar, h) + B_bar * xs[:, t, :, None]
        hs.append(h)
        ys.append(np.einsum("ci,sci->sc", p.C, h) + p.D * xs[:, t])
    hs, ys = np.stack(hs, axis=1), np.stack(ys, axis=1)  # (S, T, C, N), (S, T, C)
    for k in range(S):
        steps = ssm.run(p, xs[k], ssm.SSMState(h0[k]))
        assert_close(steps[0].A_bar, np.diagonal(A_bar, axis1=1, axis2=2).copy(), "A_bar", atol=1e-14, rtol=1e-13)
        assert_close(steps[0].B_bar, B_bar, "B_bar", atol=1e-14, rtol=1e-13)
        assert_close(np.array([s.h for s in steps]), hs[k], f"h of sequence {k}", atol=1e-12, rtol=1e-12)
        assert_close(ys_of(steps), ys[k], f"y of sequence {k}", atol=1e-12, rtol=1e-12)


def test_step_is_one_step_of_run():
    p = random_params("bilinear", seed=8)
    xs = np.random.default_rng(9).normal(size=(T, C))
    steps = ssm.run(p, xs)
    again = ssm.step(p, xs[3], ssm.SSMState(steps[2].h))
    assert_close(again, steps[3], "step", atol=0.0)


# ---- the convolution view -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("from_zero", [True, False])
@pytest.mark.parametrize("discretization", ssm.DISCRETIZATIONS)
def test_convolution_equals_recurrence(discretization, from_zero):
    p = random_params(discretization, seed=10)
    rng = np.random.default_rng(11)
    xs = rng.normal(size=(T, C))
    h0 = ssm.SSMState(np.zeros((C, N)) if from_zero else rng.normal(size=(C, N)))
    steps, conv = ssm.run(p, xs, h0), ssm.convolution(p, xs, h0)
    y = ys_of(steps)
    assert_close(conv.y, y, "convolution y", atol=1e-12 * peak(y))
    assert np.abs(conv.free).max() == 0.0 if from_zero else np.abs(conv.free).max() > 1e-3
    for c in range(C):
        assert_close(conv.toeplitz[c] @ xs[:, c], conv.Kx[:, c], f"toeplitz · x, channel {c}", atol=1e-13)
        full = np.convolve(xs[:, c], conv.kernel[:, c])[:T]  # y = K * x, NumPy's own convolution
        assert_close(conv.Kx[:, c], full, f"K * x, channel {c}", atol=1e-12)


def test_convolution_kernel_and_toeplitz_follow_their_formulas():
    p = random_params("zoh", seed=12)
    conv = ssm.convolution(p, np.ones((T, C)))
    _, A_bar, B_bar = ssm.discretize(p.checked())
    for k in range(T):
        power = np.array([np.linalg.matrix_power(np.diag(a), k) for a in A_bar])  # (C, N, N)
        expected = np.einsum("cn,cnm,cm->c", p.C, power, B_bar)  # K_k = C Ā^k B̄
        assert_close(conv.kernel[k], expected, f"K_{k}", atol=1e-14, rtol=1e-12)
    for t in range(T):
        for s in range(T):
            expected = conv.kernel[t - s] if t >= s else np.zeros(C)
            assert_close(conv.toeplitz[:, t, s], expected, f"toeplitz[:, {t}, {s}]", atol=0.0)


# ---- hand mode and the worked example -----------------------------------------------------------------------------


def test_hand_mode_rounds_every_intermediate_and_stays_near_exact():
    e = EXAMPLES["ssm"]()
    hand_steps, exact_steps = ssm.run(e.params, e.xs, e.state0, hand), ssm.run(e.params, e.xs, e.state0, exact)
    for step in hand_steps:
        for field, value in step._asdict().items():
            assert decimals(value), f"hand {field} = {value}"
    for field, value in hand_steps[0]._asdict().items():
        diff = np.abs(value - getattr(exact_steps[0], field)).max()
        assert diff <= 0.1 + 1e-12, f"step 1 {field}: hand {value} is {diff:.3f} from exact"
    for field, value in ssm.convolution(e.params, e.xs, e.state0, hand)._asdict().items():
        assert decimals(value), f"hand convolution {field} = {value}"


def test_worked_example_step_one():
    e = EXAMPLES["ssm"]()
    s = ssm.run(e.params, e.xs, e.state0, hand)[0]
    assert_close(s.dA, np.array([[-0.5, -2.3]]), "ΔA", atol=1e-12)
    assert_close(s.A_bar, np.array([[0.6, 0.1]]), "Ā = exp(ΔA)", atol=1e-12)  # the docstring's friendly values
    exact_step = ssm.run(e.params, e.xs, e.state0)[0]
    assert_close(exact_step.A_bar, np.exp([[-0.5, -2.3]]), "exact Ā", atol=1e-15)


# ---- the limits of Δ and the extremes -----------------------------------------------------------------------------


@pytest.mark.parametrize("discretization", ssm.DISCRETIZATIONS)
def test_small_step_keeps_the_state_and_large_step_forgets_it(discretization):
    base = random_params(discretization, seed=13)
    A_bars = [ssm.discretize(base._replace(delta=np.full(C, d)).checked())[1] for d in (1e-12, 0.1, 1.0, 10.0, 1e12)]
    assert_close(A_bars[0], np.ones((C, N)), "Ā at Δ = 1e-12", atol=1e-11)
    assert all(np.all(np.abs(a) < 1) for a in A_bars), "|Ā| < 1: every discretisation is stable"
    if discretization == "bilinear":  # Tustin maps ΔA -> -∞ to Ā -> -1, not 0
        assert_close(A_bars[-1], -np.ones((C, N)), "bilinear Ā at Δ = 1e12", atol=1e-10)
    else:
        assert np.all(np.diff(np.array(A_bars), axis=0) < 0), "Ā falls as Δ grows"
        assert np.all(A_bars[-1] == 0.0), "Ā at Δ = 1e12"


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("A", [-1e6, -1e300])
@pytest.mark.parametrize("discretization", ssm.DISCRETIZATIONS)
def test_very_negative_A_stays_finite(discretization, A):
    p = random_params(discretization, seed=14)._replace(A=np.full((C, N), A))
    rng = np.random.default_rng(15)
    xs, h0 = rng.normal(size=(T, C)), ssm.SSMState(rng.normal(size=(C, N)))
    steps = ssm.run(p, xs, h0)
    grads = ssm.backward(p, steps, np.ones((T, C)), ssm.SSMState(np.ones((C, N))))
    for name, value in [*steps[-1]._asdict().items(), *grads.params._asdict().items(), ("dxs", grads.xs)]:
        assert name == "discretization" or np.isfinite(value).all(), f"{name} = {value}"
    assert_close(ssm.convolution(p, xs, h0).y, ys_of(steps), "convolution y", atol=1e-12 * peak(ys_of(steps)))


# ---- bad input: one line each -------------------------------------------------------------------------------------

GOOD = random_params("zoh")
X = np.zeros((2, C))


def entry(array, index, value) -> np.ndarray:
    """A copy of `array` with one entry set."""
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


BAD_RUNS = [
    (
        "A = 0",
        lambda: ssm.run(GOOD._replace(A=entry(GOOD.A, (0, 3), 0.0)), X),
        r"A has 0 at index \(0, 3\), expected negative",
    ),
    (
        "A > 0",
        lambda: ssm.run(GOOD._replace(A=-GOOD.A), X),
        r"A has [\d.]+ at index \(0, 0\), expected negative numbers",
    ),
    (
        "Δ = 0",
        lambda: ssm.run(GOOD._replace(delta=[0.1, 0.0, 1]), X),
        "delta has 0 at index 1, expected positive numbers",
    ),
    ("Δ < 0", lambda: ssm.run(GOOD._replace(delta=[-0.1, 0.1, 1]), X), "delta has -0.1 at index 0, expected positive"),
    (
        "discretization",
        lambda: ssm.run(GOOD._replace(discretization="euler"), X),
        "discretization is 'euler', expected one of zoh, bilinear, zoh-euler",
    ),
    ("A (C,)", lambda: ssm.run(GOOD._replace(A=-np.ones(C)), X), r"A has shape \(3,\), expected \(C, N\)"),
    (
        "B shape",
        lambda: ssm.run(GOOD._replace(B=np.ones((N, C))), X),
        r"B has shape \(4, 3\), expected \(3, 4\) \(channels, state size\)",
    ),
    ("D shape", lambda: ssm.run(GOOD._replace(D=np.ones(N)), X), r"D has shape \(4,\), expected \(3,\)"),
    ("inputs", lambda: ssm.run(GOOD, np.zeros((2, N))), r"inputs has shape \(2, 4\), expected \(T, 3\)"),
    ("no steps", lambda: ssm.run(GOOD, np.zeros((0, C))), "inputs has 0 time steps, expected at least 1"),
    ("h0 shape", lambda: ssm.run(GOOD, X, ssm.SSMState(np.zeros(N))), r"h0 has shape \(4,\), expected \(3, 4\)"),
    (
        "NaN input",
        lambda: ssm.run(GOOD, [[0, 0, 0], [0, np.nan, 0]]),
        r"inputs has a non-finite value nan at index \(1, 1\)",
    ),
    (
        "inf weight",
        lambda: ssm.run(GOOD._replace(C=entry(GOOD.C, (0, 0), np.inf)), X),
        r"C has a non-finite value inf at index \(0, 0\)",
    ),
    (
        "inf Δ",
        lambda: ssm.run(GOOD._replace(delta=[np.inf, 1, 1]), X),
        r"delta has a non-finite value inf at index \(0,\)",
    ),
    ("inf h0", lambda: ssm.run(GOOD, X, ssm.SSMState(np.full((C, N), np.inf))), r"h0 has a non-finite value inf"),
    (
        "ragged A",
        lambda: ssm.run(GOOD._replace(A=[[-1, -2], [-1]]), X),
        "A has rows of different lengths: row 1 has 1, row 0 has 2",
    ),
    ("A text", lambda: ssm.run(GOOD._replace(A="-1"), X), r"A has shape \(\), expected \(C, N\)"),
    ("A words", lambda: ssm.run(GOOD._replace(A=[["a", "b"]]), X), "A must be numbers"),
    ("state0 tuple", lambda: ssm.run(GOOD, X, (np.zeros((C, N)),)), r"state0 is a tuple, expected an SSMState\(h\)"),
    ("state array", lambda: ssm.step(GOOD, X[0], np.zeros((C, N))), r"state is a ndarray, expected an SSMState\(h\)"),
    ("step x", lambda: ssm.step(GOOD, np.zeros(N), ssm.zero_state(C, N)), r"x has shape \(4,\), expected \(3,\)"),
    (
        "step h",
        lambda: ssm.step(GOOD, X[0], ssm.SSMState(np.zeros((N, C)))),
        r"h has shape \(4, 3\), expected \(3, 4\)",
    ),
    (
        "rounding",
        lambda: ssm.run(GOOD, X, rounding=0.1),
        "rounding is 0.1, expected a function such as reference.exact",
    ),
    ("conv rounding", lambda: ssm.convolution(GOOD, X, rounding="hand"), "rounding is 'hand', expected a function"),
    ("conv h0", lambda: ssm.convolution(GOOD, X, np.zeros((C, N))), "state0 is a ndarray, expected an SSMState"),
    (
        "dys",
        lambda: ssm.backward(GOOD, ssm.run(GOOD, X), np.zeros((3, C))),
        r"dys has shape \(3, 3\), expected \(2, 3\)",
    ),
    (
        "dstate",
        lambda: ssm.backward(GOOD, ssm.run(GOOD, X), np.zeros((2, C)), np.zeros((C, N))),
        "dstate is a ndarray, expected an SSMState",
    ),
]


@pytest.mark.parametrize(("what", "call", "message"), BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_bad_input_is_one_line(what, call, message):
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value), what
