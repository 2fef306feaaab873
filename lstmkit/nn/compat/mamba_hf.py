"""Hugging Face's Mamba and Mamba-2 (transformers 5.23.0, `model_type` "mamba" and "mamba2") <-> lstmkit's.

    their config.json                  ours (MambaConfig / Mamba2Config)
    hidden_size, num_hidden_layers     embedding_dim, num_layers
    state_size, expand, conv_kernel    the same names
    time_step_rank                     dt_rank (None when it is ⌈E / 16⌉, their "auto")
    time_step_min, _max, _floor        dt_min, dt_max, dt_init_floor
    time_step_limit (Mamba-2)          dt_limit
    n_groups, head_dim, chunk_size     num_groups, head_dim, chunk_size (num_heads must be I / head_dim)
    use_bias, use_conv_bias            bias, conv_bias
    layer_norm_epsilon                 norm_eps (the block norms, the final norm, Mamba-2's gated norm)
    tie_word_embeddings                tie_weights

    their tensor                               ours
    backbone.embeddings.weight                 embedding.weight
    backbone.layers.{i}.norm.weight            stack.blocks.{i}.norm.weight
    backbone.layers.{i}.mixer.NAME             stack.blocks.{i}.layer.NAME (conv1d.weight: (C, 1, K) there, (C, K))
    backbone.norm_f.weight                     stack.norm.weight
    lm_head.weight                             head.weight   (absent from their files when tied)

Fields that only steer their initialisation or their speed (initializer_range, time_step_scale,
time_step_init_scheme, rescale_prenorm_residual, use_mambapy, use_associative_scan, use_cache) are read
and dropped; a field that would change the function (hidden_act other than silu) is refused.
`residual_in_fp32` keeps their residual stream in float32 when the model runs in a lower precision; lstmkit
keeps it in the model's dtype, so the two agree exactly in float32 and float64 only (on export we write false,
which is what lstmkit computes).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lstmkit.nn.mamba.config import Mamba2Config, MambaConfig
from lstmkit.nn.mamba.lm import Mamba2LM, MambaLM

INIT_ONLY = (
    "initializer_range",
    "time_step_scale",
    "time_step_init_scheme",
    "rescale_prenorm_residual",
    "use_mambapy",
    "use_associative_scan",
    "use_cache",
)
"""Their fields with no effect on what a loaded model computes (documentation of what is dropped)."""

ARCHITECTURES = {"mamba": "MambaForCausalLM", "mamba2": "Mamba2ForCausalLM"}


def _field(hf: dict, name: str, kind: type | tuple[type, ...], default=None):
    """hf[name] of the given type (`default` when absent and not None), else one clear ValueError."""
    if name not in hf:
        if default is None:
            raise ValueError(f"config.json has no {name!r}, expected a {_kind_name(kind)}")
        return default
    value = hf[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ValueError(f"config.json {name!r} is {value!r}, expected a {_kind_name(kind)}")
    if not isinstance(value, kind):
        raise ValueError(f"config.json {name!r} is {value!r}, expected a {_kind_name(kind)}")
    return value


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _common_from_hf(hf: dict) -> dict:
    """The fields MambaConfig and Mamba2Config share, read from their config dict."""
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(
            f"config.json 'hidden_act' is {act!r}, expected 'silu' (the only activation lstmkit's Mamba has)"
        )
    number = (int, float)
    return {
        "vocab_size": _field(hf, "vocab_size", int),
        "embedding_dim": _field(hf, "hidden_size", int),
        "num_layers": _field(hf, "num_hidden_layers", int),
        "state_size": _field(hf, "state_size", int),
        "expand": _field(hf, "expand", int, 2),
        "conv_kernel": _field(hf, "conv_kernel", int, 4),
        "dt_min": float(_field(hf, "time_step_min", number, 0.001)),
        "dt_max": float(_field(hf, "time_step_max", number, 0.1)),
        "dt_init_floor": float(_field(hf, "time_step_floor", number, 1e-4)),
        "bias": _field(hf, "use_bias", bool, False),
        "conv_bias": _field(hf, "use_conv_bias", bool, True),
        "norm_eps": float(_field(hf, "layer_norm_epsilon", number, 1e-5)),
    }


def config_from_hf(hf: dict) -> MambaConfig | Mamba2Config:
    """Our config from their config dict (model_type "mamba" or "mamba2"); ValueError naming a bad field."""
    common = _common_from_hf(hf)
    try:
        if hf["model_type"] == "mamba":
            return _mamba_config(hf, common)
        return _mamba2_config(hf, common)
    except (TypeError, ValueError) as error:
        if str(error).startswith("config.json"):
            raise
        raise ValueError(f"config.json does not make a valid lstmkit config: {error}") from None


def _mamba_config(hf: dict, common: dict) -> MambaConfig:
    rank = _field(hf, "time_step_rank", (int, str), "auto")
    E = common["embedding_dim"]
    if rank == "auto" or rank == math.ceil(E / 16):
        rank = None
    elif isinstance(rank, str):
        raise ValueError(f"config.json 'time_step_rank' is {rank!r}, expected an integer or 'auto'")
    inner = hf.get("intermediate_size", common["expand"] * E)
    if inner != common["expand"] * E:
        raise ValueError(
            f"config.json 'intermediate_size' is {inner!r}, expected expand · hidden_size = {common['expand'] * E}"
        )
    tie = _field(hf, "tie_word_embeddings", bool, True)
    return MambaConfig(**common, dt_rank=rank, tie_weights=tie)


def _mamba2_config(hf: dict, common: dict) -> Mamba2Config:
    head_dim = _field(hf, "head_dim", int, 64)
    limit = _field(hf, "time_step_limit", (list, tuple), (0.0, math.inf))
    if len(limit) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in limit):
        raise ValueError(f"config.json 'time_step_limit' is {limit!r}, expected [low, high]")
    config = Mamba2Config(
        **common,
        head_dim=head_dim,
        num_groups=_field(hf, "n_groups", int, 8),
        chunk_size=_field(hf, "chunk_size", int, 256),
        dt_limit=(float(limit[0]), float(limit[1])),
        tie_weights=_field(hf, "tie_word_embeddings", bool, False),
    )
    heads = _field(hf, "num_heads", int, 128)
    if heads != config.num_heads:
        raise ValueError(
            f"config.json 'num_heads' is {heads}, expected expand · hidden_size / head_dim = {config.num_heads}"
        )
    return config


def config_to_hf(config: MambaConfig | Mamba2Config, dtype: torch.dtype) -> dict:
    """Their config dict (what `save_pretrained` writes, the fields lstmkit sets) for our config."""
    model_type = "mamba" if type(config) is MambaConfig else "mamba2"
    hf = {
        "architectures": [ARCHITECTURES[model_type]],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.embedding_dim,
        "num_hidden_layers": config.num_layers,
        "state_size": config.state_size,
        "expand": config.expand,
        "conv_kernel": config.conv_kernel,
        "time_step_min": config.dt_min,
        "time_step_max": config.dt_max,
        "time_step_floor": config.dt_init_floor,
        "use_bias": config.bias,
        "use_conv_bias": config.conv_bias,
        "layer_norm_epsilon": config.norm_eps,
        "hidden_act": "silu",
        "residual_in_fp32": False,
        "tie_word_embeddings": config.tie_weights,
        "dtype": str(dtype).removeprefix("torch."),
    }
    if model_type == "mamba":
        hf |= {"time_step_rank": config.rank, "intermediate_size": config.inner_size}
    else:
        hf |= {
            "num_heads": config.num_heads,
            "head_dim": config.head_dim,
            "n_groups": config.num_groups,
            "chunk_size": config.chunk_size,
            "time_step_limit": list(config.dt_limit),
            "time_step_rank": math.ceil(config.embedding_dim / 16),
        }
    return hf


def model_class(config: MambaConfig | Mamba2Config) -> type[MambaLM]:
    return MambaLM if type(config) is MambaConfig else Mamba2LM


def our_name(key: str) -> str | None:
    """Our parameter name for their key, or None when it is not one of theirs."""
    if key in ("backbone.embeddings.weight", "backbone.embedding.weight"):  # their load hook accepts both
        return "embedding.weight"
    if key == "backbone.norm_f.weight":
        return "stack.norm.weight"
    if key == "lm_head.weight":
        return "head.weight"
    parts = key.split(".", 4)
    if len(parts) == 5 and parts[:2] == ["backbone", "layers"] and parts[2].isdigit():
        if parts[3] == "norm" and parts[4] == "weight":
            return f"stack.blocks.{parts[2]}.norm.weight"
        if parts[3] == "mixer":
            return f"stack.blocks.{parts[2]}.layer.{parts[4]}"
    return None


def their_name(name: str) -> str:
    """Their key for our parameter name."""
    if name == "embedding.weight":
        return "backbone.embeddings.weight"
    if name == "stack.norm.weight":
        return "backbone.norm_f.weight"
    if name == "head.weight":
        return "lm_head.weight"
    _, _, i, part, rest = name.split(".", 4)
    return f"backbone.layers.{i}.norm.{rest}" if part == "norm" else f"backbone.layers.{i}.mixer.{rest}"


def weights_from_hf(model: MambaLM, theirs: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """Our state dict for `model` from their tensors: every name known, every one of ours present, shapes
    checked (their conv weight (C, 1, K) becomes (C, K)); a tied head must be absent or equal to the embedding."""
    expected = model.state_dict()
    ours: dict[str, Tensor] = {}
    for key, tensor in theirs.items():
        name = our_name(key)
        if name is None or name not in expected:
            raise ValueError(
                f"{where}: unexpected tensor {key!r} (not a parameter of a {type(model).__name__} of this config)"
            )
        if name in ours:
            raise ValueError(f"{where}: tensor {key!r} is given twice (as backbone.embedding and backbone.embeddings)")
        if name.endswith("conv1d.weight") and tensor.dim() == 3 and tensor.shape[1] == 1:
            tensor = tensor[:, 0]
        want = tuple(expected[name].shape)
        if tuple(tensor.shape) != want:
            shown = (want[0], 1, want[1]) if name.endswith("conv1d.weight") else want
            raise ValueError(f"{where}: tensor {key!r} has shape {tuple(tensor.shape)}, expected {shown}")
        ours[name] = tensor
    if model.config.tie_weights:
        head = ours.pop("head.weight", None)
        if head is not None and "embedding.weight" in ours and not torch.equal(head, ours["embedding.weight"]):
            raise ValueError(f"{where}: 'lm_head.weight' differs from the embeddings but tie_word_embeddings is true")
        if "embedding.weight" in ours:
            ours["head.weight"] = ours["embedding.weight"]
    missing = [their_name(name) for name in expected if name not in ours]
    if missing:
        raise ValueError(f"{where}: missing tensor {missing[0]!r} ({len(missing)} missing in all)")
    return ours


def _tied_head(model: MambaLM, name: str) -> bool:
    return name == "head.weight" and model.config.tie_weights


def weights_to_hf(model: MambaLM) -> dict[str, Tensor]:
    """Their tensors for our model (contiguous; the tied head left out, as `save_pretrained` leaves it out)."""
    theirs = {}
    for name, tensor in model.state_dict().items():
        if _tied_head(model, name):
            continue
        if name.endswith("conv1d.weight"):
            tensor = tensor[:, None, :]
        theirs[their_name(name)] = tensor.detach().contiguous()
    return theirs
