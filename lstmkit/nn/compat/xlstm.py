"""Import from, and export to, the xLSTM authors' package `xlstm` (PyPI, 2.0.6) on CPU.

    their module (or state dict + config)          ours
    xlstm.blocks.mlstm.layer.mLSTMLayer      ->    lstmkit.nn.mLSTMLayer
    xlstm.blocks.slstm.layer.sLSTMLayer      ->    lstmkit.nn.sLSTMLayer
    xlstm.xLSTMBlockStack                    ->    lstmkit.nn.xLSTMStack
    xlstm.xLSTMLMModel                       ->    lstmkit.nn.xLSTMLM
    xlstm.xlstm_large.model.xLSTMLarge       ->    lstmkit.nn.xLSTMLarge

Each imported module computes the same function as the original (tests: 1e-5 relative in float32,
1e-10 in float64). Their quirks, mapped here one by one:

1. sLSTM gate names. Their sLSTMLayer computes `i, f, z, o = fgate(x_c), igate(x_c), zgate(x), ogate(x)`:
   the module named `fgate` feeds the input gate and `igate` the forget gate. Ours are named for what
   they feed, so the importer swaps the two (and the exporter swaps them back).
2. sLSTM weight layouts depend on their backend. The recurrent kernel `_recurrent_kernel_` is
   (NH, 4·DH_out, DH_in) for "vanilla" and (NH, DH_in, 4·DH_out) for "cuda"; the bias `_bias_` is
   gate-major (4, NH, DH) for "vanilla" and head-major (NH, 4, DH) for "cuda". Ours: R (NH, 4, DH_out,
   DH_in), b gate-major. The backend is read from the config.
3. Norm weights. Their small models' LayerNorm and MultiHeadLayerNorm store w - 1 (the forward uses
   1 + weight, initialised to 0); ours store the scale itself, so the importer adds 1. xLSTMLarge's
   norms store the scale itself.
4. Stored mLSTM states. Their small mLSTM scales k by 1/√DH before it enters C and n; mlstm_kernels
   (used by xLSTMLarge) and lstmkit scale q instead. Outputs are identical, stored states differ:
   C_ours = √DH · C_theirs, n_ours = √DH · n_theirs. `mlstm_state_from_xlstm` converts.
5. The fresh state. Their xLSTMLMModel.forward (parallel kernel) starts with no history, m = -inf,
   as lstmkit does; their step() and xLSTMLarge start from m = 0. This changes outputs only through
   the eps of the denominator (~1e-6 relative); pass the same explicit state to compare exactly.
6. Their sLSTM cell's step() returns the state it was given, not the new one (xlstm 2.0.6), so their
   token-by-token stepping through an sLSTM block never advances its state. lstmkit's does.
7. xLSTMLarge's weight_mode "fused" keeps q, k, v, o (and i, f) in one matrix: split on import.
   Their single SwiGLU weights `proj_up_gate`, `proj_up` are stacked into our `proj_up` = [gate | up].

Here the entry points; the configurations in `xlstm_configs`, the weight mappings in `xlstm_weights`.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from lstmkit.nn.compat.xlstm_configs import (
    Unsupported,
    check_slstm_cell,
    large_config,
    mlstm_layer_args,
    slstm_backend,
    stack_config,
    their_lm_config,
)
from lstmkit.nn.compat.xlstm_weights import (
    large_weights,
    lm_weights_to_theirs,
    mlstm_layer_weights,
    slstm_layer_weights,
    stack_weights,
)
from lstmkit.nn.mlstm.state import mLSTMState
from lstmkit.nn.xlstm.large import xLSTMLarge
from lstmkit.nn.xlstm.lm import xLSTMLM, xLSTMStack
from lstmkit.nn.xlstm.mlstm_layer import mLSTMLayer
from lstmkit.nn.xlstm.slstm_layer import sLSTMLayer

__all__ = ["Unsupported", "from_xlstm", "mlstm_state_from_xlstm", "to_xlstm"]

SUPPORTED = "xlstm's mLSTMLayer, sLSTMLayer, xLSTMBlockStack, xLSTMLMModel or xLSTMLarge"


# --- import: theirs -> ours ---------------------------------------------------------------------------------


def _kind(config: object) -> str:
    return f"{type(config).__module__}.{type(config).__name__}"


def _load(module: nn.Module, weights: dict, like: Tensor) -> nn.Module:
    module = module.to(dtype=like.dtype, device=like.device)
    try:
        module.load_state_dict({k: v.detach().to(like.dtype) for k, v in weights.items()}, strict=True)
    except RuntimeError as error:  # a size mismatch: their weights do not fit the configuration given
        raise Unsupported(f"their weights do not fit the configuration: {error}") from None
    return module


def from_xlstm(source: object, config: object = None) -> nn.Module:
    """Their module, or their state dict plus their config -> the lstmkit module computing the same function.

    The result has the source's dtype and device; its `training` flag is the source's (or False)."""
    if isinstance(source, nn.Module):
        if config is not None:
            raise ValueError("pass either their module, or their state dict and config, not a module and a config")
        config = getattr(source, "config", None)
        state_dict, training = source.state_dict(), source.training
    elif isinstance(source, dict):
        if config is None:
            raise ValueError("a state dict needs its xlstm config (e.g. xLSTMLMModelConfig) as the second argument")
        state_dict, training = source, False
    else:
        raise Unsupported(f"cannot import a {type(source).__name__}: expected {SUPPORTED}, or a state dict and config")
    kind = _kind(config)
    if kind not in IMPORTERS:
        name = type(source).__name__ if isinstance(source, nn.Module) else type(config).__name__
        raise Unsupported(f"cannot import a {name}: expected {SUPPORTED}")
    like = next(iter(state_dict.values()))
    module = IMPORTERS[kind](state_dict, config, like)
    return module.train(training)


def _import_mlstm_layer(sd: dict, c, like: Tensor) -> nn.Module:
    ours = mLSTMLayer(**mlstm_layer_args(c))
    return _load(ours, mlstm_layer_weights(sd, "", ours), like)


def _import_slstm_layer(sd: dict, c, like: Tensor) -> nn.Module:
    check_slstm_cell(c)
    ours = sLSTMLayer(c.embedding_dim, c.num_heads, c.conv1d_kernel_size, c.dropout)
    return _load(ours, slstm_layer_weights(sd, "", ours, c.backend), like)


def _import_stack(sd: dict, c, like: Tensor) -> nn.Module:
    ours = xLSTMStack(stack_config(c))
    return _load(ours, stack_weights(sd, "", ours, slstm_backend(c)), like)


def _import_lm(sd: dict, c, like: Tensor) -> nn.Module:
    ours = xLSTMLM(stack_config(c, c.vocab_size, c.tie_weights))
    stack = stack_weights(sd, "xlstm_block_stack.", ours.stack, slstm_backend(c))
    weights = {"stack." + k: v for k, v in stack.items()}
    weights["embedding.weight"] = sd["token_embedding.weight"]
    weights["head.weight"] = sd["lm_head.weight"]
    return _load(ours, weights, like)


def _import_large(sd: dict, c, like: Tensor) -> nn.Module:
    ours = xLSTMLarge(large_config(c))
    return _load(ours, large_weights(sd, c, ours), like)


IMPORTERS = {
    "xlstm.blocks.mlstm.layer.mLSTMLayerConfig": _import_mlstm_layer,
    "xlstm.blocks.slstm.layer.sLSTMLayerConfig": _import_slstm_layer,
    "xlstm.xlstm_block_stack.xLSTMBlockStackConfig": _import_stack,
    "xlstm.xlstm_lm_model.xLSTMLMModelConfig": _import_lm,
    "xlstm.xlstm_large.model.xLSTMLargeConfig": _import_large,
}


def mlstm_state_from_xlstm(c: Tensor, n: Tensor, m: Tensor, scaled: str) -> mLSTMState:
    """Their stored mLSTM state -> ours. scaled="k": their small mLSTM's step state, c (B, NH, DH, DH),
    n (B, NH, DH, 1), m (B, NH, 1, 1) with k scaled by 1/√DH (quirk 4); scaled="q": mlstm_kernels
    (xLSTMLarge), c (B, NH, DK, DV), n (B, NH, DK), m (B, NH, 1), already like ours."""
    if scaled not in ("k", "q"):
        raise ValueError(f"scaled is {scaled!r}, expected 'k' (xlstm's mLSTMLayer) or 'q' (mlstm_kernels)")
    B, NH, DK = c.shape[:3]
    factor = math.sqrt(DK) if scaled == "k" else 1.0
    return mLSTMState(c * factor, n.reshape(B, NH, DK) * factor, m.reshape(B, NH))


# --- export: ours -> theirs ---------------------------------------------------------------------------------


def to_xlstm(model: nn.Module, context_length: int = 2048) -> nn.Module:
    """Our xLSTMLM -> the authors' xLSTMLMModel (sLSTM backend "vanilla", CPU) computing the same function.

    `context_length` is the longest sequence their model's parallel mLSTM kernel accepts (it keeps a
    context_length² causal mask per mLSTM block)."""
    if not isinstance(model, xLSTMLM):
        raise Unsupported(f"cannot export a {type(model).__name__}: to_xlstm takes an lstmkit xLSTMLM")
    from xlstm import xLSTMLMModel

    weight = model.embedding.weight
    theirs = xLSTMLMModel(their_lm_config(model.config, context_length)).to(dtype=weight.dtype, device=weight.device)
    theirs.load_state_dict({k: v.detach().clone() for k, v in lm_weights_to_theirs(model).items()}, strict=True)
    return theirs.train(model.training)
