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
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lstmkit.nn.mlstm.state import mLSTMState
from lstmkit.nn.xlstm.config import xLSTMConfig
from lstmkit.nn.xlstm.large import xLSTMLarge, xLSTMLargeConfig
from lstmkit.nn.xlstm.lm import xLSTMLM, xLSTMStack
from lstmkit.nn.xlstm.mlstm_layer import mLSTMLayer
from lstmkit.nn.xlstm.slstm_layer import sLSTMLayer

SUPPORTED = "xlstm's mLSTMLayer, sLSTMLayer, xLSTMBlockStack, xLSTMLMModel or xLSTMLarge"


class Unsupported(ValueError):
    """A module or configuration the importer cannot map (says which and why)."""


def _kind(config: object) -> str:
    return f"{type(config).__module__}.{type(config).__name__}"


# --- configurations -------------------------------------------------------------------------------------


def _mlstm_layer_args(c) -> dict:
    return {
        "embedding_dim": c.embedding_dim,
        "inner_size": c._inner_embedding_dim,
        "num_heads": c.num_heads,
        "conv_kernel": c.conv1d_kernel_size,
        "qkv_blocksize": c.qkv_proj_blocksize,
        "bias": c.bias,
        "dropout": c.dropout,
    }


def _check_slstm_cell(c) -> None:
    if c.function != "slstm":
        raise Unsupported(f"their sLSTM cell function is {c.function!r}, expected 'slstm'")
    if c.backend not in ("vanilla", "cuda"):
        raise Unsupported(f"their sLSTM backend is {c.backend!r}, expected 'vanilla' or 'cuda'")


def _stack_config(c, vocab_size: int = 1, tie_weights: bool = False) -> xLSTMConfig:
    """Their xLSTMBlockStackConfig (or xLSTMLMModelConfig) -> xLSTMConfig, checked against their sizes."""
    blocks = "".join("ms"[int(b)] for b in c._block_map.split(","))
    m = c.mlstm_block.mlstm if c.mlstm_block is not None and "m" in blocks else None
    s = c.slstm_block.slstm if c.slstm_block is not None and "s" in blocks else None
    ffn = c.slstm_block.feedforward if s is not None else None
    fields = {
        "vocab_size": vocab_size,
        "embedding_dim": c.embedding_dim,
        "blocks": blocks,
        "dropout": c.dropout,
        "final_norm": c.add_post_blocks_norm,
        "tie_weights": tie_weights,
    }
    roundings, biases = set(), set()
    if m is not None:
        fields.update(
            mlstm_heads=m.num_heads,
            mlstm_proj_factor=m.proj_factor,
            mlstm_conv_kernel=m.conv1d_kernel_size,
            qkv_blocksize=m.qkv_proj_blocksize,
        )
        roundings.add((m.round_proj_up_to_multiple_of, m.round_proj_up_dim_up))
        biases.add(m.bias)
    if s is not None:
        _check_slstm_cell(s)
        if ffn is None:
            raise Unsupported("their sLSTM blocks have no feed-forward; lstmkit's sLSTM block always has one")
        fields.update(
            slstm_heads=s.num_heads,
            slstm_conv_kernel=s.conv1d_kernel_size,
            ffn_proj_factor=ffn.proj_factor,
            ffn_activation=ffn.act_fn,
        )
        roundings.add((ffn.round_proj_up_to_multiple_of, ffn.round_proj_up_dim_up))
        biases.add(ffn.bias)
    if len(biases) > 1:
        raise Unsupported("their mLSTM layers and feed-forwards disagree on bias; lstmkit has one `bias` for both")
    if len(roundings) > 1 or any(not up for _, up in roundings):
        raise Unsupported(
            f"their inner widths are rounded as {sorted(roundings)} (multiple, up); "
            "lstmkit rounds all up to one multiple"
        )
    fields["bias"] = biases.pop() if biases else False
    if roundings:
        fields["round_up_to"] = roundings.pop()[0]
    return xLSTMConfig(**fields)


def _large_config(c) -> xLSTMLargeConfig:
    return xLSTMLargeConfig(
        vocab_size=c.vocab_size,
        embedding_dim=c.embedding_dim,
        num_heads=c.num_heads,
        num_blocks=c.num_blocks,
        qk_dim_factor=c.qk_dim_factor,
        v_dim_factor=c.v_dim_factor,
        ffn_proj_factor=c.ffn_proj_factor,
        ffn_round_up_to=c.ffn_round_up_to_multiple_of,
        gate_soft_cap=c.gate_soft_cap,
        output_logit_soft_cap=c.output_logit_soft_cap,
        norm_eps=c.norm_eps,
        eps=c.eps,
        use_bias=c.use_bias,
        add_out_norm=c.add_out_norm,
        chunk_size=c.chunk_size,
    )


# --- weights: one function per module kind, their state dict (with a prefix) -> ours ---------------------


def _plus_one(w: Tensor) -> Tensor:
    return w + 1


def _mlstm_layer_weights(sd: dict, p: str, ours: nn.Module) -> dict:
    renamed = {
        "conv.": "conv1d.conv.",
        "igate.": "mlstm_cell.igate.",
        "fgate.": "mlstm_cell.fgate.",
        "outnorm.weight": "mlstm_cell.outnorm.weight",
        "skip": "learnable_skip",
    }
    out = {}
    for key in ours.state_dict():
        theirs = next((key.replace(a, b, 1) for a, b in renamed.items() if key.startswith(a)), key)
        value = sd[p + theirs]
        out[key] = value[:, 0, :] if key == "conv.weight" else _plus_one(value) if key == "outnorm.weight" else value
    return out


def _slstm_recurrent(sd: dict, p: str, backend: str, NH: int) -> tuple[Tensor, Tensor]:
    R, b = sd[p + "slstm_cell._recurrent_kernel_"], sd[p + "slstm_cell._bias_"]
    DH = R.shape[-1] if backend == "vanilla" else R.shape[1]
    if backend == "vanilla":  # R (NH, 4·DH_out, DH_in), b gate-major
        return R.reshape(NH, 4, DH, DH), b.reshape(-1)
    return R.reshape(NH, DH, 4, DH).permute(0, 2, 3, 1), b.reshape(NH, 4, DH).permute(1, 0, 2).reshape(-1)


def _slstm_layer_weights(sd: dict, p: str, ours: nn.Module, backend: str) -> dict:
    swapped = {"igate.": "fgate.", "fgate.": "igate."}  # their fgate feeds the input gate (quirk 1)
    out = {}
    out["cell.R"], out["cell.b"] = _slstm_recurrent(sd, p, backend, ours.num_heads)
    for key in ours.state_dict():
        if key.startswith("cell."):
            continue
        if key == "outnorm.weight":
            norm = sd.get(p + "group_norm.weight")  # absent when group_norm_weight=False: scale 1
            out[key] = torch.ones_like(ours.outnorm.weight) if norm is None else _plus_one(norm)
        elif key.startswith("conv."):
            value = sd[p + "conv1d.conv." + key[len("conv.") :]]
            out[key] = value[:, 0, :] if key == "conv.weight" else value
        else:
            prefix = next((a for a in swapped if key.startswith(a)), None)
            out[key] = sd[p + (key if prefix is None else swapped[prefix] + key[len(prefix) :])]
    return out


def _stack_weights(sd: dict, p: str, ours: xLSTMStack, backends: str) -> dict:
    out = {}
    for index, block in enumerate(ours.blocks):
        b_ours, b_theirs = f"blocks.{index}.", f"{p}blocks.{index}."
        out[b_ours + "norm.weight"] = _plus_one(sd[b_theirs + "xlstm_norm.weight"])
        if ours.config.blocks[index] == "m":
            layer = _mlstm_layer_weights(sd, b_theirs + "xlstm.", block.layer)
        else:
            layer = _slstm_layer_weights(sd, b_theirs + "xlstm.", block.layer, backends)
            out[b_ours + "ffn_norm.weight"] = _plus_one(sd[b_theirs + "ffn_norm.weight"])
            for key in block.ffn.state_dict():
                out[b_ours + "ffn." + key] = sd[b_theirs + "ffn." + key]
        out.update({b_ours + "layer." + k: v for k, v in layer.items()})
    if ours.config.final_norm:
        out["norm.weight"] = _plus_one(sd[p + "post_blocks_norm.weight"])
    return out


def _large_weights(sd: dict, c, ours: xLSTMLarge) -> dict:
    out = {"embedding.weight": sd["embedding.weight"], "head.weight": sd["lm_head.weight"]}
    if ours.config.add_out_norm:
        out.update({"norm." + k: sd["backbone.out_norm." + k] for k in ours.norm.state_dict()})
    qk, v = ours.config.qk_dim, ours.config.v_dim
    for index, block in enumerate(ours.blocks):
        b_ours, b_theirs = f"blocks.{index}.", f"backbone.blocks.{index}."
        m = b_theirs + "mlstm_layer."
        parts = {}
        for suffix in ("weight", "bias"):
            if c.weight_mode == "fused":
                if m + "qkv_opreact." + suffix in sd:
                    q_, k_, v_, o_ = sd[m + "qkv_opreact." + suffix].split([qk, qk, v, v])
                    parts.update({f"q.{suffix}": q_, f"k.{suffix}": k_, f"v.{suffix}": v_, f"ogate.{suffix}": o_})
                i_, f_ = sd[m + "ifgate_preact." + suffix].chunk(2)
                parts.update({f"igate.{suffix}": i_, f"fgate.{suffix}": f_})
                if b_theirs + "ffn.proj_up_gate_z." + suffix in sd:
                    out[b_ours + "ffn.proj_up." + suffix] = sd[b_theirs + "ffn.proj_up_gate_z." + suffix]
            else:
                names = {
                    "q": "q",
                    "k": "k",
                    "v": "v",
                    "ogate": "ogate_preact",
                    "igate": "igate_preact",
                    "fgate": "fgate_preact",
                }
                present = {o: f"{m}{t}.{suffix}" for o, t in names.items() if f"{m}{t}.{suffix}" in sd}
                parts.update({f"{o}.{suffix}": sd[key] for o, key in present.items()})
                up = [b_theirs + f"ffn.proj_up_gate.{suffix}", b_theirs + f"ffn.proj_up.{suffix}"]
                if up[0] in sd:
                    out[b_ours + "ffn.proj_up." + suffix] = torch.cat([sd[up[0]], sd[up[1]]])
        for key in block.layer.state_dict():
            if key.startswith("outnorm."):
                out[b_ours + "layer." + key] = sd[m + "multihead_norm." + key[len("outnorm.") :]]
            elif key.startswith("out_proj."):
                out[b_ours + "layer." + key] = sd[m + key]
            else:
                out[b_ours + "layer." + key] = parts[key]
        for ours_norm, theirs_norm in (("norm", "norm_mlstm"), ("ffn_norm", "norm_ffn")):
            for key in getattr(block, ours_norm).state_dict():
                out[f"{b_ours}{ours_norm}.{key}"] = sd[f"{b_theirs}{theirs_norm}.{key}"]
        for key in block.ffn.proj_down.state_dict():
            out[b_ours + "ffn.proj_down." + key] = sd[b_theirs + "ffn.proj_down." + key]
    return out


# --- the entry point -----------------------------------------------------------------------------------------


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
    ours = mLSTMLayer(**_mlstm_layer_args(c))
    return _load(ours, _mlstm_layer_weights(sd, "", ours), like)


def _import_slstm_layer(sd: dict, c, like: Tensor) -> nn.Module:
    _check_slstm_cell(c)
    ours = sLSTMLayer(c.embedding_dim, c.num_heads, c.conv1d_kernel_size, c.dropout)
    return _load(ours, _slstm_layer_weights(sd, "", ours, c.backend), like)


def _slstm_backend(c) -> str:
    return c.slstm_block.slstm.backend if c.slstm_block is not None else "vanilla"


def _import_stack(sd: dict, c, like: Tensor) -> nn.Module:
    ours = xLSTMStack(_stack_config(c))
    return _load(ours, _stack_weights(sd, "", ours, _slstm_backend(c)), like)


def _import_lm(sd: dict, c, like: Tensor) -> nn.Module:
    ours = xLSTMLM(_stack_config(c, c.vocab_size, c.tie_weights))
    stack = _stack_weights(sd, "xlstm_block_stack.", ours.stack, _slstm_backend(c))
    weights = {"stack." + k: v for k, v in stack.items()}
    weights["embedding.weight"] = sd["token_embedding.weight"]
    weights["head.weight"] = sd["lm_head.weight"]
    return _load(ours, weights, like)


def _import_large(sd: dict, c, like: Tensor) -> nn.Module:
    ours = xLSTMLarge(_large_config(c))
    return _load(ours, _large_weights(sd, c, ours), like)


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


def _their_lm_config(c: xLSTMConfig, context_length: int):
    from xlstm import (
        FeedForwardConfig,
        mLSTMBlockConfig,
        mLSTMLayerConfig,
        sLSTMBlockConfig,
        sLSTMLayerConfig,
        xLSTMLMModelConfig,
    )

    mlstm = mLSTMLayerConfig(
        conv1d_kernel_size=c.mlstm_conv_kernel,
        qkv_proj_blocksize=c.qkv_blocksize,
        num_heads=c.mlstm_heads,
        proj_factor=c.mlstm_proj_factor,
        round_proj_up_to_multiple_of=c.round_up_to,
    )
    slstm = sLSTMLayerConfig(
        backend="vanilla",
        num_heads=c.slstm_heads,
        conv1d_kernel_size=c.slstm_conv_kernel,
        dtype="float32",
        enable_automatic_mixed_precision=False,
    )
    ffn = FeedForwardConfig(
        proj_factor=c.ffn_proj_factor, act_fn=c.ffn_activation, bias=c.bias, round_proj_up_to_multiple_of=c.round_up_to
    )
    return xLSTMLMModelConfig(
        mlstm_block=mLSTMBlockConfig(mlstm=mlstm),
        slstm_block=sLSTMBlockConfig(slstm=slstm, feedforward=ffn),
        context_length=context_length,
        num_blocks=c.num_blocks,
        embedding_dim=c.embedding_dim,
        bias=c.bias,
        dropout=c.dropout,
        add_post_blocks_norm=c.final_norm,
        vocab_size=c.vocab_size,
        tie_weights=c.tie_weights,
        slstm_at=[i for i, letter in enumerate(c.blocks) if letter == "s"],
    )


def _lm_weights_to_theirs(ours: xLSTMLM) -> dict:
    """The inverse of the import: the same renames, minus 1 on norm scales, gates swapped back."""
    sd = ours.state_dict()
    out = {"token_embedding.weight": sd["embedding.weight"], "lm_head.weight": sd["head.weight"]}
    p = "xlstm_block_stack."
    if ours.config.final_norm:
        out[p + "post_blocks_norm.weight"] = sd["stack.norm.weight"] - 1
    renames = {
        "m": {
            "conv.": "conv1d.conv.",
            "igate.": "mlstm_cell.igate.",
            "fgate.": "mlstm_cell.fgate.",
            "outnorm.weight": "mlstm_cell.outnorm.weight",
            "skip": "learnable_skip",
        },
        "s": {"conv.": "conv1d.conv.", "igate.": "fgate.", "fgate.": "igate.", "outnorm.weight": "group_norm.weight"},
    }
    for index, letter in enumerate(ours.config.blocks):
        ours_block, theirs_block = f"stack.blocks.{index}.", f"{p}blocks.{index}."
        for key, value in sd.items():
            if not key.startswith(ours_block):
                continue
            key = key[len(ours_block) :]
            if key in ("norm.weight", "ffn_norm.weight"):
                out[theirs_block + ("xlstm_norm.weight" if key == "norm.weight" else key)] = value - 1
            elif key.startswith("ffn."):
                out[theirs_block + key] = value
            elif key == "layer.cell.R":
                NH, _, _, DH = value.shape  # vanilla layout (NH, 4·DH_out, DH_in)
                out[theirs_block + "xlstm.slstm_cell._recurrent_kernel_"] = value.reshape(NH, 4 * DH, DH)
            elif key == "layer.cell.b":
                out[theirs_block + "xlstm.slstm_cell._bias_"] = value
            else:
                key = key[len("layer.") :]
                name = next((key.replace(a, b, 1) for a, b in renames[letter].items() if key.startswith(a)), key)
                value = value[:, None, :] if key == "conv.weight" else value - 1 if key == "outnorm.weight" else value
                out[theirs_block + "xlstm." + name] = value
    return out


def to_xlstm(model: nn.Module, context_length: int = 2048) -> nn.Module:
    """Our xLSTMLM -> the authors' xLSTMLMModel (sLSTM backend "vanilla", CPU) computing the same function.

    `context_length` is the longest sequence their model's parallel mLSTM kernel accepts (it keeps a
    context_length² causal mask per mLSTM block)."""
    if not isinstance(model, xLSTMLM):
        raise Unsupported(f"cannot export a {type(model).__name__}: to_xlstm takes an lstmkit xLSTMLM")
    from xlstm import xLSTMLMModel

    weight = model.embedding.weight
    theirs = xLSTMLMModel(_their_lm_config(model.config, context_length)).to(dtype=weight.dtype, device=weight.device)
    theirs.load_state_dict({k: v.detach().clone() for k, v in _lm_weights_to_theirs(model).items()}, strict=True)
    return theirs.train(model.training)
