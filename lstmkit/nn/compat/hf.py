"""Hugging Face checkpoints: directories as transformers' `save_pretrained` writes them, read and written here.

    from lstmkit.nn.compat import from_hf, to_hf
    model = from_hf("mamba-130m-hf")              # a directory: config.json + model.safetensors (or shards + index)
    model = from_hf(their_model)                  # or a loaded transformers model (MambaForCausalLM, xLSTMForCausalLM)
    to_hf(model, "export")                        # AutoModelForCausalLM.from_pretrained("export") loads it

    directory/config.json                         model_type picks the format (FORMATS); architectures, fields
    directory/model.safetensors                   the tensors, by their names
    directory/model.safetensors.index.json        or {"weight_map": {name: shard file}} and the shards beside it

Safetensors only: nothing is unpickled, so a directory holding only `pytorch_model.bin` is refused. Every bad
input is one ValueError naming the file or the tensor and what was expected. The model's dtype is the
checkpoint's (its embedding's) unless `dtype` is given. `to_hf` writes into a temporary directory beside the
target and renames it into place, so a failed export leaves nothing half-written; it never overwrites a
non-empty directory. A format is a `Format` of five functions (config and weights, each way), one per
model_type: "mamba" and "mamba2" (`mamba_hf`), "xlstm" (`xlstm_hf`, lstmkit's xLSTMLarge); another family adds
its own entries to FORMATS and EXPORTS.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from lstmkit.nn.compat import mamba_hf, xlstm_hf
from lstmkit.nn.mamba.lm import Mamba2LM, MambaLM
from lstmkit.nn.xlstm.large import xLSTMLarge

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class Format(NamedTuple):
    config_from_hf: Callable[[dict], object]
    """Their config dict -> our config."""
    model_class: Callable[[object], type[nn.Module]]
    """Our config -> the model class to build."""
    weights_from_hf: Callable[[nn.Module, dict, dict[str, Tensor], str], dict[str, Tensor]]
    """(our fresh model, their config dict, their tensors, where) -> our state dict, checked."""
    config_to_hf: Callable[[object, torch.dtype], dict]
    """(our config, dtype) -> their config dict, with model_type and architectures."""
    weights_to_hf: Callable[[nn.Module], dict[str, Tensor]]
    """Our model -> their tensors, as save_pretrained writes them."""


def _mamba_weights_from_hf(model: nn.Module, hf: dict, theirs: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """Mamba's tensors do not depend on config fields beyond our config's."""
    return mamba_hf.weights_from_hf(model, theirs, where)


MAMBA = Format(
    mamba_hf.config_from_hf, mamba_hf.model_class, _mamba_weights_from_hf, mamba_hf.config_to_hf, mamba_hf.weights_to_hf
)
XLSTM = Format(
    xlstm_hf.config_from_hf,
    xlstm_hf.model_class,
    xlstm_hf.weights_from_hf,
    xlstm_hf.config_to_hf,
    xlstm_hf.weights_to_hf,
)
FORMATS = {"mamba": MAMBA, "mamba2": MAMBA, "xlstm": XLSTM}
"""model_type -> its format."""
EXPORTS = {MambaLM: MAMBA, Mamba2LM: MAMBA, xLSTMLarge: XLSTM}
"""Our model class -> its format."""


def from_hf(source: str | os.PathLike | nn.Module, *, dtype: torch.dtype | None = None) -> nn.Module:
    """The lstmkit model of a Hugging Face directory or loaded model (its config's model_type: mamba, mamba2, xlstm)."""
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise ValueError(f"dtype is {dtype!r}, expected a floating torch.dtype or None")
    if isinstance(source, nn.Module):
        hf, theirs, where = _loaded_model(source)
    elif isinstance(source, (str, os.PathLike)):
        hf, theirs, where = read_directory(Path(source))
    else:
        raise ValueError(f"source is a {type(source).__name__}, expected a directory or a transformers model")
    model_type = hf.get("model_type")
    if model_type not in FORMATS:
        raise ValueError(f"{where}: model_type is {model_type!r}, expected one of {', '.join(map(repr, FORMATS))}")
    fmt = FORMATS[model_type]
    config = fmt.config_from_hf(hf)
    if dtype is None:
        dtype = _checkpoint_dtype(theirs, where)
    model = fmt.model_class(config)(config, dtype=dtype)
    ours = fmt.weights_from_hf(model, hf, theirs, where)
    model.load_state_dict({name: tensor.to(dtype) for name, tensor in ours.items()}, strict=True)
    return model


def to_hf(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write `model` as a Hugging Face directory (config.json + model.safetensors); returns its path."""
    if type(model) not in EXPORTS:
        names = ", ".join(cls.__name__ for cls in EXPORTS)
        raise ValueError(f"model is a {type(model).__name__}, expected one of {names}")
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{target} exists and is not an empty directory; to_hf writes a new directory")
    fmt = EXPORTS[type(model)]
    tensors = fmt.weights_to_hf(model)
    hf = fmt.config_to_hf(model.config, next(iter(tensors.values())).dtype)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        (staging / CONFIG).write_text(json.dumps(_encode_floats(hf), indent=2, sort_keys=True) + "\n")
        save_file({k: t.cpu() for k, t in tensors.items()}, str(staging / WEIGHTS), metadata={"format": "pt"})
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _loaded_model(source: nn.Module) -> tuple[dict, dict[str, Tensor], str]:
    where = type(source).__name__
    config = getattr(source, "config", None)
    if not callable(getattr(config, "to_dict", None)):
        raise ValueError(f"source is a {where} without a transformers config, expected a transformers model")
    return config.to_dict(), dict(source.state_dict()), where


def read_directory(folder: Path) -> tuple[dict, dict[str, Tensor], str]:
    """(config dict, tensors by name, the directory's name for messages), every file checked."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory, expected a Hugging Face model directory")
    return read_config(folder), read_tensors(folder), str(folder)


def read_config(folder: Path) -> dict:
    path = folder / CONFIG
    if not path.is_file():
        raise ValueError(f"{path} is missing, expected the model's config.json")
    hf = _read_json(path)
    if not isinstance(hf, dict):
        raise ValueError(f"{path} holds a {type(hf).__name__}, expected a JSON object")
    return hf


def _read_json(path: Path):
    try:
        return _decode_floats(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None


SPECIAL_FLOATS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
"""transformers 5 writes a float JSON has no literal for as {"__float__": "Infinity"} (and reads bare Infinity too)."""


def _decode_floats(value):
    if isinstance(value, dict):
        if len(value) == 1 and value.get("__float__") in SPECIAL_FLOATS:
            return SPECIAL_FLOATS[value["__float__"]]
        return {key: _decode_floats(item) for key, item in value.items()}
    return [_decode_floats(item) for item in value] if isinstance(value, list) else value


def _encode_floats(value):
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, dict):
        return {key: _encode_floats(item) for key, item in value.items()}
    return [_encode_floats(item) for item in value] if isinstance(value, (list, tuple)) else value


def read_tensors(folder: Path) -> dict[str, Tensor]:
    """The tensors of model.safetensors, or of the shards model.safetensors.index.json names."""
    if (folder / WEIGHTS).is_file():
        return _read_safetensors(folder / WEIGHTS)
    if (folder / INDEX).is_file():
        return _read_shards(folder)
    if any((folder / name).exists() for name in PICKLES):
        raise ValueError(
            f"{folder} holds only pytorch_model.bin (a pickle), expected {WEIGHTS}: lstmkit reads safetensors only, "
            "never unpickles (transformers' save_pretrained(..., safe_serialization=True) writes them)"
        )
    raise ValueError(f"{folder} has neither {WEIGHTS} nor {INDEX}, expected the model's safetensors")


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        with safe_open(str(path), framework="pt") as file:
            return {key: file.get_tensor(key) for key in file.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path} is not a valid safetensors file ({error})") from None


def _read_shards(folder: Path) -> dict[str, Tensor]:
    index_path = folder / INDEX
    index = _read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index_path} has no 'weight_map' object, expected {{tensor name: shard file}}")
    tensors: dict[str, Tensor] = {}
    for shard in sorted(set(weight_map.values()), key=str):
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise ValueError(f"{index_path} names shard {shard!r}, expected a file name inside {folder}")
        if not (folder / shard).is_file():
            raise ValueError(f"{index_path} names shard {shard!r}, which is missing from {folder}")
        listed = {key for key, name in weight_map.items() if name == shard}
        found = _read_safetensors(folder / shard)
        if set(found) != listed:
            odd = sorted(set(found) ^ listed)[0]
            where = "is in the file but not in the index" if odd in found else "is in the index but not in the file"
            raise ValueError(f"{folder / shard}: tensor {odd!r} {where}")
        tensors |= found
    return tensors


def _checkpoint_dtype(theirs: dict[str, Tensor], where: str) -> torch.dtype:
    """The dtype of the embedding (of any tensor, when there is none): what the model is built in."""
    for key in ("backbone.embeddings.weight", "backbone.embedding.weight", *theirs):
        if key in theirs:
            dtype = theirs[key].dtype
            if not dtype.is_floating_point:
                raise ValueError(f"{where}: tensor {key!r} is {dtype}, expected a floating dtype")
            return dtype
    raise ValueError(f"{where}: no tensors, expected the model's weights")
