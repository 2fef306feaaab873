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
model's parts, or when the build failed (one warning); the model then takes its Python path. When a value the
slow path refuses appears (non-finite gates or state), the step returns None and the slow path raises its error.
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

MLSTM_PARTS = (
    (("norm",), ("weight", "bias")),
    (("layer", "proj_up"), ("weight", "bias")),
    (("layer", "conv"), ("weight", "bias")),
    (("layer", "q_proj"), ("weight", "bias")),
    (("layer", "k_proj"), ("weight", "bias")),
    (("layer", "v_proj"), ("weight", "bias")),
    (("layer", "igate"), ("weight", "bias")),
    (("layer", "fgate"), ("weight", "bias")),
    (("layer", "outnorm"), ("weight", "bias")),
    (("layer",), ("skip",)),
    (("layer", "proj_down"), ("weight", "bias")),
)
"""The tensors of an mLSTM block in csrc's `MParam` order."""
SLSTM_PARTS = (
    (("norm",), ("weight", "bias")),
    (("layer", "conv"), ("weight", "bias")),
    (("layer", "igate"), ("weight", "bias")),
    (("layer", "fgate"), ("weight", "bias")),
    (("layer", "zgate"), ("weight", "bias")),
    (("layer", "ogate"), ("weight", "bias")),
    (("layer", "cell"), ("R", "b")),
    (("layer", "outnorm"), ("weight", "bias")),
    (("ffn_norm",), ("weight", "bias")),
    (("ffn", "proj_up"), ("weight", "bias")),
    (("ffn", "proj_down"), ("weight", "bias")),
)
"""The tensors of an sLSTM block in csrc's `SParam` order (empty conv tensors without a convolution)."""


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


def block_tensors(block: nn.Module, parts, empty: Tensor) -> list[Tensor]:
    """The block's tensors for csrc, gathered afresh at every step (a replaced parameter is the one used)."""
    tensors = []
    for path, names in parts:
        module = block
        for name in path:
            module = module._modules.get(name) if module is not None else None  # None: no such part (no conv)
        parameters = module._parameters if module is not None else {}  # dict look-ups: attribute access is slow
        for name in names:
            tensor = parameters.get(name)
            tensors.append(empty if tensor is None else tensor)
    return tensors


def block_eps(block: nn.Module) -> list[float]:
    """[norm eps, outnorm eps, third]: the mLSTM's denominator eps, or the sLSTM block's ffn_norm eps."""
    layer = block.layer
    third = block.ffn_norm.eps if "ffn_norm" in block._modules else MLSTM_EPS
    return [block.norm.eps, layer.outnorm.eps, third]


def flat_state(model: nn.Module, state: LMState | None, batch: int, empty: Tensor) -> list[Tensor]:
    like = model.embedding.weight
    blocks = model.stack.blocks
    tensors = []
    for block, block_state in zip(blocks, [None] * len(blocks) if state is None else state.blocks, strict=True):
        block_state = block.layer.empty_state(batch, like) if block_state is None else block_state
        tensors.append(empty if block_state.conv is None else block_state.conv)
        tensors.extend(block_state.cell)
    return tensors


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
    """tokens (B, 1) -> logits (B, 1, V) and the new state; None where the slow path would raise (non-finite
    values), so the caller runs it. See `fast_step_usable` for when this applies; the caller has checked tokens
    and state (`xLSTMLM.forward` does)."""
    config = model.config
    weight = model.embedding.weight
    empty = weight.new_empty(0)
    B = tokens.shape[0]
    params, eps = [], []
    for letter, block in zip(config.blocks, model.stack.blocks._modules.values(), strict=True):
        params.extend(block_tensors(block, MLSTM_PARTS if letter == "m" else SLSTM_PARTS, empty))
        eps.extend(block_eps(block))
    norm = model.stack.norm
    final = [empty, empty] if isinstance(norm, nn.Identity) else block_tensors(norm, (((), ("weight", "bias")),), empty)
    eps.append(getattr(norm, "eps", 0.0))
    result = extension().step(
        tokens[:, 0].long(),
        weight,
        config.blocks,
        params,
        flat_state(model, state, B, empty),
        [*final, model.head._parameters["weight"]],
        eps,
        config.mlstm_heads,
        config.slstm_heads,
        ACTIVATIONS[config.ffn_activation],
    )
    if not result:
        return None
    return result[0][:, None], unflatten_state(config.blocks, result[1:])
