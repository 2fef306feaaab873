"""The files of a run folder, read as untrusted input: each is checked against its schema before use.

    RUN/latest                  a regular file, at most 256 bytes: the name step-<digits> of a checkpoint folder
    RUN/step-N/meta.json        a JSON object (below)
    RUN/step-N/state.pt         {"optimizer": {"state": {int: {str: tensor}}, "param_groups": [dict]},
                                 "rng": {"data": uint8 tensor (N,), "torch": uint8 tensor (N,)}}
    RUN/metrics.jsonl           one JSON object per line, each with "step" (int ≥ 0) and "split" (str)

meta.json holds "step" (int ≥ 0) and, when written by `lstmkit train`, "task" {"name": str, "args": {str: value}},
"spec" (TaskSpec's fields), "model" (ModelConfig's fields), "train" (TrainConfig's fields), "metrics" {str:
number}, "vocab" [str] for character models. Every field of a config must be present, of its annotated type,
with no unknown keys, and pass the config's own checks.

A file of the wrong type or structure raises CheckpointError (a ValueError: one line in the CLI) naming the file
and the field; never a KeyError or TypeError later. Messages quote what they found in at most SHOWN characters
(repr), so a planted file's content is never echoed. Validation is plain functions, no schema library.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
from pathlib import Path

import torch

SHOWN = 60
"""The most characters of a file's content (its repr) an error message quotes."""
LATEST_LIMIT = 256
"""`latest` is a short name; a longer file is corrupt (and is not read whole)."""
META_LIMIT = 64 * 2**20
"""meta.json holds configs and a vocabulary: 64 MiB is far beyond any real one."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or from a different model (the message says which)."""


def excerpt(value: object) -> str:
    """repr(value) cut to SHOWN characters."""
    return cut(repr(value))


def cut(text: str, limit: int = SHOWN) -> str:
    """`text`, or its first limit - 3 characters and '...'."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_regular(path: Path, limit: int | None = None):
    """A binary file object for `path`, refusing symlinks (O_NOFOLLOW), non-regular files and files over `limit`.

    Raises FileNotFoundError when it is missing, CheckpointError for anything else that is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise
        if os.path.islink(path):
            raise CheckpointError(f"{path} is a symlink, expected a regular file (symlinks are not followed)") from None
        raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CheckpointError(f"{path} is not a regular file")
    if limit is not None and info.st_size > limit:
        os.close(fd)
        raise CheckpointError(f"{path} is corrupt: {info.st_size:,} bytes, expected at most {limit:,}")
    return os.fdopen(fd, "rb")


def read_regular(path: Path, limit: int) -> bytes:
    with open_regular(path, limit) as f:
        return f.read(limit + 1)


def parse_latest(data: bytes, path: Path) -> str:
    """The checkpoint name `latest` holds: step-<digits>, nothing else (no path, no '..')."""
    try:
        name = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is corrupt: {excerpt(data)} is not text, expected a name step-N") from None
    if not is_step_name(name):
        raise CheckpointError(
            f"{path} is corrupt: it holds {excerpt(name)}, expected a name step-N "
            "of a checkpoint folder inside the run folder"
        )
    return name


def is_step_name(name: str) -> bool:
    """step-<ASCII digits>, e.g. step-00000500 (the digits grow past 8 from step 100,000,000)."""
    digits = name.removeprefix("step-")
    return name.startswith("step-") and digits.isascii() and digits.isdigit()


def step_of(name: str) -> int:
    return int(name.removeprefix("step-"))


# ---- meta.json ------------------------------------------------------------------------------------------------


def parse_meta(data: bytes, path: Path) -> dict:
    """meta.json's bytes -> the checked dict (see the module docstring); `path` is the checkpoint folder."""
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        reason = _first_line(error)
        raise CheckpointError(f"checkpoint {path} is corrupt: meta.json is not valid JSON ({reason})") from None
    check_meta(meta, path)
    return meta


def check_meta(meta: object, path: Path) -> None:
    from lstmkit.models import ModelConfig  # here, not at the top: train.py imports this module's users
    from lstmkit.tasks.base import TaskSpec
    from lstmkit.train import TrainConfig

    if not isinstance(meta, dict):
        _wrong(path, "meta.json", meta, "a JSON object")
    if "step" not in meta:
        raise CheckpointError(f"checkpoint {path} is corrupt: meta.json has no field step")
    _check_count(meta["step"], path, "step")
    if "task" in meta:
        task = meta["task"]
        if not isinstance(task, dict) or set(task) != {"name", "args"}:
            _wrong(path, "task", task, 'an object {"name": ..., "args": {...}}')
        _check_type(task["name"], str, path, "task.name")
        if not isinstance(task["args"], dict):
            _wrong(path, "task.args", task["args"], "an object")
        for key, value in task["args"].items():
            if isinstance(value, (dict, list)) or value is None:
                _wrong(path, f"task.args.{key}", value, "a number or a string")
    for key, cls in (("spec", TaskSpec), ("model", ModelConfig), ("train", TrainConfig)):
        if key in meta:
            check_config(cls, meta[key], path, key)
    if "metrics" in meta:
        metrics = meta["metrics"]
        if not isinstance(metrics, dict):
            _wrong(path, "metrics", metrics, "an object of numbers")
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                _wrong(path, f"metrics.{name}", value, "a number")
    if "vocab" in meta:
        vocab = meta["vocab"]
        if not isinstance(vocab, list) or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
            _wrong(path, "vocab", vocab, "a list of single characters")


ADDED_LATER = {"model": {"state_size", "dropout"}, "train": {"curriculum", "init_from"}}
"""Config fields that runs written by earlier versions lack: a missing one reads as its default (the value those
runs had in effect); every other field must be present."""


def check_config(cls, value: object, path: Path, where: str) -> None:
    """`value` holds exactly the fields of dataclass `cls`, each of its annotated type, and builds a `cls`."""
    if not isinstance(value, dict):
        _wrong(path, where, value, f"an object with the fields of {cls.__name__}")
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: meta.json field {where} has unknown keys "
            f"{cut(', '.join(map(str, unknown)))}"
        )
    missing = sorted(set(fields) - set(value) - ADDED_LATER.get(where, set()))
    if missing:
        raise CheckpointError(f"checkpoint {path} is corrupt: meta.json field {where} lacks {', '.join(missing)}")
    for name, annotation in fields.items():
        if name in value and not _has_type(value[name], str(annotation)):
            _wrong(path, f"{where}.{name}", value[name], f"of type {annotation}")
    try:
        cls(**value)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt: meta.json field {where}: {_first_line(error)}") from None


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}


def _has_type(value: object, annotation: str) -> bool:
    """Whether a JSON value fits an annotation written as names joined by '|' (int, float, str, bool, None)."""
    allowed = tuple(t for name in annotation.split("|") for t in _TYPES[name.strip()])
    if isinstance(value, bool) and bool not in allowed:
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, allowed)


def _check_count(value: object, path: Path, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _wrong(path, field, value, "an integer ≥ 0")


def _check_type(value: object, kind: type, path: Path, field: str) -> None:
    if not isinstance(value, kind):
        _wrong(path, field, value, f"a {kind.__name__}")


def _wrong(path: Path, field: str, value: object, expected: str):
    file = "meta.json" if field == "meta.json" else f"meta.json field {field}"
    raise CheckpointError(f"checkpoint {path} is corrupt: {file} is {excerpt(value)}, expected {expected}")


# ---- state.pt -------------------------------------------------------------------------------------------------


def load_state(folder: Path) -> dict:
    """A checkpoint folder's state.pt -> the checked dict, read with torch.load(weights_only=True): tensors and
    containers, never code."""
    path = folder / "state.pt"
    try:
        with open_regular(path) as f:
            state = torch.load(f, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {folder} is incomplete: state.pt is missing") from None
    except CheckpointError:
        raise
    except Exception as error:  # torch.load's errors on damaged or foreign files vary by version
        reason = _torch_reason(error)
        raise CheckpointError(f"checkpoint {folder} is corrupt: state.pt cannot be read ({reason})") from None
    check_state(state, folder)
    return state


def check_state(state: object, path: Path) -> None:
    if not isinstance(state, dict):
        _bad_state(path, "state.pt", state, "a dict")
    for key in ("optimizer", "rng"):
        if key not in state:
            raise CheckpointError(f"checkpoint {path} is corrupt: state.pt has no {key}")
    optimizer = state["optimizer"]
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("state"), dict):
        _bad_state(path, "optimizer", optimizer, 'an optimizer state_dict (a dict with "state" and "param_groups")')
    groups = optimizer.get("param_groups")
    if not isinstance(groups, list) or not all(
        isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups
    ):
        _bad_state(path, "optimizer.param_groups", groups, 'a list of dicts with "params"')
    for index, entry in optimizer["state"].items():
        if not isinstance(entry, dict) or not all(isinstance(v, torch.Tensor) for v in entry.values()):
            _bad_state(path, f"optimizer.state[{excerpt(index)}]", entry, "a dict of tensors")
    rng = state["rng"]
    if not isinstance(rng, dict):
        _bad_state(path, "rng", rng, 'a dict with "data" and "torch"')
    for key in ("data", "torch"):
        value = rng.get(key)
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.dim() != 1:
            _bad_state(path, f"rng.{key}", value, "a 1-D uint8 tensor (a generator's state)")


def check_optimizer_fits(state: dict, parameters: list[torch.Tensor], path: Path) -> None:
    """The optimizer state's tensors have the shapes of the parameters they belong to (AdamW's moments)."""
    indices = [i for group in state["optimizer"]["param_groups"] for i in group["params"]]
    if len(indices) != len(parameters):
        raise CheckpointError(
            f"checkpoint {path} is from a different model: state.pt's optimizer holds "
            f"{len(indices)} parameters, the model has {len(parameters)}"
        )
    for index, moments in state["optimizer"]["state"].items():
        if index not in indices:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: state.pt's optimizer.state has an entry "
                f"{excerpt(index)} that no parameter group names"
            )
        shape = parameters[indices.index(index)].shape
        for name, tensor in moments.items():
            if tensor.dim() > 0 and tensor.shape != shape:
                raise CheckpointError(
                    f"checkpoint {path} is from a different model: state.pt's optimizer.state"
                    f"[{index}].{name} has shape {tuple(tensor.shape)}, the parameter "
                    f"{tuple(shape)}"
                )


def _bad_state(path: Path, field: str, value: object, expected: str):
    tensor = isinstance(value, torch.Tensor)
    shown = f"a {value.dtype} tensor of shape {tuple(value.shape)}" if tensor else excerpt(value)
    where = "state.pt" if field == "state.pt" else f"state.pt field {field}"
    raise CheckpointError(f"checkpoint {path} is corrupt: {where} is {shown}, expected {expected}")


def _torch_reason(error: BaseException) -> str:
    """The first line of torch's error that does not give advice about weights_only, cut short."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    kept = [line for line in lines if "weights_only" not in line and "weights only" not in line.lower()]
    return cut(kept[0] if kept else type(error).__name__, 120).rstrip(".")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return cut(lines[0] if lines else type(error).__name__, 120)


# ---- metrics.jsonl --------------------------------------------------------------------------------------------


def read_records(path: Path) -> list[dict]:
    """metrics.jsonl -> its records, each checked: a JSON object with "step" (int ≥ 0) and "split" (str)."""
    with open_regular(path) as f:
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    return [parse_record(line, path, number) for number, line in enumerate(lines, start=1) if line.strip()]


def parse_record(line: str, path: Path, number: int) -> dict:
    try:
        record = json.loads(line)
    except ValueError:
        raise CheckpointError(f"{path} is corrupt: line {number} is not JSON ({excerpt(line)})") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} is corrupt: line {number} is {excerpt(record)}, expected a JSON object")
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path} is corrupt: line {number} has step {excerpt(step)}, expected an integer ≥ 0")
    if not isinstance(record.get("split"), str):
        raise CheckpointError(
            f"{path} is corrupt: line {number} has split {excerpt(record.get('split'))}, expected a string"
        )
    return record


class Log:
    """metrics.jsonl, one JSON record per line, flushed as written; a no-op on ranks other than 0.
    Opened with O_NOFOLLOW: a symlink planted in its place is refused, never appended to."""

    def __init__(self, path: Path | None) -> None:
        self.file = None
        if path is not None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            except OSError as error:
                if os.path.islink(path):
                    raise CheckpointError(
                        f"{path} is a symlink; refused (a run's log is never written through a symlink)"
                    ) from None
                raise ValueError(f"cannot write {path}: {error.strerror or error}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise CheckpointError(f"{path} is not a regular file; refused")
            self.file = os.fdopen(fd, "a")

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
