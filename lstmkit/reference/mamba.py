"""Mamba's selective state-space model (S6; Gu & Dao 2023, Algorithm 2), NumPy float64, unbatched, traced.

The LTI SSM (`ssm`) with Δ, B and C made functions of the input. C channels, a state of N numbers per channel:

    Δ_t = softplus(W_Δ x_t + b_Δ)          (C,)     one step per channel, chosen by the input
    B_t = W_B x_t      C_t = W_C x_t        (N,)     shared by the channels
    A = −exp(A_log)                         (C, N)   fixed, negative
    Ā_t = exp(Δ_t ⊙ A)                      (C, N)   ZOH for A
    B̄_t x_t = Δ_t B_t x_t                   (C, N)   Euler for B: entry (c, n) is Δ_t[c] B_t[n] x_t[c]
    h_t = Ā_t ⊙ h_{t−1} + B̄_t x_t           (C, N)
    y_t = h_t C_t + D ⊙ x_t                 (C,)     h_t C_t sums over n
    optional gate z_t (C,):  out_t = y_t ⊙ SiLU(z_t),  SiLU(z) = z σ(z)

Selection: a large Δ_t makes Ā_t ≈ 0 and B̄_t large, so the state is overwritten by x_t (the LSTM's forget
gate closed and input gate open); a small Δ_t makes Ā_t ≈ 1 and B̄_t ≈ 0, so the state is kept and x_t ignored.

The same outputs at once (the "matrix view"; Mamba-2 calls it the state-space dual): for each channel c,

    M_ts = Σ_n C_t[n] exp(Σ_{k=s+1..t} Δ_k A[n]) B_s[n] Δ_s        s ≤ t, zero above the diagonal
    y_t = Σ_s M_ts x_s + D x_t + Σ_n C_t[n] exp(Σ_{k=1..t} Δ_k A[n]) h_0[n]

A is stored here as A itself (the spec's field), `from_A_log` converts. The input projections belong to
Mamba's layer in PyTorch; here they are the smallest ones the cell needs (W_Δ is C × C; Mamba's layer
factors it through a low rank and feeds the projections from a causal convolution).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference.activations import sigmoid
from lstmkit.reference.checks import as_array, as_sequence, check_rounding, is_state, shape_text
from lstmkit.reference.rounding import Rounding, exact
from lstmkit.reference.ssm import array_shape


def softplus(a: np.ndarray) -> np.ndarray:
    """log(1 + e^a), without overflow for large a."""
    return np.logaddexp(0.0, a)


def silu(z: np.ndarray) -> np.ndarray:
    """z σ(z)."""
    return z * sigmoid(z)


class MambaState(NamedTuple):
    h: np.ndarray
    """State (C, N)."""


class MambaParams(NamedTuple):
    A: np.ndarray
    """(C, N), negative."""
    W_delta: np.ndarray
    """(C, C): Δ_t = softplus(W_Δ x_t + b_Δ)."""
    b_delta: np.ndarray
    """(C,)."""
    W_B: np.ndarray
    """(N, C): B_t = W_B x_t."""
    W_C: np.ndarray
    """(N, C): C_t = W_C x_t."""
    D: np.ndarray
    """(C,): the skip."""

    @property
    def input_size(self) -> int:
        return np.shape(self.A)[0]

    @property
    def state_size(self) -> int:
        return np.shape(self.A)[1]

    @classmethod
    def random(cls, input_size: int, state_size: int, seed: int = 0) -> MambaParams:
        """Mamba's initialisation: A = −(1, ..., N) per channel (S4D-Real), D = 1, b_Δ the inverse softplus of a
        Δ log-uniform in [0.001, 0.1], the projections U(±1/√C) as `torch.nn.Linear`."""
        rng = np.random.default_rng(seed)
        C, N = input_size, state_size
        k = 1 / np.sqrt(C)
        dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), C))
        return cls(
            A=-np.tile(np.arange(1.0, N + 1), (C, 1)),
            W_delta=rng.uniform(-k, k, (C, C)),
            b_delta=dt + np.log(-np.expm1(-dt)),  # softplus(b) = dt
            W_B=rng.uniform(-k, k, (N, C)),
            W_C=rng.uniform(-k, k, (N, C)),
            D=np.ones(C),
        )

    def checked(self) -> MambaParams:
        """These parameters as float64 arrays, or ValueError naming the first bad one."""
        shape = array_shape("A", self.A)
        if len(shape) != 2:
            raise ValueError(f"A has shape {shape_text(shape)}, expected (C, N) (channels, state size)")
        C, N = shape
        A = as_array("A", self.A, (C, N), "channels, state size")
        if (A >= 0).any():
            where = tuple(int(k) for k in np.argwhere(A >= 0)[0])
            raise ValueError(f"A has {A[where]:g} at index {where}, expected negative numbers (A = -exp(A_log))")
        return MambaParams(
            A=A,
            W_delta=as_array("W_delta", self.W_delta, (C, C), "channels, channels"),
            b_delta=as_array("b_delta", self.b_delta, (C,), "channels"),
            W_B=as_array("W_B", self.W_B, (N, C), "state size, channels"),
            W_C=as_array("W_C", self.W_C, (N, C), "state size, channels"),
            D=as_array("D", self.D, (C,), "channels"),
        )


def from_A_log(A_log: np.ndarray) -> np.ndarray:
    """A = −exp(A_log), as Mamba stores it (A_log is what the checkpoint holds)."""
    return -np.exp(np.asarray(A_log, dtype=np.float64))


class MambaStep(NamedTuple):
    """Every intermediate of one step (C channels, N state entries)."""

    x: np.ndarray
    """x_t (C,)."""
    h_prev: np.ndarray
    """h_{t−1} (C, N)."""
    pre_delta: np.ndarray
    """W_Δ x_t + b_Δ (C,)."""
    delta: np.ndarray
    """Δ_t = softplus(pre_delta) (C,)."""
    B: np.ndarray
    """B_t = W_B x_t (N,)."""
    C: np.ndarray
    """C_t = W_C x_t (N,)."""
    dA: np.ndarray
    """Δ_t ⊙ A (C, N)."""
    A_bar: np.ndarray
    """Ā_t = exp(Δ_t A) (C, N)."""
    B_bar: np.ndarray
    """B̄_t = Δ_t B_tᵀ (C, N)."""
    B_bar_x: np.ndarray
    """B̄_t x_t (C, N)."""
    A_bar_h: np.ndarray
    """Ā_t ⊙ h_{t−1} (C, N)."""
    h: np.ndarray
    """h_t (C, N)."""
    y_ssm: np.ndarray
    """h_t C_t (C,)."""
    Dx: np.ndarray
    """D ⊙ x_t (C,)."""
    y: np.ndarray
    """y_t = h_t C_t + D ⊙ x_t (C,): the selective scan's output."""
    gate: np.ndarray | None = None
    """z_t (C,), when gated."""
    silu_gate: np.ndarray | None = None
    """SiLU(z_t) (C,), when gated."""
    y_gated: np.ndarray | None = None
    """y_t ⊙ SiLU(z_t) (C,), when gated: the cell's output."""

    @property
    def out(self) -> np.ndarray:
        """The cell's output: y_gated when gated, else y."""
        return self.y if self.y_gated is None else self.y_gated


def zero_state(input_size: int, state_size: int) -> MambaState:
    return MambaState(np.zeros((input_size, state_size)))


def _as_state(name: str, state, C: int, N: int, label: str) -> MambaState:
    """`state` as a MambaState of a finite (C, N) h, or ValueError naming `name` (not a state) or `label` (its h)."""
    if not is_state(state, MambaState):
        raise ValueError(f"{name} is a {type(state).__name__}, expected a MambaState(h)")
    return MambaState(as_array(label, state.h, (C, N), "channels, state size"))


def _step(p: MambaParams, x: np.ndarray, h_prev: np.ndarray, z, rounding: Rounding) -> MambaStep:
    r = rounding
    pre_delta = r(p.W_delta @ x + p.b_delta)
    delta = r(softplus(pre_delta))
    B, C = r(p.W_B @ x), r(p.W_C @ x)
    dA = r(delta[:, None] * p.A)
    A_bar = r(np.exp(dA))
    B_bar = r(delta[:, None] * B[None, :])
    B_bar_x = r(B_bar * x[:, None])
    A_bar_h = r(A_bar * h_prev)
    h = r(A_bar_h + B_bar_x)
    y_ssm = r(h @ C)
    Dx = r(p.D * x)
    y = r(y_ssm + Dx)
    step = MambaStep(x, h_prev, pre_delta, delta, B, C, dA, A_bar, B_bar, B_bar_x, A_bar_h, h, y_ssm, Dx, y)
    if z is None:
        return step
    silu_gate = r(silu(z))
    return step._replace(gate=z, silu_gate=silu_gate, y_gated=r(y * silu_gate))


def step(p: MambaParams, x, state: MambaState, rounding: Rounding = exact, gate=None) -> MambaStep:
    """One step from `state`; `gate` is z_t (C,) or None. Checked as `run` checks its inputs."""
    p = p.checked()
    check_rounding(rounding)
    x = as_array("x", x, (p.input_size,), "channels")
    z = None if gate is None else as_array("gate", gate, (p.input_size,), "channels")
    return _step(p, x, _as_state("state", state, p.input_size, p.state_size, "h").h, z, rounding)


def run(p: MambaParams, xs, state0: MambaState | None = None, rounding: Rounding = exact, gate=None) -> list[MambaStep]:
    """Run over xs (T, C) from state0 (zeros by default); `gate` is z (T, C) or None (no gate)."""
    p = p.checked()
    check_rounding(rounding)
    C, N = p.input_size, p.state_size
    xs = as_sequence("inputs", xs, C, "time steps, channels")
    zs = [None] * len(xs) if gate is None else as_array("gate", gate, xs.shape, "time steps as inputs, channels")
    h = zero_state(C, N).h if state0 is None else _as_state("state0", state0, C, N, "h0").h
    steps = []
    for x, z in zip(xs, zs, strict=True):
        steps.append(_step(p, x, h, z, rounding))
        h = steps[-1].h
    return steps


class MatrixView(NamedTuple):
    """All outputs at once, from the traces' Δ_t, B_t, C_t (T steps, C channels)."""

    decay: np.ndarray
    """(C, N, T, T): exp(Σ_{k=s+1..t} Δ_k A[n]) for s ≤ t, zero above the diagonal."""
    matrix: np.ndarray
    """M (C, T, T): M_ts = Σ_n C_t[n] decay_ts[n] B_s[n] Δ_s."""
    free: np.ndarray
    """(T, C): Σ_n C_t[n] exp(Σ_{k=1..t} Δ_k A[n]) h_0[n], the initial state's share of y_t."""
    Mx: np.ndarray
    """Σ_s M_ts x_s (T, C)."""
    y: np.ndarray
    """Mx + D x + free (T, C): equal to the recurrence's y."""


def matrix_view(p: MambaParams, steps: list[MambaStep], rounding: Rounding = exact) -> MatrixView:
    """The masked decay matrix of a run, built from its traces (their Δ, B, C); equal to the recurrence's y."""
    p = p.checked()
    check_rounding(rounding)
    r = rounding
    T = len(steps)
    delta = np.array([s.delta for s in steps])  # (T, C)
    Bs, Cs = np.array([s.B for s in steps]), np.array([s.C for s in steps])  # (T, N)
    xs = np.array([s.x for s in steps])
    dA = (delta[:, :, None] * p.A[None]).transpose(1, 2, 0)  # (C, N, T): Δ_k A
    below = np.arange(T)[:, None] >= np.arange(T)[None, :]  # t >= s
    after = np.arange(T)[:, None] > np.arange(T)[None, :]  # k > s
    # Σ_{k=s+1..t} summed over the segment itself, not as a difference of two running sums: after one huge Δ
    # those cancel (losing digits, or -inf - -inf = NaN). Mamba-2's segsum does the same.
    segment = np.cumsum(np.where(after, dA[..., :, None], 0.0), axis=-2)  # (C, N, t, s)
    decay = r(np.where(below, np.exp(segment), 0.0))
    cum = np.cumsum(dA, axis=-1).transpose(2, 0, 1)  # (T, C, N): Σ_{k=1..t} Δ_k A
    matrix = r(np.einsum("tn,cnts,sn,sc->cts", Cs, decay, Bs, delta))
    free = r(np.einsum("tn,tcn,cn->tc", Cs, np.exp(cum), steps[0].h_prev))
    Mx = r(np.einsum("cts,sc->tc", matrix, xs))
    return MatrixView(decay, matrix, free, Mx, r(Mx + p.D * xs + free))


class MambaGrads(NamedTuple):
    params: MambaParams
    """∂L/∂(A, W_Δ, b_Δ, W_B, W_C, D)."""
    xs: np.ndarray
    """∂L/∂x_t (T, C)."""
    gate: np.ndarray | None
    """∂L/∂z_t (T, C), or None without a gate."""
    state0: MambaState
    """∂L/∂h_0 (C, N)."""


def a_log_gradient(grads: MambaGrads, p: MambaParams) -> np.ndarray:
    """∂L/∂A_log = ∂L/∂A ⊙ A, since dA/dA_log = −exp(A_log) = A."""
    return grads.params.A * np.asarray(p.A, dtype=np.float64)


def backward(p: MambaParams, steps: list[MambaStep], douts, dstate: MambaState | None = None) -> MambaGrads:
    """Backpropagation through time over exact-mode traces; L = Σ_t douts_t · out_t (+ dstate · h_T).

    gate: dy = dout ⊙ SiLU(z), dz = dout ⊙ y ⊙ σ(z)(1 + z(1 − σ(z)))
    dh = dy C_tᵀ + Ā_{t+1} ⊙ dh_{t+1}    dC_t = Σ_c dy_c h_c    dĀ = dh ⊙ h_{t−1}    dB̄ = dh x_t
    dΔ = Σ_n (dĀ ⊙ Ā ⊙ A + dB̄ ⊙ B)    dA += dĀ ⊙ Ā Δ    dB_t = Σ_c dB̄ Δ    dpre = dΔ σ(pre)
    dW_• += d• x_tᵀ    dx_t = D dy + Σ_n dh ⊙ B̄ + W_Δᵀ dpre + W_Bᵀ dB_t + W_Cᵀ dC_t
    """
    p = p.checked()
    C, N = p.input_size, p.state_size
    douts = as_array("douts", douts, (len(steps), C), "time steps, channels")
    grads = [np.zeros_like(a) for a in p]
    dA, dW_delta, db_delta, dW_B, dW_C, dD = grads
    dxs = np.zeros((len(steps), C))
    gated = steps[0].gate is not None
    dzs = np.zeros((len(steps), C)) if gated else None
    dh_next = np.zeros((C, N)) if dstate is None else _as_state("dstate", dstate, C, N, "dstate.h").h
    for t in reversed(range(len(steps))):
        s = steps[t]
        dy = douts[t]
        if gated:
            sig = sigmoid(s.gate)
            dzs[t] = douts[t] * s.y * sig * (1 + s.gate * (1 - sig))
            dy = douts[t] * s.silu_gate
        dh = dy[:, None] * s.C[None, :] + dh_next
        dC_t = dy @ s.h
        dA_bar = dh * s.h_prev
        dB_bar = dh * s.x[:, None]
        ddelta = np.sum(dA_bar * s.A_bar * p.A + dB_bar * s.B[None, :], axis=1)
        dA += dA_bar * s.A_bar * s.delta[:, None]
        dB_t = s.delta @ dB_bar
        dpre = ddelta * sigmoid(s.pre_delta)
        dW_delta += np.outer(dpre, s.x)
        db_delta += dpre
        dW_B += np.outer(dB_t, s.x)
        dW_C += np.outer(dC_t, s.x)
        dD += dy * s.x
        dxs[t] = p.D * dy + np.sum(dh * s.B_bar, axis=1) + p.W_delta.T @ dpre + p.W_B.T @ dB_t + p.W_C.T @ dC_t
        dh_next = s.A_bar * dh
    return MambaGrads(MambaParams(*grads), dxs, dzs, MambaState(dh_next))
