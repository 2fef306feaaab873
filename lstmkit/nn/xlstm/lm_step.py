"""One token through a whole small `xLSTMLM` in one C++ call (`csrc/lm_step.cpp`): generation's step.

With x the residual stream (B, E), the token's embedding row as the first x, per block:

    mLSTM:  x_m, z = split(W_up LN(x))    x_c = SiLU(conv(x_m))    q, k, v = W_q x_c, W_k x_c, W_v x_m
            ĩ, f̃ = W_i [q, k, v] + b_i, W_f [q, k, v] + b_f        h̃ = mLSTM step (`lstmkit.nn.mlstm.recurrent`)
            x ← x + W_down ((HeadNorm(h̃) + s ⊙ x_c) ⊙ SiLU(z))
    sLSTM:  x_c = SiLU(conv(LN(x)))       x̃ = [W_i x_c, W_f x_c, W_z LN(x), W_o LN(x)]
            h = sLSTM step (`lstmkit.nn.slstm.cell`)                 x ← x + HeadNorm(h)
            [g | u] = W_up LN(x)           x ← x + W_down (act(g) ⊙ u)
    logits = W_head LN(x)

the equations of `lstmkit.nn.xlstm.{mlstm_layer,slstm_layer,blocks}` (the reference, which this must equal).

Why: at E = 128 one token is ~120 small ATen operations in Python, each costing more in dispatch than in
arithmetic. Here it is one call of plain loops (the matrix-vector products vectorised, AVX2 where present).

Forward only, exact where used: `fast_step_usable` is False when gradients are enabled, for tensors off the CPU
or not float32/float64, for masks (lengths, reset), in training mode with dropout, when forward hooks are on the
model's parts, or when the build failed (one warning); the model then takes its Python path. When the slow path
would refuse the state (kinds, shapes, dtypes: the layers' `check_state`) or a value (non-finite gates or state),
the step returns None and the slow path raises its error.
The state passed in is never changed: the new one is fresh tensors. Built on first use (`lstmkit.nn.cpp_build`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor, nn

from lstmkit.nn.cpp_build import build, compile_once
from lstmkit.nn.lm_inputs import LMState
from lstmkit.nn.mlstm.state import mLSTMState
from lstmkit.nn.slstm.cell import sLSTMState
from lstmkit.nn.xlstm.large_step import hooked
from lstmkit.nn.xlstm.mlstm_layer import mLSTMLayerState
from lstmkit.nn.xlstm.slstm_layer import sLSTMLayerState

SOURCE = Path(__file__).parent / "csrc" / "lm_step.cpp"
NAME = "lstmkit_lm_step"
DTYPES = (torch.float32, torch.float64)
ACTIVATIONS = {"gelu": 0, "relu": 1, "relu^2": 2, "sigmoid": 3, "swish": 4, "selu": 5}
"""csrc's `Activation` numbers."""
MLSTM_EPS = 1e-6
"""The mLSTM's eps in the denominator (`mLSTMLayer.forward` passes it)."""


@functools.cache
def extension():
    """`torch.ops.lstmkit_lm_step`, built on first use; None (after one warning) when it cannot be built."""
    flags = ["-O3", "-fopenmp-simd"]  # omp simd: vectorised sums in the matrix-vector products, no OpenMP runtime
    return build(NAME, lambda: compile_once(NAME, SOURCE, flags), "xLSTMLM's C++ step", "its Python path")


def fast_step_usable(model: nn.Module, tokens: Tensor, lengths: Tensor | None, reset: Tensor | None) -> bool:
    """One token (B, 1), B > 0, no masks, gradients off, CPU float32/float64 weights, no dropout at work, no
    hooks, a supported activation, built."""
    weight = model.embedding.weight
    config = model.config
    return (
        tokens.dim() == 2
        and tokens.shape[1] == 1
        and tokens.shape[0] > 0
        and lengths is None
        and reset is None
        and not torch.is_grad_enabled()
        and weight.device.type == "cpu"
        and weight.dtype in DTYPES
        and not (model.training and config.dropout > 0)
        and config.ffn_activation in ACTIVATIONS
        and not hooked(model)
        and extension() is not None
    )


def pair(module: nn.Module | None, empty: Tensor) -> tuple[Tensor, Tensor]:
    """(weight, bias) of a part, `empty` for what it lacks (a bias, the part itself). Dict look-ups throughout:
    module attribute access is slow at this count, and the tensors are gathered afresh at every step, so a
    replaced parameter is always the one used."""
    if module is None:
        return empty, empty
    parameters = module._parameters
    bias = parameters.get("bias")
    return parameters["weight"], empty if bias is None else bias


def mlstm_tensors(block: nn.Module, empty: Tensor) -> list[Tensor]:
    """An mLSTM block's tensors in csrc's `MParam` order."""
    layer = block._modules["layer"]
    parts = layer._modules
    return [
        *pair(block._modules["norm"], empty),
        *pair(parts["proj_up"], empty),
        *pair(parts["conv"], empty),
        *pair(parts["q_proj"], empty),
        *pair(parts["k_proj"], empty),
        *pair(parts["v_proj"], empty),
        *pair(parts["igate"], empty),
        *pair(parts["fgate"], empty),
        *pair(parts["outnorm"], empty),
        layer._parameters["skip"],
        *pair(parts["proj_down"], empty),
    ]


def slstm_tensors(block: nn.Module, empty: Tensor) -> list[Tensor]:
    """An sLSTM block's tensors in csrc's `SParam` order (empty conv tensors without a convolution)."""
    modules = block._modules
    parts = modules["layer"]._modules
    cell = parts["cell"]._parameters
    ffn = modules["ffn"]._modules
    return [
        *pair(modules["norm"], empty),
        *pair(parts.get("conv"), empty),
        *pair(parts["igate"], empty),
        *pair(parts["fgate"], empty),
        *pair(parts["zgate"], empty),
        *pair(parts["ogate"], empty),
        cell["R"],
        cell["b"],
        *pair(parts["outnorm"], empty),
        *pair(modules["ffn_norm"], empty),
        *pair(ffn["proj_up"], empty),
        *pair(ffn["proj_down"], empty),
    ]


def block_eps(block: nn.Module) -> list[float]:
    """[norm eps, outnorm eps, third]: the mLSTM's denominator eps, or the sLSTM block's ffn_norm eps."""
    layer = block.layer
    third = block.ffn_norm.eps if "ffn_norm" in block._modules else MLSTM_EPS
    return [block.norm.eps, layer.outnorm.eps, third]


def flat_state(model: nn.Module, state: LMState | None, batch: int, empty: Tensor) -> list[Tensor] | None:
    """Every block's state tensors in csrc's order (`empty` for an sLSTM without a convolution); None where the
    state is not made of the model's kinds of block states (the slow path then names what is wrong). Shapes and
    dtypes are checked in csrc, against the same expectations as the layers' `check_state`."""
    blocks = model.stack.blocks
    like = model.embedding.weight
    if state is None:
        states = [block.layer.empty_state(batch, like) for block in blocks]
    elif isinstance(state, LMState) and len(state.blocks) == len(blocks):
        states = state.blocks
    else:
        return None
    tensors = []
    for letter, block_state in zip(model.config.blocks, states, strict=True):
        kinds = (mLSTMLayerState, mLSTMState) if letter == "m" else (sLSTMLayerState, sLSTMState)
        if not isinstance(block_state, kinds[0]) or not isinstance(block_state.cell, kinds[1]):
            return None
        tensors.append(empty if block_state.conv is None else block_state.conv)
        tensors.extend(block_state.cell)
    return tensors if all(isinstance(t, Tensor) for t in tensors) else None


def unflatten_state(blocks: str, tensors: list[Tensor]) -> LMState:
    states, at = [], 0
    for letter in blocks:
        if letter == "m":
            conv, C, n, m = tensors[at : at + 4]
            states.append(mLSTMLayerState(conv, mLSTMState(C, n, m)))
            at += 4
        else:
            conv, h, c, n, m = tensors[at : at + 5]
            states.append(sLSTMLayerState(conv if conv.dim() == 3 else None, sLSTMState(h, c, n, m)))
            at += 5
    return LMState(tuple(states))


def lm_step(model: nn.Module, tokens: Tensor, state: LMState | None) -> tuple[Tensor, LMState] | None:
    """tokens (B, 1) -> logits (B, 1, V) and the new state; None where the slow path would raise (a state not the
    model's, non-finite values), so that the caller runs it and its error is raised. See `fast_step_usable` for
    when this applies; the caller has checked the tokens (`xLSTMLM.forward` does)."""
    config = model.config
    weight = model.embedding.weight
    empty = weight.new_empty(0)
    states = flat_state(model, state, tokens.shape[0], empty)
    if states is None:
        return None
    params, eps = [], []
    for letter, block in zip(config.blocks, model.stack.blocks._modules.values(), strict=True):
        params.extend(mlstm_tensors(block, empty) if letter == "m" else slstm_tensors(block, empty))
        eps.extend(block_eps(block))
    norm = model.stack.norm
    final = [empty, empty] if isinstance(norm, nn.Identity) else [*pair(norm, empty)]
    eps.append(getattr(norm, "eps", 0.0))
    result = extension().step(
        tokens[:, 0].long(),
        weight,
        config.blocks,
        params,
        states,
        [*final, model.head._parameters["weight"]],
        eps,
        config.mlstm_heads,
        config.slstm_heads,
        ACTIVATIONS[config.ffn_activation],
    )
    if not result:
        return None
    return result[0][:, None], unflatten_state(config.blocks, result[1:])
