"""Gradient checking by central differences, for the reference cells' manual backward passes.

    ∂L/∂θ_k ≈ (L(θ + ε e_k) - L(θ - ε e_k)) / 2ε        error O(ε²)

In float64 with ε = 1e-6 this agrees with an exact gradient to about 1e-9 relative error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(loss: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """∂loss/∂array by central differences, perturbing `array` in place (restored afterwards)."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        saved = flat[k]
        flat[k] = saved + eps
        plus = loss()
        flat[k] = saved - eps
        minus = loss()
        flat[k] = saved
        gflat[k] = (plus - minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """‖a - n‖ / (‖a‖ + ‖n‖), and 0 when both are exactly zero."""
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if scale == 0 else float(np.linalg.norm(analytic - numeric) / scale)
