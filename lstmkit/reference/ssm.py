"""The diagonal, linear time-invariant state-space model (S4D-style, real A), NumPy float64, traced.

One SSM per input channel c = 1..C, each with a state of N numbers (all arrays below are per channel):

    h'(τ) = A ⊙ h(τ) + B x(τ)       y(τ) = Σ_n C ⊙ h(τ) + D x(τ)       A, B, C (C, N); D, Δ (C,)

A learned step Δ turns the continuous system into a discrete one. Three discretisations, with ΔA = Δ ⊙ A:

    zoh         Ā = exp(ΔA)                      B̄ = (Ā − 1) / A ⊙ B     zero-order hold: exact when x is held
    bilinear    Ā = (1 + ΔA/2) / (1 − ΔA/2)      B̄ = Δ B / (1 − ΔA/2)    Tustin's trapezoid rule
    zoh-euler   Ā = exp(ΔA)                      B̄ = Δ B                 Mamba's choice: ZOH for A, Euler for B

Then the two views of the same outputs:

    recurrence   h_t = Ā ⊙ h_{t−1} + B̄ x_t            y_t = Σ_n C ⊙ h_t + D x_t
    convolution  K_k = Σ_n C ⊙ Ā^k ⊙ B̄  (k = 0..T−1)  y_t = Σ_{s≤t} K_{t−s} x_s + D x_t + Σ_n C ⊙ Ā^t ⊙ h_0

The convolution holds because Ā and B̄ do not depend on t (time-invariant); its last term is the initial
state's free response, zero from h_0 = 0. A must be negative (each state entry decays, the system is stable;
S4D keeps A's real part negative for the same reason) and Δ positive. `step`, `run` and `convolution` take a
rounding (hand mode rounds every intermediate to 0.1 and carries it forward).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference.checks import as_array, as_sequence, check_rounding, is_state, shape_text
from lstmkit.reference.rounding import Rounding, exact

DISCRETIZATIONS = ("zoh", "bilinear", "zoh-euler")


class SSMState(NamedTuple):
    h: np.ndarray
    """State (C, N): one row per channel."""


class SSMParams(NamedTuple):
    A: np.ndarray
    """(C, N), every entry negative: the continuous state's decay rates."""
    B: np.ndarray
    """(C, N): how the input enters the state."""
    C: np.ndarray
    """(C, N): how the state is read out."""
    D: np.ndarray
    """(C,): the skip connection, y gets D x directly."""
    delta: np.ndarray
    """(C,), positive: the step Δ that discretises each channel."""
    discretization: str = "zoh"
    """zoh | bilinear | zoh-euler."""

    @property
    def input_size(self) -> int:
        return np.shape(self.A)[0]

    @property
    def state_size(self) -> int:
        return np.shape(self.A)[1]

    @classmethod
    def random(cls, input_size: int, state_size: int, seed: int = 0, discretization: str = "zoh") -> SSMParams:
        """S4D-Real: A = −(1, 2, ..., N) in every channel, Δ log-uniform in [0.001, 0.1] (so Ā is close to 1),
        B = 1, C ~ N(0, 1/N), D ~ N(0, 1)."""
        rng = np.random.default_rng(seed)
        A = -np.tile(np.arange(1.0, state_size + 1), (input_size, 1))
        delta = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), input_size))
        C = rng.normal(scale=1 / np.sqrt(state_size), size=(input_size, state_size))
        return cls(A, np.ones_like(A), C, rng.normal(size=input_size), delta, discretization)

    def checked(self) -> SSMParams:
        """These parameters as float64 arrays, or ValueError naming the first bad one."""
        if self.discretization not in DISCRETIZATIONS:
            raise ValueError(f"discretization is {self.discretization!r}, expected one of {', '.join(DISCRETIZATIONS)}")
        shape = array_shape("A", self.A)
        if len(shape) != 2:
            raise ValueError(f"A has shape {shape_text(shape)}, expected (C, N) (channels, state size)")
        Cn, N = shape
        A = as_array("A", self.A, (Cn, N), "channels, state size")
        if (A >= 0).any():
            where = tuple(int(k) for k in np.argwhere(A >= 0)[0])
            raise ValueError(f"A has {A[where]:g} at index {where}, expected negative numbers (a decaying state)")
        delta = as_array("delta", self.delta, (Cn,), "one step per channel")
        if (delta <= 0).any():
            k = int(np.argmax(delta <= 0))
            raise ValueError(f"delta has {delta[k]:g} at index {k}, expected positive numbers (a time step)")
        return SSMParams(
            A=A,
            B=as_array("B", self.B, (Cn, N), "channels, state size"),
            C=as_array("C", self.C, (Cn, N), "channels, state size"),
            D=as_array("D", self.D, (Cn,), "channels"),
            delta=delta,
            discretization=self.discretization,
        )


class SSMStep(NamedTuple):
    """Every intermediate of one step (C channels, N state entries each)."""

    x: np.ndarray
    """x_t (C,)."""
    h_prev: np.ndarray
    """h_{t−1} (C, N)."""
    delta: np.ndarray
    """Δ (C,), the same at every step."""
    dA: np.ndarray
    """ΔA (C, N)."""
    A_bar: np.ndarray
    """Ā (C, N), by the discretisation."""
    B_bar: np.ndarray
    """B̄ (C, N), by the discretisation."""
    A_bar_h: np.ndarray
    """Ā ⊙ h_{t−1} (C, N): what the state keeps."""
    B_bar_x: np.ndarray
    """B̄ x_t (C, N): what the input writes."""
    h: np.ndarray
    """h_t = Ā ⊙ h_{t−1} + B̄ x_t (C, N)."""
    Ch: np.ndarray
    """Σ_n C ⊙ h_t (C,): the state read out."""
    Dx: np.ndarray
    """D ⊙ x_t (C,): the skip."""
    y: np.ndarray
    """y_t = Σ_n C ⊙ h_t + D x_t (C,)."""


def array_shape(name: str, value) -> tuple[int, ...]:
    """The shape `value` has as a float64 array, or one ValueError line naming `name` (not numbers, ragged rows)."""
    try:
        return np.asarray(value, dtype=np.float64).shape
    except (TypeError, ValueError):
        return as_array(name, value, ()).shape  # as_array raises, saying why these are not numbers (ragged rows)


def discretize(p: SSMParams, rounding: Rounding = exact) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ΔA, Ā, B̄), each (C, N), each rounded; `p` already checked."""
    r = rounding
    dA = r(p.delta[:, None] * p.A)
    if p.discretization == "bilinear":
        A_bar = r((1 + dA / 2) / (1 - dA / 2))
        B_bar = r(p.delta[:, None] * p.B / (1 - dA / 2))
    else:
        A_bar = r(np.exp(dA))
        B_bar = r((A_bar - 1) / p.A * p.B) if p.discretization == "zoh" else r(p.delta[:, None] * p.B)
    return dA, A_bar, B_bar


def zero_state(input_size: int, state_size: int) -> SSMState:
    return SSMState(np.zeros((input_size, state_size)))


def _as_state(name: str, state, C: int, N: int, label: str) -> SSMState:
    """`state` as an SSMState of a finite (C, N) h, or ValueError naming `name` (not a state) or `label` (its h)."""
    if not is_state(state, SSMState):
        raise ValueError(f"{name} is a {type(state).__name__}, expected an SSMState(h)")
    return SSMState(as_array(label, state.h, (C, N), "channels, state size"))


def _step(p: SSMParams, discrete, x: np.ndarray, h_prev: np.ndarray, rounding: Rounding) -> SSMStep:
    r = rounding
    dA, A_bar, B_bar = discrete
    A_bar_h = r(A_bar * h_prev)
    B_bar_x = r(B_bar * x[:, None])
    h = r(A_bar_h + B_bar_x)
    Ch = r(np.sum(p.C * h, axis=1))
    Dx = r(p.D * x)
    y = r(Ch + Dx)
    return SSMStep(x, h_prev, p.delta, dA, A_bar, B_bar, A_bar_h, B_bar_x, h, Ch, Dx, y)


def step(p: SSMParams, x, state: SSMState, rounding: Rounding = exact) -> SSMStep:
    """One step from `state`; checked as `run` checks its inputs."""
    p = p.checked()
    check_rounding(rounding)
    x = as_array("x", x, (p.input_size,), "channels")
    state = _as_state("state", state, p.input_size, p.state_size, "h")
    return _step(p, discretize(p, rounding), x, state.h, rounding)


def run(p: SSMParams, xs, state0: SSMState | None = None, rounding: Rounding = exact) -> list[SSMStep]:
    """Run the recurrence over xs (T, C) from state0 (zeros by default); returns the T step traces."""
    p = p.checked()
    check_rounding(rounding)
    C, N = p.input_size, p.state_size
    xs = as_sequence("inputs", xs, C, "time steps, channels")
    h = zero_state(C, N).h if state0 is None else _as_state("state0", state0, C, N, "h0").h
    discrete = discretize(p, rounding)
    steps = []
    for x in xs:
        steps.append(_step(p, discrete, x, h, rounding))
        h = steps[-1].h
    return steps


class Convolution(NamedTuple):
    """The convolution view of a whole sequence (T steps, C channels)."""

    powers: np.ndarray
    """Ā^k (T, C, N), k = 0..T−1."""
    kernel: np.ndarray
    """K_k = Σ_n C ⊙ Ā^k ⊙ B̄ (T, C)."""
    toeplitz: np.ndarray
    """(C, T, T): row t holds K_{t−s} for s ≤ t, zero above the diagonal; y = toeplitz · x per channel."""
    free: np.ndarray
    """Σ_n C ⊙ Ā^t ⊙ h_0 (T, C): what the initial state alone contributes to y_t (t = 1..T)."""
    Kx: np.ndarray
    """Σ_{s≤t} K_{t−s} x_s (T, C)."""
    y: np.ndarray
    """Kx + D x + free (T, C): equal to the recurrence's outputs."""


def convolution(p: SSMParams, xs, state0: SSMState | None = None, rounding: Rounding = exact) -> Convolution:
    """All outputs at once, from the kernel; in exact mode equal to `run`'s y to rounding error."""
    p = p.checked()
    check_rounding(rounding)
    C, N = p.input_size, p.state_size
    xs = as_sequence("inputs", xs, C, "time steps, channels")
    h0 = zero_state(C, N).h if state0 is None else _as_state("state0", state0, C, N, "h0").h
    T, r = len(xs), rounding
    _, A_bar, B_bar = discretize(p, rounding)
    powers = np.empty((T, C, N))
    powers[0] = 1.0
    for k in range(1, T):
        powers[k] = r(powers[k - 1] * A_bar)
    kernel = r(np.einsum("cn,kcn,cn->kc", p.C, powers, B_bar))
    lag = np.arange(T)[:, None] - np.arange(T)[None, :]  # t − s
    toeplitz = np.where(lag >= 0, kernel[np.clip(lag, 0, None)].transpose(2, 0, 1), 0.0)
    free = r(np.einsum("cn,tcn,cn->tc", p.C, powers * A_bar, h0))  # Ā^t for t = 1..T
    Kx = r(np.einsum("cts,sc->tc", toeplitz, xs))
    return Convolution(powers, kernel, toeplitz, free, Kx, r(Kx + p.D * xs + free))


class SSMGrads(NamedTuple):
    params: SSMParams
    """∂L/∂(A, B, C, D, Δ); the discretisation is carried over."""
    xs: np.ndarray
    """∂L/∂x_t (T, C)."""
    state0: SSMState
    """∂L/∂h_0 (C, N)."""


def backward(p: SSMParams, steps: list[SSMStep], dys, dstate: SSMState | None = None) -> SSMGrads:
    """Backpropagation through time over exact-mode traces of `run`; L = Σ_t dys_t · y_t (+ dstate · h_T).

    dh_t = dy_t C + Ā ⊙ dh_{t+1}      dĀ += dh_t ⊙ h_{t−1}     dB̄ += dh_t x_t     dx_t = D dy_t + Σ_n B̄ ⊙ dh_t
    dC += dy_t h_t      dD += dy_t x_t,   then (dĀ, dB̄) -> (dA, dB, dΔ) through the discretisation.
    """
    p = p.checked()
    C, N = p.input_size, p.state_size
    dys = as_array("dys", dys, (len(steps), C), "time steps, channels")
    dh_next = np.zeros((C, N)) if dstate is None else _as_state("dstate", dstate, C, N, "dstate.h").h
    A_bar, B_bar = steps[0].A_bar, steps[0].B_bar
    dA_bar, dB_bar, dC, dD = np.zeros((C, N)), np.zeros((C, N)), np.zeros((C, N)), np.zeros(C)
    dxs = np.zeros((len(steps), C))
    for t in reversed(range(len(steps))):
        s = steps[t]
        dh = dys[t][:, None] * p.C + dh_next
        dC += dys[t][:, None] * s.h
        dD += dys[t] * s.x
        dA_bar += dh * s.h_prev
        dB_bar += dh * s.x[:, None]
        dxs[t] = p.D * dys[t] + np.sum(B_bar * dh, axis=1)
        dh_next = A_bar * dh
    dA, dB, ddelta = _discretize_backward(p, dA_bar, dB_bar)
    grads = SSMParams(dA, dB, dC, dD, ddelta, p.discretization)
    return SSMGrads(grads, dxs, SSMState(dh_next))


def _discretize_backward(p: SSMParams, dA_bar: np.ndarray, dB_bar: np.ndarray):
    """(dĀ, dB̄) -> (dA, dB, dΔ), the chain rule through each discretisation's formulas (u = ΔA).

    zoh:       Ā = e^u, B̄ = (e^u − 1)/A B:  ∂B̄/∂A = B (u e^u − e^u + 1)/A², ∂B̄/∂Δ = B e^u, ∂B̄/∂B = (e^u − 1)/A
    bilinear:  Ā = (1 + u/2)/(1 − u/2), B̄ = Δ B/(1 − u/2):  ∂Ā/∂u = 1/(1 − u/2)², ∂B̄/∂u = Δ B / (2 (1 − u/2)²)
    zoh-euler: Ā = e^u, B̄ = Δ B
    """
    delta, A, B = p.delta[:, None], p.A, p.B
    u = delta * A
    if p.discretization == "bilinear":
        w = 1 - u / 2
        du = dA_bar / w / w + dB_bar * delta * B / (2 * w) / w  # / w / w: w² overflows when ΔA is huge
        dB = dB_bar * delta / w
        ddelta_direct = dB_bar * B / w
        dA = du * delta
    else:
        e = np.exp(u)
        du = dA_bar * e
        if p.discretization == "zoh":
            dB = dB_bar * (e - 1) / A
            dA = du * delta + dB_bar * B * (u * e - e + 1) / A / A  # / A / A: A² overflows for a huge A
            ddelta_direct = dB_bar * B * e  # ∂B̄/∂Δ = B e^u
        else:
            dB = dB_bar * delta
            dA = du * delta
            ddelta_direct = dB_bar * B
    ddelta = np.sum(du * A + ddelta_direct, axis=1)
    return dA, dB, ddelta
