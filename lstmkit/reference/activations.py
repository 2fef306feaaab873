"""The two squashing functions of every recurrent cell, and the slopes backward needs.

σ(a) = 1 / (1 + e^{-a}) ∈ (0, 1) makes gates; tanh(a) ∈ (-1, 1) makes candidates and outputs.
Their derivatives are written in terms of their outputs: σ' = σ(1 - σ), tanh' = 1 - tanh².
"""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a), computed without overflow for large |a| (e^{-a} never exceeds 1)."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh(a: np.ndarray) -> np.ndarray:
    return np.tanh(a)


def dsigmoid_from_output(s: np.ndarray) -> np.ndarray:
    """dσ/da at the point where σ(a) = s."""
    return s * (1.0 - s)


def dtanh_from_output(t: np.ndarray) -> np.ndarray:
    """d tanh/da at the point where tanh(a) = t."""
    return 1.0 - t * t
