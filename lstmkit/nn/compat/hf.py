"""Hugging Face checkpoints: directories as transformers' `save_pretrained` writes them, read and written here.

    from lstmkit.nn.compat import from_hf, to_hf
    model = from_hf("mamba-130m-hf")              # a directory: config.json + model.safetensors (or shards + index)
    model = from_hf("big", dtype=torch.bfloat16)  # streamed: peak memory ≈ the bfloat16 model, not float32
    model = from_hf(their_model)                  # or a loaded transformers model (MambaForCausalLM, xLSTMForCausalLM)
    to_hf(model, "export")                        # AutoModelForCausalLM.from_pretrained("export") loads it
    to_hf(model, "export", max_shard_size="2GB")  # shards + index above 2 GB (default 5GB)

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

Loading streams, so that a checkpoint loads wherever the model itself fits: the peak is the model plus one
group of tensors in flight (one of their tensors as stored, and the converted parts of the group it belongs to).

1. Only the headers are read first (`read_tensors`): names, which file holds each, every file checked; no data.
2. The model is built on the meta device: names, shapes and dtypes, no memory and no initialisation. (Building
   it in the target dtype and copying into it would need no more memory, but run an init only to overwrite it.)
3. The format maps their names to ours one tensor or one group at a time (a fused tensor split, parts stacked:
   xLSTM's groups may span shards, so mapping a whole shard at a time would not do), indexing each of their
   tensors when it needs it (`Stored`): that one tensor is copied out of its memory-mapped file converted to the
   model's dtype, and the file is closed again. A file is opened per tensor, not per shard, because every page
   read through an open mapping stays resident until it is closed (measured: converting a 256 MB float32 file
   through one safe_open kept all 256 MB resident beside the 128 MB of bfloat16 copies; opened per tensor, 4 MB).
4. The converted tensors become the model's parameters (`load_state_dict(assign=True)`: not copied again);
   names that share one parameter (a tied head) share it again.

Measured (tests/nn/compat/test_hf_loading.py): a float32 xLSTMLarge loaded as bfloat16 peaks at 1.05-1.15 × the
bfloat16 model's bytes (52 and 153 MB models, sharded or whole), where reading every tensor first peaked at 4.9 ×.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import NamedTuple, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

import lstmkit.nn.compat.mamba_hf as mamba_hf
import lstmkit.nn.compat.xlstm_hf as xlstm_hf
from lstmkit.nn.mamba.lm import Mamba2LM, MambaLM
from lstmkit.nn.xlstm.large import xLSTMLarge

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
SHARD = "model-{:05d}-of-{:05d}.safetensors"
"""The shards' names, as transformers' save_pretrained writes them."""
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
MAX_SHARD_SIZE = "5GB"
"""to_hf's largest shard: huggingface_hub's default (transformers 5.23's save_pretrained writes up to 50GB)."""
UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
UNITS |= {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
"""Size units as transformers reads them: "5GB" is 5·10⁹ bytes, "1GiB" 2³⁰."""
T = TypeVar("T")


class Stored(Mapping[str, Tensor]):
    """Their tensors by name, each read when it is asked for: `stored[key]` is a fresh CPU tensor in `dtype` (None:
    as stored), never a view of a file or of their model, so what is built from it owns its memory. A key's
    source is the file holding it (opened for that one read) or, for a loaded transformers model, its tensor."""

    def __init__(self, sources: dict[str, Path | Tensor], dtype: torch.dtype | None = None) -> None:
        self.sources = sources
        self.dtype = dtype

    def raw(self, key: str) -> Tensor:
        """The tensor as stored: their model's own, or a view of the memory-mapped file (its data not read yet)."""
        source = self.sources[key]
        if isinstance(source, Tensor):
            return source
        return _open(source, lambda file: file.get_tensor(key))

    def __getitem__(self, key: str) -> Tensor:
        tensor = self.raw(key)
        return tensor.to(device="cpu", dtype=tensor.dtype if self.dtype is None else self.dtype, copy=True)

    def __contains__(self, key: object) -> bool:
        return key in self.sources  # without reading (Mapping's would read the tensor)

    def __iter__(self) -> Iterator[str]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def to(self, dtype: torch.dtype) -> Stored:
        return Stored(self.sources, dtype)


class Format(NamedTuple):
    config_from_hf: Callable[[dict], object]
    """Their config dict -> our config."""
    model_class: Callable[[object], type[nn.Module]]
    """Our config -> the model class to build."""
    weights_from_hf: Callable[[nn.Module, dict, Mapping[str, Tensor], str], dict[str, Tensor]]
    """(our model on the meta device, their config dict, their tensors, where) -> our state dict, checked. Their
    tensors read from disk when indexed: index each once, when it is needed, and keep only what is returned."""
    config_to_hf: Callable[[object, torch.dtype], dict]
    """(our config, dtype) -> their config dict, with model_type and architectures."""
    weights_to_hf: Callable[[nn.Module], dict[str, Tensor]]
    """Our model -> their tensors, as save_pretrained writes them."""


def _mamba_weights_from_hf(model: nn.Module, hf: dict, theirs: Mapping[str, Tensor], where: str) -> dict[str, Tensor]:
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
    """The lstmkit model of a Hugging Face directory or loaded model (its config's model_type: mamba, mamba2, xlstm),
    streamed (see the module's docstring): built on the meta device, filled one converted tensor at a time."""
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
    model = fmt.model_class(config)(config, device="meta", dtype=dtype)
    ours = fmt.weights_from_hf(model, hf, theirs.to(dtype), where)
    return _filled(model, {name: tensor.to(dtype) for name, tensor in ours.items()})


def _filled(model: nn.Module, ours: dict[str, Tensor]) -> nn.Module:
    """`model`, built on the meta device, with the tensors of `ours` as its parameters (assigned, not copied).
    load_state_dict(assign=True) gives each name its own Parameter, so names that shared one (a tied head) are
    pointed at one again."""
    first: dict[int, str] = {}
    shared = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        shared[name] = first.setdefault(id(param), name)
    model.load_state_dict(ours, strict=True, assign=True)
    for name, owner in shared.items():
        if name != owner:
            module, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(module), leaf, model.get_parameter(owner))
    for name, tensor in chain(model.named_parameters(), model.named_buffers()):
        if tensor.is_meta:
            raise RuntimeError(f"{type(model).__name__}: {name!r} is outside the state dict, so it was not loaded")
    return model


def to_hf(model: nn.Module, directory: str | os.PathLike, *, max_shard_size: int | str = MAX_SHARD_SIZE) -> Path:
    """Write `model` as a Hugging Face directory: config.json + model.safetensors, or, when the tensors exceed
    `max_shard_size` (bytes, or a string such as "2GB" or "500MiB"), shards of at most that size (a larger tensor
    alone in its own) and model.safetensors.index.json, as save_pretrained writes them. Returns its path."""
    if type(model) not in EXPORTS:
        names = ", ".join(cls.__name__ for cls in EXPORTS)
        raise ValueError(f"model is a {type(model).__name__}, expected one of {names}")
    limit = size_in_bytes(max_shard_size)
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
        write_tensors(staging, tensors, limit)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def size_in_bytes(size: int | str) -> int:
    """A positive number of bytes: an int, or a number and a unit of UNITS ("5GB", "1.5MB", "500MiB")."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    found = re.fullmatch(r"(\d+(?:\.\d+)?) ?([KMGT]i?B|B)", size) if isinstance(size, str) else None
    if found is None or found[2] not in UNITS or int(float(found[1]) * UNITS[found[2]]) < 1:
        raise ValueError(
            f"max_shard_size is {size!r}, expected a positive int of bytes or a size such as '5GB', '200MB', '1GiB'"
        )
    return int(float(found[1]) * UNITS[found[2]])


def _nbytes(tensor: Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def shards(tensors: dict[str, Tensor], limit: int) -> list[dict[str, Tensor]]:
    """The tensors in their order, a new shard whenever the next one would take this one past `limit` bytes."""
    split: list[dict[str, Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        if split[-1] and size + _nbytes(tensor) > limit:
            split.append({})
            size = 0
        split[-1][name] = tensor
        size += _nbytes(tensor)
    return split


def write_tensors(folder: Path, tensors: dict[str, Tensor], limit: int) -> None:
    """model.safetensors, or shards of at most `limit` bytes of tensors each and the index naming them."""
    split = shards(tensors, limit)
    if len(split) == 1:
        save_file({k: t.cpu() for k, t in tensors.items()}, str(folder / WEIGHTS), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(split):
        name = SHARD.format(i + 1, len(split))
        save_file({k: t.cpu() for k, t in shard.items()}, str(folder / name), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(shard, name)
    total = {
        "total_size": sum(map(_nbytes, tensors.values())),
        "total_parameters": sum(t.numel() for t in tensors.values()),
    }
    index = {"metadata": total, "weight_map": weight_map}
    (folder / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _loaded_model(source: nn.Module) -> tuple[dict, Stored, str]:
    where = type(source).__name__
    config = getattr(source, "config", None)
    if not callable(getattr(config, "to_dict", None)):
        raise ValueError(f"source is a {where} without a transformers config, expected a transformers model")
    return config.to_dict(), Stored(dict(source.state_dict())), where


def read_directory(folder: Path) -> tuple[dict, Stored, str]:
    """(config dict, their tensors (read when asked for), the directory's name for messages), every file checked."""
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


def read_tensors(folder: Path) -> Stored:
    """The tensors of model.safetensors, or of the shards model.safetensors.index.json names: headers checked,
    no data read yet."""
    if (folder / WEIGHTS).is_file():
        return Stored(dict.fromkeys(_keys(folder / WEIGHTS), folder / WEIGHTS))
    if (folder / INDEX).is_file():
        return _read_shards(folder)
    if any((folder / name).exists() for name in PICKLES):
        raise ValueError(
            f"{folder} holds only pytorch_model.bin (a pickle), expected {WEIGHTS}: lstmkit reads safetensors only, "
            "never unpickles (transformers' save_pretrained(..., safe_serialization=True) writes them)"
        )
    raise ValueError(f"{folder} has neither {WEIGHTS} nor {INDEX}, expected the model's safetensors")


def _open(path: Path, read: Callable[[object], T]) -> T:
    """read(the opened file), the file closed again; a damaged file is one ValueError."""
    try:
        with safe_open(str(path), framework="pt") as file:
            return read(file)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path} is not a valid safetensors file ({error})") from None


def _keys(path: Path) -> list[str]:
    return _open(path, lambda file: list(file.keys()))


def _read_shards(folder: Path) -> Stored:
    index_path = folder / INDEX
    index = _read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index_path} has no 'weight_map' object, expected {{tensor name: shard file}}")
    sources: dict[str, Path | Tensor] = {}
    for shard in sorted(set(weight_map.values()), key=str):
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise ValueError(f"{index_path} names shard {shard!r}, expected a file name inside {folder}")
        if not (folder / shard).is_file():
            raise ValueError(f"{index_path} names shard {shard!r}, which is missing from {folder}")
        listed = {key for key, name in weight_map.items() if name == shard}
        found = _keys(folder / shard)
        if set(found) != listed:
            odd = sorted(set(found) ^ listed)[0]
            where = "is in the file but not in the index" if odd in found else "is in the index but not in the file"
            raise ValueError(f"{folder / shard}: tensor {odd!r} {where}")
        sources |= dict.fromkeys(found, folder / shard)
    return Stored(sources)


def _checkpoint_dtype(theirs: Stored, where: str) -> torch.dtype:
    """The dtype of the embedding (of any tensor, when there is none): what the model is built in."""
    for key in ("backbone.embeddings.weight", "backbone.embedding.weight", *theirs):
        if key in theirs:
            dtype = theirs.raw(key).dtype
            if not dtype.is_floating_point:
                raise ValueError(f"{where}: tensor {key!r} is {dtype}, expected a floating dtype")
            return dtype
    raise ValueError(f"{where}: no tensors, expected the model's weights")
