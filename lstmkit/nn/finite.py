"""One check for non-finite values, shared by the xLSTM's cells and forms (sLSTM, the mLSTM's three forms and step).

    check_finite("x", x)                 every element finite
    check_finite_or_neg_inf("f", f)      -inf allowed too: the mLSTM's forget gate f̃ = -inf ("forget everything",
                                         the same as a reset at that step) and a stabilizer m = -inf (an empty memory)

Cost: one reduction per tensor. A finite sum proves every element finite (NaN, +inf and -inf each make the sum
non-finite); only when the sum is not finite (a bad value, or finite values whose sum overflows) does the exact
element-wise test run, and its error names the tensor, the value and the index of the first bad element:

    ValueError: i contains +inf at index (0, 1, 5), expected finite values
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_finite(name: str, x: Tensor) -> None:
    """Raise ValueError naming `name` unless every element of x is finite."""
    if _sum_is_finite(x):
        return
    _raise_at(name, x, ~torch.isfinite(x), "finite values")


def check_finite_or_neg_inf(name: str, x: Tensor) -> None:
    """Raise ValueError naming `name` unless every element of x is finite or -inf."""
    if _sum_is_finite(x):
        return
    _raise_at(name, x, torch.isnan(x) | torch.isposinf(x), "finite values or -inf")


def _sum_is_finite(x: Tensor) -> bool:
    return not x.is_floating_point() or bool(torch.isfinite(x.detach().sum()))


def _raise_at(name: str, x: Tensor, bad: Tensor, expected: str) -> None:
    found = torch.nonzero(bad)
    if found.shape[0] == 0:
        return  # finite values whose sum overflowed
    index = tuple(found[0].tolist())
    value = float(x.detach()[index])
    what = "NaN" if value != value else ("+inf" if value > 0 else "-inf")
    raise ValueError(f"{name} contains {what} at index {index}, expected {expected}")
