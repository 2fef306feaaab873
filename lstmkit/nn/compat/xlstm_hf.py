"""Hugging Face's xLSTM (transformers 5.23.0, `model_type` "xlstm", xLSTMForCausalLM) <-> lstmkit's xLSTMLarge.

    their config.json                         ours (xLSTMLargeConfig)
    hidden_size = embedding_dim               embedding_dim (they keep both; they must agree, both are written)
    num_hidden_layers = num_blocks            num_blocks (the same)
    num_heads, qk_dim_factor, v_dim_factor    the same names
    use_bias, add_out_norm, norm_eps, eps     the same names
    gate_soft_cap, output_logit_soft_cap      the same names (null: no cap, as the authors' package reads None)
    ffn_proj_factor                           ffn_proj_factor
    ffn_round_up_to_multiple_of               ffn_round_up_to
    chunk_size                                chunk_size (speed only)
    weight_mode "single" or "fused"           the layout of their tensors; ours is always single (split on import)
    tie_word_embeddings                       no field: the head is its own matrix (see 3.)

    their tensor (weight_mode "single")                   ours
    backbone.embeddings.weight                            embedding.weight
    backbone.blocks.{i}.norm_mlstm.W                      blocks.{i}.norm.W              (W: weight, or bias too)
    backbone.blocks.{i}.mlstm_layer.{q,k,v}.W             blocks.{i}.layer.{q,k,v}.W
    backbone.blocks.{i}.mlstm_layer.{o,i,f}gate_preact.W  blocks.{i}.layer.{o,i,f}gate.W
    backbone.blocks.{i}.mlstm_layer.multihead_norm.W      blocks.{i}.layer.outnorm.W
    backbone.blocks.{i}.mlstm_layer.out_proj.W            blocks.{i}.layer.out_proj.W
    backbone.blocks.{i}.norm_ffn.W                        blocks.{i}.ffn_norm.W
    backbone.blocks.{i}.ffn.proj_up_gate.W, .proj_up.W    blocks.{i}.ffn.proj_up.W = [gate | up] (rows stacked)
    backbone.blocks.{i}.ffn.proj_down.W                   blocks.{i}.ffn.proj_down.W
    backbone.out_norm.W                                   norm.W
    lm_head.weight                                        head.weight
    weight_mode "fused": mlstm_layer.qkv_opreact.W = [q | k | v | ogate], mlstm_layer.ifgate_preact.W = [igate |
    fgate], ffn.proj_up_gate_z.W = our ffn.proj_up.W (rows stacked, as `xlstm_weights.large_weights` splits them).

These are the xLSTM authors' xLSTMLarge keys (`lstmkit.nn.compat.xlstm`) but for the embedding (theirs:
`embedding.weight`). Where transformers computes something other than the authors' package, lstmkit follows
the authors (and lstmkit's own conventions):

1. The out norm. transformers always builds and applies `backbone.out_norm`, even with add_out_norm false;
   the authors (and lstmkit) then have none. A directory with add_out_norm false loads as add_out_norm false
   (its stored out_norm tensors are dropped), so its logits are the authors' xLSTMLarge's, not transformers'
   (which are lstmkit's with add_out_norm true). `to_hf` refuses such a model: transformers would compute
   a different function.
2. The widths. The layers' q/k and v widths are int(E · factor), as the authors' (and lstmkit's); transformers'
   config rounds them up to a multiple of 64 for its cache (xLSTMCache), so with any other width its cache,
   which forward uses by default and generate always, does not fit its own layers. lstmkit sizes its state
   from the layers. On export we write use_cache false when the rounded cache would not fit, so transformers'
   forward and generate run without it.
3. The tied head. transformers' xLSTMForCausalLM never ties lm_head to the embeddings (tie_word_embeddings
   changes nothing it computes) and saves lm_head.weight either way; the authors have no tie at all. lstmkit
   reads lm_head.weight whatever the flag; only when it is absent and the flag is true does the head copy the
   embedding (transformers would start a random head there). We write tie_word_embeddings false.
4. The out norm's bias. With use_bias true the authors' out norm has a bias (so has lstmkit's); transformers'
   has none. A directory without `backbone.out_norm.bias` loads with a zero bias (what transformers computes);
   `to_hf` leaves the bias out and refuses a model whose bias is not zero.
5. The fresh state. transformers (its cache and its kernels' default) and the authors start from m = 0,
   lstmkit from the empty memory m = -inf: the same memory C·exp(m), n·exp(m), different stabilizers, and
   outputs that differ only through the eps of the denominator (float64, the tests' tiny models: ~1e-10
   relative with eps 1e-6, ~1e-6 with eps 1e-4). Pass lstmkit explicit mLSTMState.zeros states to start where
   they do.

Fields that only steer their kernels, speed or initialisation (chunkwise_kernel, sequence_kernel, step_kernel,
mode, return_last_states, autocast_kernel_dtype, inference_state_dtype, max_inference_chunksize, use_cache,
the token ids) are ignored. norm_reduction_force_float32 computes their norms in float32 whatever the dtype,
their kernels keep states in float32 (inference_state_dtype) and their logits are returned as float32; lstmkit
computes in the model's dtype, so the two agree in float32 (and a float64 model only to float32's rounding);
we write norm_reduction_force_float32 false. transformers 5.23 cannot initialise a fused model itself (its
_init_weights fails on the fused gate bias), so neither `xLSTMForCausalLM(config)` nor `from_pretrained` of a
fused directory runs there; lstmkit reads fused directories and writes single ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.nn.xlstm.large import xLSTMLarge, xLSTMLargeConfig

DROPPED = (
    "chunkwise_kernel",
    "sequence_kernel",
    "step_kernel",
    "mode",
    "return_last_states",
    "autocast_kernel_dtype",
    "inference_state_dtype",
    "max_inference_chunksize",
    "use_cache",
    "norm_reduction_force_float32",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)
"""Their fields with no effect on what a loaded model computes in float32 (documentation of what is dropped)."""

WEIGHT_MODES = ("single", "fused")
CACHE_MULTIPLE = 64
"""transformers' xLSTMConfig.qk_dim and v_dim: int(E · factor) rounded up to a multiple of this (its cache only)."""

BLOCK = {
    "norm": "norm_mlstm",
    "ffn_norm": "norm_ffn",
    "layer.outnorm": "mlstm_layer.multihead_norm",
    "layer.out_proj": "mlstm_layer.out_proj",
    "ffn.proj_down": "ffn.proj_down",
}
"""Our module in block i -> theirs in backbone.blocks.i, one to one in both layouts."""
STACKED = {
    "single": (
        (("layer.q",), ("mlstm_layer.q",)),
        (("layer.k",), ("mlstm_layer.k",)),
        (("layer.v",), ("mlstm_layer.v",)),
        (("layer.ogate",), ("mlstm_layer.ogate_preact",)),
        (("layer.igate",), ("mlstm_layer.igate_preact",)),
        (("layer.fgate",), ("mlstm_layer.fgate_preact",)),
        (("ffn.proj_up",), ("ffn.proj_up_gate", "ffn.proj_up")),
    ),
    "fused": (
        (("layer.q", "layer.k", "layer.v", "layer.ogate"), ("mlstm_layer.qkv_opreact",)),
        (("layer.igate", "layer.fgate"), ("mlstm_layer.ifgate_preact",)),
        (("ffn.proj_up",), ("ffn.proj_up_gate_z",)),
    ),
}
"""weight mode -> (our modules, their modules) with the rows of ours stacked == the rows of theirs stacked."""
OUT_NORM_BIAS = "backbone.out_norm.bias"
"""The authors' out norm has this bias with use_bias; transformers' never has."""
CAPS = {"gate_soft_cap": 15.0, "output_logit_soft_cap": 30.0}
"""The soft caps and their defaults."""


class Group(NamedTuple):
    """Parameters whose rows, stacked along dim 0, are the same on both sides."""

    ours: tuple[str, ...]
    """Our parameter names, in row order."""
    theirs: tuple[str, ...]
    """Their tensor names, in row order."""


# --- configuration ------------------------------------------------------------------------------------------


def _field(hf: dict, name: str, kind: type | tuple[type, ...], default=None, *, nullable: bool = False):
    """hf[name] of the given type (`default` when absent; required when default is None and not nullable)."""
    if name not in hf:
        if default is None and not nullable:
            raise ValueError(f"config.json has no {name!r}, expected {_kind_name(kind)}")
        return default
    value = hf[name]
    if value is None and nullable:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ValueError(f"config.json {name!r} is {value!r}, expected {_kind_name(kind)}")
    return value


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return "a number" if float in kinds else " or ".join(f"a {k.__name__}" for k in kinds)


def _one_of_two(hf: dict, ours: str, alias: str) -> int:
    """Their width or depth, written under two names (either may be absent or null): present ones must agree."""
    values = {name: _field(hf, name, int, nullable=True) for name in (ours, alias)}
    given = {name: value for name, value in values.items() if value is not None}
    if not given:
        raise ValueError(f"config.json has neither {alias!r} nor {ours!r}, expected a positive integer")
    if len(set(given.values())) > 1:
        raise ValueError(
            f"config.json {alias!r} is {values[alias]} but {ours!r} is {values[ours]}, expected the same value "
            "(transformers builds the blocks from one and the head from the other)"
        )
    return next(iter(given.values()))


def weight_mode(hf: dict) -> str:
    mode = _field(hf, "weight_mode", str, "single")
    if mode not in WEIGHT_MODES:
        raise ValueError(f"config.json 'weight_mode' is {mode!r}, expected 'single' or 'fused'")
    return mode


def config_from_hf(hf: dict) -> xLSTMLargeConfig:
    """Our config from their config dict (model_type "xlstm"); ValueError naming a bad field."""
    weight_mode(hf)
    _field(hf, "tie_word_embeddings", bool, False)
    number = (int, float)
    caps = {name: _field(hf, name, number, default, nullable=True) for name, default in CAPS.items()}
    fields = {
        "vocab_size": _field(hf, "vocab_size", int),
        "embedding_dim": _one_of_two(hf, "embedding_dim", "hidden_size"),
        "num_blocks": _one_of_two(hf, "num_blocks", "num_hidden_layers"),
        "num_heads": _field(hf, "num_heads", int, 8),
        "qk_dim_factor": float(_field(hf, "qk_dim_factor", number, 0.5)),
        "v_dim_factor": float(_field(hf, "v_dim_factor", number, 1.0)),
        "ffn_proj_factor": float(_field(hf, "ffn_proj_factor", number, 2.667)),
        "ffn_round_up_to": _field(hf, "ffn_round_up_to_multiple_of", int, 64),
        **{name: None if cap is None else float(cap) for name, cap in caps.items()},
        "norm_eps": float(_field(hf, "norm_eps", number, 1e-6)),
        "eps": float(_field(hf, "eps", number, 1e-6)),
        "use_bias": _field(hf, "use_bias", bool, False),
        "add_out_norm": _field(hf, "add_out_norm", bool, True),
        "chunk_size": _field(hf, "chunk_size", int, 64),
    }
    try:
        return xLSTMLargeConfig(**fields)
    except (TypeError, ValueError) as error:
        raise ValueError(f"config.json does not make a valid lstmkit config: {error}") from None


def cache_width(width: float) -> int:
    """transformers' rounding of its cache's widths (xLSTMConfig.qk_dim, v_dim): up to a multiple of 64."""
    return int((width + CACHE_MULTIPLE - 1) // CACHE_MULTIPLE * CACHE_MULTIPLE)


def cache_fits(config: xLSTMLargeConfig) -> bool:
    """Whether transformers' cache, sized from widths rounded up to 64, has the head dims of its layers."""
    NH = config.num_heads
    E = config.embedding_dim
    rounded = [cache_width(E * factor) // NH for factor in (config.qk_dim_factor, config.v_dim_factor)]
    return rounded == [config.qk_dim // NH, config.v_dim // NH]


def config_to_hf(config: xLSTMLargeConfig, dtype: torch.dtype) -> dict:
    """Their config dict (what `save_pretrained` writes, the fields lstmkit sets) for our config."""
    if not config.add_out_norm:
        raise ValueError(
            "an xLSTMLarge with add_out_norm=False cannot be written for transformers: transformers 5.23 applies "
            "its out_norm whatever add_out_norm says, so it would compute a different function"
        )
    for name in CAPS:
        if getattr(config, name) is None:
            raise ValueError(
                f"an xLSTMLarge with {name}=None cannot be written for transformers: its xLSTMConfig "
                f"requires a number for {name!r}"
            )
    return {
        "architectures": ["xLSTMForCausalLM"],
        "model_type": "xlstm",
        "vocab_size": config.vocab_size,
        "hidden_size": config.embedding_dim,
        "embedding_dim": config.embedding_dim,
        "num_hidden_layers": config.num_blocks,
        "num_blocks": config.num_blocks,
        "num_heads": config.num_heads,
        "qk_dim_factor": config.qk_dim_factor,
        "v_dim_factor": config.v_dim_factor,
        "ffn_proj_factor": config.ffn_proj_factor,
        "ffn_round_up_to_multiple_of": config.ffn_round_up_to,
        "gate_soft_cap": config.gate_soft_cap,
        "output_logit_soft_cap": config.output_logit_soft_cap,
        "norm_eps": config.norm_eps,
        "eps": config.eps,
        "use_bias": config.use_bias,
        "add_out_norm": True,
        "chunk_size": config.chunk_size,
        "weight_mode": "single",
        "tie_word_embeddings": False,
        "norm_reduction_force_float32": False,
        "use_cache": cache_fits(config),
        "dtype": str(dtype).removeprefix("torch."),
    }


def model_class(config: xLSTMLargeConfig) -> type[xLSTMLarge]:
    return xLSTMLarge


# --- weights ------------------------------------------------------------------------------------------------


def groups(model: xLSTMLarge, mode: str) -> list[Group]:
    """The whole mapping for `model` with their tensors in `mode`: every one of our parameters in one group."""
    names = model.state_dict()
    modules = [
        (("embedding",), ("backbone.embeddings",)),
        (("head",), ("lm_head",)),
        (("norm",), ("backbone.out_norm",)),
    ]
    for i in range(model.config.num_blocks):
        block = [((ours,), (theirs,)) for ours, theirs in BLOCK.items()] + list(STACKED[mode])
        for ours, theirs in block:
            modules.append((tuple(f"blocks.{i}.{o}" for o in ours), tuple(f"backbone.blocks.{i}.{t}" for t in theirs)))
    found = []
    for ours, theirs in modules:
        for suffix in ("weight", "bias"):
            if f"{ours[0]}.{suffix}" in names:
                found.append(Group(tuple(f"{o}.{suffix}" for o in ours), tuple(f"{t}.{suffix}" for t in theirs)))
    return found


def _their_shapes(group: Group, expected: dict[str, Tensor]) -> list[tuple[int, ...]]:
    """Their tensors' shapes: our rows stacked, split evenly among theirs."""
    first = tuple(expected[group.ours[0]].shape)
    rows = sum(expected[name].shape[0] for name in group.ours) // len(group.theirs)
    return [(rows, *first[1:])] * len(group.theirs)


def weights_from_hf(model: xLSTMLarge, hf: dict, theirs: Mapping[str, Tensor], where: str) -> dict[str, Tensor]:
    """Our state dict for `model` from their tensors laid out as hf's weight_mode: every name known, every one of
    ours present, shapes checked, fused tensors split; add_out_norm false drops their (unused by us) out_norm.
    One group at a time (`groups`): only names and shapes are needed up front (`model` may be on the meta
    device), and each of their tensors is indexed once, when its group is built (`theirs` may read it from disk
    then), so a group's tensors are all that is held beside what is returned."""
    mode = weight_mode(hf)
    expected = model.state_dict()
    table = groups(model, mode)
    known = {name for group in table for name in group.theirs}
    if not model.config.add_out_norm:
        known |= {"backbone.out_norm.weight", "backbone.out_norm.bias"}
    for key in theirs:
        if key not in known:
            raise ValueError(
                f"{where}: unexpected tensor {key!r} (not a parameter of a weight_mode {mode!r} xLSTMForCausalLM "
                "of this config)"
            )
    source = {name: name for name in theirs}  # their name -> the key it is read from
    tied = _field(hf, "tie_word_embeddings", bool, False)
    if "lm_head.weight" not in theirs and tied and "backbone.embeddings.weight" in theirs:
        source["lm_head.weight"] = "backbone.embeddings.weight"
    zero_bias = "norm.bias" in expected and OUT_NORM_BIAS not in theirs  # transformers' out norm has no bias (4.)
    missing = [n for g in table for n in g.theirs if n not in source and not (zero_bias and n == OUT_NORM_BIAS)]
    if missing:
        raise ValueError(f"{where}: missing tensor {missing[0]!r} ({len(missing)} missing in all)")
    ours: dict[str, Tensor] = {}
    for group in table:
        if zero_bias and group.theirs == (OUT_NORM_BIAS,):
            ours["norm.bias"] = torch.zeros_like(expected["norm.bias"], device="cpu")
            continue
        parts = [theirs[source[name]] for name in group.theirs]
        for name, part, shape in zip(group.theirs, parts, _their_shapes(group, expected), strict=True):
            if tuple(part.shape) != shape:
                raise ValueError(f"{where}: tensor {name!r} has shape {tuple(part.shape)}, expected {shape}")
        ours |= _split(group, parts, expected)
    return ours


def _split(group: Group, parts: list[Tensor], expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our tensors of `group` from their parts: rows stacked, then split. A split piece is copied out of the
    stacked rows, so that each of our parameters owns its memory as a freshly built one does (a view would share
    one storage with its neighbours and keep the whole fused tensor alive)."""
    stacked = parts[0] if len(parts) == 1 else torch.cat(parts)
    if len(group.ours) == 1:
        return {group.ours[0]: stacked}
    pieces = stacked.split([expected[name].shape[0] for name in group.ours])
    return {name: piece.clone() for name, piece in zip(group.ours, pieces, strict=True)}


def weights_to_hf(model: xLSTMLarge) -> dict[str, Tensor]:
    """Their tensors for our model, weight_mode "single" (contiguous, as `save_pretrained` writes them), without
    the out norm's bias, which transformers does not have (it must be zero)."""
    sd = model.state_dict()
    theirs = {}
    for group in groups(model, "single"):
        stacked = torch.cat([sd[name].detach() for name in group.ours])
        theirs |= {name: t.contiguous() for name, t in zip(group.theirs, stacked.chunk(len(group.theirs)), strict=True)}
    bias = theirs.pop(OUT_NORM_BIAS, None)
    if bias is not None and bool(bias.any()):
        raise ValueError(
            "norm.bias of this xLSTMLarge is not zero, but transformers' out_norm has no bias: it cannot be "
            "written for transformers"
        )
    return theirs
