"""The rows a walkthrough stage is made of: a labelled value and, when it is computed from other numbers,
the equation's terms (W_f · [h0, X1] + b_f), which the web page draws as grids."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Term(NamedTuple):
    op: str
    """The operator before this term: '' (first), '·' (matrix product), '⊙' (elementwise), '+', '/'."""
    label: str
    value: np.ndarray


def eq(*parts) -> tuple[Term, ...]:
    """eq(("", "W_f", W), ("·", "[h0, X1]", hx)) -> the terms of W_f · [h0, X1]."""
    return tuple(Term(op, label, np.asarray(value)) for op, label, value in parts)


class Row(NamedTuple):
    label: str
    """What the value is, e.g. 'Forget gate f1'."""
    formula: str
    """How it is computed, e.g. 'σ(pre_f)'."""
    value: np.ndarray
    """The number(s) shown (a vector, or a matrix in [1] Given)."""
    source: np.ndarray | None = None
    """For a squashing step, the value it came from: shown as 'source → value' like the seeds."""
    terms: tuple[Term, ...] = ()
    """For a value computed from others, the equation's right-hand side, e.g. W_f · [h0, X1] + b_f: the web
    page draws each term as a grid (1-D arrays as columns, like the seeds' figures)."""


def affine(w: dict[str, np.ndarray], gate: str, label: str, vector: np.ndarray) -> tuple[Term, ...]:
    """W_gate · vector + b_gate."""
    return eq(("", f"W_{gate}", w[f"W_{gate}"]), ("·", label, vector), ("+", f"b_{gate}", w[f"b_{gate}"]))
