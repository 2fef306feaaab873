"""One token through a whole `xLSTMLarge` in one C++ call (`csrc/large_step.cpp`): generation's decode step.

Per block, with x the residual stream (B, E) and the token's embedding row as the first x:

    x̄ = RMSNorm(x)                      q, k, v, o = W_q x̄, W_k x̄, W_v x̄, W_o x̄
    ĩ, f̃ = cap(W_i x̄ + b_i), cap(W_f x̄ + b_f)
    m' = max(log σ(f̃) + m, ĩ)           f = exp(log σ(f̃) + m - m'),  i = exp(ĩ - m')
    C' = f C + i k vᵀ    n' = f n + i k  h = q̂ᵀC' / (max(|q̂ᵀn'|, exp(-m')) + eps),  q̂ = q / √DK
    x ← x + W_out (σ(o) ⊙ HeadNorm(h))
    [g | u] = W_up RMSNorm(x)            x ← x + W_down (SiLU(g) ⊙ u)
    logits = cap(W_head RMSNorm(x))

the equations of `lstmkit.nn.xlstm.large` and `lstmkit.nn.mlstm.recurrent` (the reference, which this must equal).

Why: decoding one token reads every weight once, so its floor is (bytes of weights) / (memory bandwidth). Torch's
bfloat16 matrix-vector product reaches about half the machine's streaming rate on one thread (and less once the
weights no longer fit the cache), and a small model spends its time dispatching ~40 small operations per block.
Here each product streams its weight once through an AVX-512 kernel (bfloat16 with vdpbf16ps, float32 with FMA;
ATen's mm where the processor lacks them, and for float64), batch rows share each pass over a weight, and the rest
are plain loops. Rounding follows the slow path: every stored intermediate is rounded to the model's dtype, the
mLSTM runs in float32 for bfloat16 and its state is kept as `round_state` keeps it.

Forward only: `fast_step_usable` is False when gradients are wanted, for tensors off the CPU or not
bfloat16/float32/float64, for masks (lengths, reset), when forward hooks are on the model's parts, or when the
build failed (one warning); the model then takes its Python path. Built on first use (`lstmkit.nn.cpp_build`).

The new state is written into `out` (fresh tensors by default, so a state passed in is never changed; pass the
state itself as `out` to update it in place, as a decoding loop that owns its state may).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor, nn

from lstmkit.nn.cpp_build import build, compile_once
from lstmkit.nn.lm_inputs import LMState
from lstmkit.nn.mlstm.state import mLSTMState

SOURCE = Path(__file__).parent / "csrc" / "large_step.cpp"
NAME = "lstmkit_large_step"
DTYPES = (torch.bfloat16, torch.float32, torch.float64)


@functools.cache
def extension():
    """`torch.ops.lstmkit_large_step`, built on first use; None (after one warning) when it cannot be built."""
    return build(NAME, lambda: compile_once(NAME, SOURCE, ["-O3"]), "xLSTMLarge's C++ decode step", "its Python path")


def fast_step_usable(model: nn.Module, tokens: Tensor, lengths: Tensor | None, reset: Tensor | None) -> bool:
    """One token (B, 1), no masks, no gradient wanted, CPU weights in bfloat16/float32/float64, no hooks, built."""
    weight = model.embedding.weight
    return (
        tokens.dim() == 2
        and tokens.shape[1] == 1
        and tokens.shape[0] > 0
        and lengths is None
        and reset is None
        and not (torch.is_grad_enabled() and weight.requires_grad)
        and weight.device.type == "cpu"
        and weight.dtype in DTYPES
        and not hooked(model)
        and extension() is not None
    )


def hooked(model: nn.Module) -> bool:
    """Forward hooks anywhere in the model, or global ones: they must see the parts called (Python path).
    A walk over the `_modules` dicts in a list that grows as it is read: `model.modules()` costs more than a small
    model's whole step (`lm_step` uses this too)."""
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return True
    pending = [model]
    for module in pending:  # every module once: children are appended behind the reader
        if module is None:
            continue
        if module._forward_hooks or module._forward_pre_hooks:
            return True
        pending.extend(module._modules.values())
    return False


BLOCK_PARTS = (
    ("norm",),
    ("layer", "q"),
    ("layer", "k"),
    ("layer", "v"),
    ("layer", "ogate"),
    ("layer", "igate"),
    ("layer", "fgate"),
    ("layer", "outnorm"),
    ("layer", "out_proj"),
    ("ffn_norm",),
    ("ffn", "proj_up"),
    ("ffn", "proj_down"),
)
"""The modules of a block whose weight and bias csrc's `Param` lists, in its order."""


def _weight_and_bias(module: nn.Module, empty: Tensor) -> tuple[Tensor, Tensor]:
    parameters = module._parameters  # dict look-ups: module attribute access is slow at this count
    bias = parameters.get("bias")
    return parameters["weight"], empty if bias is None else bias


def block_parameters(model: nn.Module) -> list[Tensor]:
    """Every block's tensors in csrc's `Param` order; an empty tensor where a part has no bias. Gathered afresh at
    every step, so a replaced parameter is always the one used."""
    empty = model.embedding.weight.new_empty(0)
    tensors: list[Tensor] = []
    for block in model.blocks._modules.values():
        for path in BLOCK_PARTS:
            module = block
            for name in path:
                module = module._modules[name]
            tensors.extend(_weight_and_bias(module, empty))
    return tensors


def final_parameters(model: nn.Module) -> list[Tensor]:
    """[out norm weight, bias, head weight]; empty norm tensors without an out norm."""
    empty = model.embedding.weight.new_empty(0)
    norm = model.norm
    head = model.head._parameters["weight"]
    return [empty, empty, head] if isinstance(norm, nn.Identity) else [*_weight_and_bias(norm, empty), head]


def empty_states(model: nn.Module, batch: int) -> LMState:
    like = model.embedding.weight
    return LMState(tuple(block.layer.empty_state(batch, like) for block in model.blocks))


def fresh_like(state: LMState) -> LMState:
    """Uninitialised tensors shaped like `state`, for the step to write."""
    return LMState(tuple(mLSTMState(*(t.new_empty(t.shape) for t in s)) for s in state.blocks))


def flat(state: LMState) -> list[Tensor]:
    return [t for s in state.blocks for t in s]


def decode_step(
    model: nn.Module, tokens: Tensor, state: LMState | None, out: LMState | None = None
) -> tuple[Tensor, LMState]:
    """tokens (B, 1) -> logits (B, 1, V) and the new state, written into `out` (fresh tensors when None).

    `state` is the LMState of the model's forward (None: the empty memory); see `fast_step_usable` for when this
    applies. The caller has checked tokens and state (`xLSTMLarge.forward` does)."""
    c = model.config
    B = tokens.shape[0]
    state = empty_states(model, B) if state is None else state
    out = fresh_like(state) if out is None else out
    weight = model.embedding.weight
    x = weight.index_select(0, tokens[:, 0])  # (B, E)
    logits = weight.new_empty(B, c.vocab_size)
    extension().step(
        x,
        block_parameters(model),
        final_parameters(model),
        flat(state),
        flat(out),
        logits,
        c.num_heads,
        c.norm_eps,
        c.eps,
        c.gate_soft_cap or 0.0,
        c.output_logit_soft_cap or 0.0,
    )
    return logits[:, None], out
