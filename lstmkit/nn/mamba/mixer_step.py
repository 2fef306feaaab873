"""One token through a `MambaMixer` in C++ (`csrc/mixer_step.cpp`): generation's step, the mixer's equations

    x, z = split(W_in u + b_in)            x_c = SiLU(Σ_k w_k ⊙ window_k + b)     window = [conv state; x]
    δ, B, C = split(W_x x_c)               Δ = softplus(W_dt δ + b_dt)            A = -exp(A_log)
    h ← exp(Δ ⊗ A) ⊙ h + (Δ ⊙ x_c) ⊗ B     y = (h C + D ⊙ x_c) ⊙ SiLU(z)           out = W_out y + b_out

on (B, ·) tensors, the four projections as ATen matrix products and the rest as plain loops. Why: in Python one
token is some 65 small operations per mixer, each costing more in dispatch than in arithmetic. The tests hold
it equal to the mixer's Python path (float64, 1e-12). Forward only: `cpp_step_usable` is False when gradients
are wanted, for tensors off the CPU or not float32/float64, when forward hooks are on the mixer's parts, or when
the build failed (one warning); the mixer then takes its Python path. Built on first use, as the scan's loops
are (`lstmkit.nn.cpp_build`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor, nn

from lstmkit.nn.cpp_build import build, compile_once
from lstmkit.nn.mamba.recurrent import MambaState

SOURCE = Path(__file__).parent / "csrc" / "mixer_step.cpp"
NAME = "lstmkit_mamba_step"


@functools.cache
def extension():
    """`torch.ops.lstmkit_mamba_step`, built on first use; None (after one warning) when it cannot be built."""
    return build(NAME, lambda: compile_once(NAME, SOURCE, ["-O3"]), "the Mamba mixer's C++ step", "its Python path")


def cpp_step_usable(mixer, u: Tensor) -> bool:
    """u (B, 1, E) on the CPU in float32/float64, like the mixer's weights, no gradient wanted, the step built."""
    weight = mixer.in_proj.weight
    wants_grad = torch.is_grad_enabled() and (u.requires_grad or weight.requires_grad)
    return (
        not wants_grad
        and not hooked(mixer)
        and u.device.type == "cpu"
        and u.dtype in (torch.float32, torch.float64)
        and weight.dtype == u.dtype
        and weight.device.type == "cpu"
        and extension() is not None
    )


def hooked(mixer) -> bool:
    """Forward hooks on the mixer's parts (as `lstmkit explain` puts on dt_proj to read Δ), or global ones: they
    must see the parts called, so the mixer takes its Python path."""
    parts = (mixer.in_proj, mixer.conv1d, mixer.x_proj, mixer.dt_proj, mixer.out_proj)
    local = any(part._forward_hooks or part._forward_pre_hooks for part in parts)
    return local or bool(nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks)


def mixer_step(mixer, u: Tensor, state) -> tuple[Tensor, Tensor, MambaState]:
    """out (B, 1, E), the new conv state (B, K-1, I) and MambaState for one token u (B, 1, E); see `cpp_step_usable`."""
    empty = u.new_empty(0)

    def bias(linear) -> Tensor:
        return empty if linear.bias is None else linear.bias

    conv = mixer.conv1d
    out, conv_state, h = extension().step(
        u[:, 0],
        mixer.in_proj.weight,
        bias(mixer.in_proj),
        conv.weight,
        empty if conv.bias is None else conv.bias,
        state.conv,
        mixer.x_proj.weight,
        mixer.dt_proj.weight,
        mixer.dt_proj.bias,
        mixer.A_log,
        mixer.D,
        mixer.out_proj.weight,
        bias(mixer.out_proj),
        state.ssm.h,
    )
    return out[:, None], conv_state, MambaState(h)
