"""Which form runs a scan: one entry point per scan, the form by name; every form gives the same values.

    y, state = selective_scan(x, delta, A, B, C, D, z, state, reset=None, valid=None, form="auto")   Mamba
    y, state = ssd_scan(x, delta, A, B, C, D, z, state, reset=None, valid=None, form="auto")         Mamba-2

Mamba's forms: "recurrent" (`recurrent.py`, the definition, one step at a time), "parallel" (`parallel.py`,
an associative scan in torch, any device and dtype), "cpp" (`cpp_scan.py`, a fused C++ loop: CPU, float32 and
float64). "auto" takes the C++ loop where it applies, else the parallel scan; one step is always the step.

Mamba-2's forms: "recurrent" (`ssd_recurrent.py`) and "chunkwise" (`ssd_chunkwise.py`, matrix products inside
chunks, a state carried across them); "auto" is the chunkwise form, and the step for one step.
The tests hold every form equal to the recurrent one in float64, gradients included.

    y, state = selective_step(x, delta, A, B, C, D, z, state, reset=None, valid=None)     one step, (B, 1, ·)
    y, state = ssd_step(x, delta, A, B, C, D, z, state, reset=None, valid=None)

are the mixers' generation path: the recurrent step on inputs the mixer computed itself from checked ones, so
without the scans' input checks (at one token those checks would cost more than the step).
"""

from __future__ import annotations

import importlib

import torch
from torch import Tensor

FORMS = {
    "recurrent": ("recurrent", "selective_scan_recurrent"),
    "parallel": ("parallel", "selective_scan_parallel"),
    "cpp": ("cpp_scan", "selective_scan_cpp"),
}
"""Mamba's forms: module of lstmkit.nn.mamba, function (imported when first used: the C++ one builds then)."""


def form_function(form: str):
    module, name = FORMS[form]
    return getattr(importlib.import_module(f"lstmkit.nn.mamba.{module}"), name)


def selective_scan(x, delta, A, B, C, D, z, state, *, reset=None, valid=None, form: str = "auto"):
    """Mamba's scan by `form`; arguments as `recurrent.selective_scan_recurrent`."""
    recurrent = importlib.import_module("lstmkit.nn.mamba.recurrent")

    if form == "auto":
        if x.shape[1] == 1 and state is not None:  # one step (generation)
            recurrent.check_inputs(x, delta, A, B, C, D, z, state, reset, valid)
            x_t, delta_t, B_t, C_t, z_t = _first(x, delta, B, C, z)
            y, state = recurrent.selective_scan_step(
                x_t, delta_t, A, B_t, C_t, D, z_t, state, reset=_first1(reset), valid=_first1(valid)
            )
            return y[:, None], state
        form = "cpp" if importlib.import_module("lstmkit.nn.mamba.cpp_scan").usable(x, delta, A, B, C) else "parallel"
    return form_function(form)(x, delta, A, B, C, D, z, state, reset=reset, valid=valid)


def ssd_scan(x, delta, A, B, C, D, z, state, *, reset=None, valid=None, form: str = "auto", chunk_size=None):
    """Mamba-2's scan by `form`; arguments as `ssd_recurrent.ssd_recurrent`."""
    ssd_recurrent = importlib.import_module("lstmkit.nn.mamba.ssd_recurrent")  # the module, not the function

    if form == "auto":
        if x.shape[1] == 1 and state is not None:  # one step (generation); ssd_step checks its inputs
            x_t, delta_t, B_t, C_t, z_t = _first(x, delta, B, C, z)
            y, state = ssd_recurrent.ssd_step(
                x_t, delta_t, A, B_t, C_t, D, z_t, state, reset=_first1(reset), valid=_first1(valid)
            )
            return y[:, None], state
        form = "chunkwise"
    if form == "recurrent":
        return ssd_recurrent.ssd_recurrent(x, delta, A, B, C, D, z, state, reset=reset, valid=valid)
    chunkwise = importlib.import_module("lstmkit.nn.mamba.ssd_chunkwise").ssd_chunkwise
    return chunkwise(x, delta, A, B, C, D, z, state, reset=reset, valid=valid, chunk_size=chunk_size)


def selective_step(x, delta, A, B, C, D, z, state, *, reset=None, valid=None):
    """Mamba's step on (B, 1, ·) inputs, unchecked; float16 and bfloat16 computed in float32 as the scans do."""
    recurrent = importlib.import_module("lstmkit.nn.mamba.recurrent")
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):
        x, delta, A, B, C, D, z = (None if t is None else t.float() for t in (x, delta, A, B, C, D, z))
        state = type(state)(state.h.float())
    x_t, delta_t, B_t, C_t, z_t = _first(x, delta, B, C, z)
    y, state = recurrent.selective_scan_step(
        x_t, delta_t, A, B_t, C_t, D, z_t, state, reset=_first1(reset), valid=_first1(valid)
    )
    return y[:, None].to(dtype), type(state)(state.h.to(dtype))


def ssd_step(x, delta, A, B, C, D, z, state, *, reset=None, valid=None):
    """Mamba-2's step on (B, 1, ·) inputs, unchecked."""
    ssd_recurrent = importlib.import_module("lstmkit.nn.mamba.ssd_recurrent")
    x_t, delta_t, B_t, C_t, z_t = _first(x, delta, B, C, z)
    masks = {"reset": _first1(reset), "valid": _first1(valid)}
    y, state = ssd_recurrent.in_float32(ssd_recurrent.step_unchecked, x_t, delta_t, A, B_t, C_t, D, z_t, state, **masks)
    return y[:, None], state


def _first(x: Tensor, delta: Tensor, B: Tensor, C: Tensor, z: Tensor | None):
    return x[:, 0], delta[:, 0], B[:, 0], C[:, 0], None if z is None else z[:, 0]


def _first1(mask: Tensor | None) -> Tensor | None:
    return None if mask is None else mask[:, 0]
