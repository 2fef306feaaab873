"""Why gating matters: how much gradient reaches each earlier input, for a tanh RNN, LSTMs, a diagonal SSM and Mamba.

Every model reads the same random input sequence x_1..x_T (T, input_size) and is scored by a loss on its last
output, L = v · y_T, v a random unit vector as wide as that output: the RNN's and LSTM's y is h (hidden_size),
the SSM's and Mamba's y has C = input_size channels (state size N per channel). The reference BPTT gives
∂L/∂x_t for every t. We report

    ratio(lag) = ‖∂L/∂x_{T-lag}‖ / ‖∂L/∂x_T‖

In a tanh RNN every step back multiplies the gradient by W_hhᵀ diag(1 - h²), so the ratio shrinks
geometrically (the vanishing gradient of the seeds). In an LSTM the memory path multiplies by the
forget gate f only; with PyTorch's default init f ≈ σ(0) = 0.5 and the gradient vanishes about as fast,
but a forget-gate bias of 1-3 keeps f near 1 and the gradient alive over long lags.

The diagonal SSM (S4D-Real init, zoh) is linear and time-invariant: from h_0 = 0, y_T = Σ_lag K_lag ⊙ x_{T-lag}
with the fixed kernel K_lag = Σ_n C ⊙ Ā^lag ⊙ B̄ (C,), so ∂L/∂x_{T-lag} = v ⊙ K_lag and

    ratio(lag) = ‖v ⊙ K_lag‖ / ‖v ⊙ K_0‖        the same for every input sequence

Δ in [0.001, 0.1] makes Ā = exp(ΔA) ≈ 1 − Δ|A| close to 1: each step back keeps almost all of the kernel, so the
ratio decays slowly. Mamba picks Δ_t = softplus(W_Δ x_t + b_Δ) per step, so the decay from x_s to y_T,
exp(A Σ_{k=s+1..T} Δ_k), and the selection's own path (Δ_t, B_t = W_B x_t, C_t = W_C x_t) depend on the
inputs: its curve changes with the sequence (no gate here).

Both state-space cells use D = 0: the skip D ⊙ x_t touches only the lag-0 gradient, which would rescale the
whole curve and hide how far back the state carries gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference import lstm, mamba, rnn, ssm

MAX_LENGTH = 10_000
"""The reference keeps every intermediate of every step: 10,000 steps of 512 units is about 0.6 GB per curve."""
MAX_SIZE = 512
"""Hidden, input and state sizes: the reference is NumPy, one step at a time (a matrix-vector product per gate)."""
MAX_STATE_CELLS = 20_000_000
"""length × input_size × state_size: Mamba's trace keeps six (C, N) arrays per step, about 1 GB at this bound."""
SSM_NAME = "diagonal SSM (S4D init)"
MAMBA_NAME = "Mamba (S6)"


class GradientCurve(NamedTuple):
    name: str
    """e.g. 'LSTM, forget bias 2'."""
    ratios: np.ndarray
    """ratio[lag] for lag = 0..T-1 (ratio[0] = 1)."""


def gradient_by_lag(
    length: int = 100,
    hidden_size: int = 32,
    input_size: int = 8,
    forget_biases=(0.0, 2.0),
    seed: int = 0,
    state_size: int = 16,
) -> list[GradientCurve]:
    """The tanh RNN's curve, one LSTM curve per forget-gate bias, then the diagonal SSM's and Mamba's, on the
    same input sequence."""
    _check_sizes(length, hidden_size, input_size, seed, state_size)
    for bias in forget_biases:
        if not np.isfinite(bias):
            raise ValueError(f"forget bias is {bias}, expected a finite number")
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(length, input_size))
    v = rng.normal(size=hidden_size)
    dhs = np.zeros((length, hidden_size))
    dhs[-1] = v / np.linalg.norm(v)  # L = v · h_T

    p = rnn.RNNParams.random(input_size, hidden_size, seed=seed + 1)
    curves = [GradientCurve("tanh RNN", _ratios(rnn.backward(p, rnn.run(p, xs), dhs).xs))]
    for bias in forget_biases:
        q = lstm.LSTMParams.random(input_size, hidden_size, seed=seed + 1, forget_bias=float(bias))
        dxs = lstm.backward(q, lstm.run(q, xs), dhs).xs
        curves.append(GradientCurve(f"LSTM, forget bias {bias:g}", _ratios(dxs)))
    w = rng.normal(size=input_size)  # drawn after v: the RNN's and LSTMs' draws do not change
    return [*curves, *state_space_curves(xs, w / np.linalg.norm(w), state_size, seed)]


def state_space_curves(xs: np.ndarray, v: np.ndarray, state_size: int, seed: int) -> list[GradientCurve]:
    """The diagonal SSM's and Mamba's curves for L = v · y_T (v of width C, xs (T, C)), D = 0 in both."""
    T, C = xs.shape
    dys = np.zeros((T, C))
    dys[-1] = v
    p = ssm.SSMParams.random(C, state_size, seed=seed + 1)._replace(D=np.zeros(C))
    q = mamba.MambaParams.random(C, state_size, seed=seed + 1)._replace(D=np.zeros(C))
    return [
        GradientCurve(SSM_NAME, _ratios(ssm.backward(p, ssm.run(p, xs), dys).xs)),
        GradientCurve(MAMBA_NAME, _ratios(mamba.backward(q, mamba.run(q, xs), dys).xs)),
    ]


def _check_sizes(length: int, hidden_size: int, input_size: int, seed: int, state_size: int) -> None:
    _check_size("length", length, 2, MAX_LENGTH)
    _check_size("hidden_size", hidden_size, 1, MAX_SIZE)
    _check_size("input_size", input_size, 1, MAX_SIZE)
    _check_size("seed", seed, 0, 2**63 - 1)
    _check_size("state_size", state_size, 1, MAX_SIZE)
    cells = length * input_size * state_size
    if cells > MAX_STATE_CELLS:
        raise ValueError(
            f"length × input_size × state_size is {cells:,}, expected at most {MAX_STATE_CELLS:,}"
            " (the SSM and Mamba traces keep every step's state)"
        )


def _check_size(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} is {value!r}, expected an integer from {low} to {high:,}")


def _ratios(dxs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(dxs, axis=1)[::-1]  # index = lag
    return norms / norms[0]


def default_lags(length: int) -> list[int]:
    """0, 1, 2, 5, then every 10 steps, and the longest lag T - 1."""
    lags = [k for k in (0, 1, 2, 5) if k < length] + list(range(10, length, 10))
    return sorted(set([*lags, length - 1]))
