"""Why gating matters: how much gradient reaches each earlier input, for a tanh RNN and an LSTM.

For one random input sequence x_1..x_T and a loss on the last hidden state, L = v · h_T (v a random
unit vector), the reference BPTT gives ∂L/∂x_t for every t. We report

    ratio(lag) = ‖∂L/∂x_{T-lag}‖ / ‖∂L/∂x_T‖

In a tanh RNN every step back multiplies the gradient by W_hhᵀ diag(1 - h²), so the ratio shrinks
geometrically (the vanishing gradient of the seeds). In an LSTM the memory path multiplies by the
forget gate f only; with PyTorch's default init f ≈ σ(0) = 0.5 and the gradient vanishes about as fast,
but a forget-gate bias of 1-3 keeps f near 1 and the gradient alive over long lags.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference import lstm, rnn

MAX_LENGTH = 10_000
"""The reference keeps every intermediate of every step: 10,000 steps of 512 units is about 0.6 GB per curve."""
MAX_SIZE = 512
"""Hidden and input sizes: the reference is NumPy, one step at a time (a matrix-vector product per gate)."""


class GradientCurve(NamedTuple):
    name: str
    """e.g. 'LSTM, forget bias 2'."""
    ratios: np.ndarray
    """ratio[lag] for lag = 0..T-1 (ratio[0] = 1)."""


def gradient_by_lag(
    length: int = 100, hidden_size: int = 32, input_size: int = 8, forget_biases=(0.0, 2.0), seed: int = 0
) -> list[GradientCurve]:
    """The tanh RNN's curve and one LSTM curve per forget-gate bias, on the same input sequence."""
    _check_size("length", length, 2, MAX_LENGTH)
    _check_size("hidden_size", hidden_size, 1, MAX_SIZE)
    _check_size("input_size", input_size, 1, MAX_SIZE)
    _check_size("seed", seed, 0, 2**63 - 1)
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
    return curves


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
