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


class GradientCurve(NamedTuple):
    name: str
    """e.g. 'LSTM, forget bias 2'."""
    ratios: np.ndarray
    """ratio[lag] for lag = 0..T-1 (ratio[0] = 1)."""


def gradient_by_lag(
    length: int = 100, hidden_size: int = 32, input_size: int = 8, forget_biases=(0.0, 2.0), seed: int = 0
) -> list[GradientCurve]:
    """The tanh RNN's curve and one LSTM curve per forget-gate bias, on the same input sequence."""
    if length < 2:
        raise ValueError(f"length is {length}, expected at least 2 time steps")
    if hidden_size < 1 or input_size < 1:
        raise ValueError(f"hidden size {hidden_size} and input size {input_size} must be at least 1")
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


def _ratios(dxs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(dxs, axis=1)[::-1]  # index = lag
    return norms / norms[0]


def default_lags(length: int) -> list[int]:
    """0, 1, 2, 5, then every 10 steps, and the longest lag T - 1."""
    lags = [k for k in (0, 1, 2, 5) if k < length] + list(range(10, length, 10))
    return sorted(set([*lags, length - 1]))
