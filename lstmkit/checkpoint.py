"""Checkpoints that survive a crash at any moment, in a run folder that one process writes and nothing leaves.

    RUN_DIR/step-00000500/model.safetensors   the weights (safetensors: no pickle, shared tensors kept)
                         /state.pt            optimizer state and RNG states: tensors and numbers only,
                                              read with torch.load(weights_only=True), never arbitrary objects
                         /meta.json           model and training configs, task, step, metrics
    RUN_DIR/latest                            the name of the newest complete checkpoint folder
    RUN_DIR/.lock                             flock'ed by the one process that writes the run (RunLock)

Names are step-{step:08d}: eight digits, more from step 100,000,000 on; folders are ordered by the number.

Writing (save_checkpoint), transition by transition; after each, `latest` names a complete checkpoint:
    1. the files are written and fsync'ed in a hidden folder .step-N.<random> (a crash leaves only a hidden folder)
    2. it is renamed to step-N. If step-N exists already (a run resumed from an older checkpoint writes a later
       step again), the two are swapped in one atomic rename (Linux renameat2 RENAME_EXCHANGE) and the old one,
       now hidden, is deleted. Where the swap is unavailable, `latest` is first pointed at another complete
       checkpoint when it named step-N, then the old folder is renamed aside and the new one into place; with no
       other checkpoint a crash between those two renames leaves `latest` naming a missing folder (off Linux only;
       `train` never rewrites the checkpoint `latest` names: a resumed run writes only later steps).
    3. `latest` is replaced atomically (a temporary file renamed over it)
    4. rotation: the step folders beyond the newest `keep` (by number; never the one `latest` names) are renamed to
       hidden names, then deleted; hidden folders a killed writer left behind are deleted too. Only the holder of
       the run's lock writes, so nothing hidden belongs to a live writer.

Reading (find_checkpoint, read_checkpoint) treats the folder as untrusted: `latest` must be a regular file (not a
symlink) holding step-<digits>, and that entry must be a real folder directly inside the run folder. Absolute
paths, '..', symlinks are corrupt (CheckpointError, one line, quoting at most 60 characters), never followed.
read_checkpoint reads meta.json only; state.pt is read by `read_state`, for resuming, so damage to it never
blocks the verbs that need only the weights (eval, explain, report, generate). Schemas: `lstmkit.run_files`.

One writer: RunLock takes an exclusive flock on RUN/.lock for the whole training; the OS releases it when the
process dies, however it dies. A second writer is refused with one line. Under `lstmkit train --nproc N` the
launcher holds the lock and the ranks it starts skip it (`held_by_launcher`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from lstmkit.files import write_atomic
from lstmkit.run_files import (
    LATEST_LIMIT,
    META_LIMIT,
    CheckpointError,
    is_step_name,
    load_state,
    parse_latest,
    parse_meta,
    read_regular,
    step_of,
)

LOCK_NAME = ".lock"


class Checkpoint(NamedTuple):
    path: Path
    """The checkpoint folder."""
    meta: dict
    """meta.json, checked (see lstmkit.run_files)."""


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename over it (see `lstmkit.files.write_atomic`)."""
    write_atomic(path, text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it (see `lstmkit.files.write_atomic`)."""
    write_atomic(path, data)


def step_name(step: int) -> str:
    return f"step-{step:08d}"


# ---- writing --------------------------------------------------------------------------------------------------


def save_checkpoint(
    run_dir: Path, step: int, model: torch.nn.Module, optimizer, meta: dict, rng: dict, keep: int = 2
) -> Path:
    """Write RUN_DIR/step-N (transitions 1-4 of the module docstring); the caller holds the run's lock."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = step_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=run_dir))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the checkpoint from the user's group
    final = run_dir / name
    try:
        _write_files(tmp, model, optimizer, {**meta, "step": step}, rng)
        _put_in_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_atomic(run_dir / "latest", name + "\n")
    _fsync_dir(run_dir)
    rotate(run_dir, keep)
    return final


def _write_files(folder: Path, model: torch.nn.Module, optimizer, meta: dict, rng: dict) -> None:
    save_model(model, str(folder / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "rng": rng}, folder / "state.pt")
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    for name in ("model.safetensors", "state.pt", "meta.json"):
        with open(folder / name, "rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(folder)


def _put_in_place(tmp: Path, final: Path) -> None:
    """Rename the complete folder `tmp` to `final`; an existing `final` is swapped out, never missing."""
    try:
        info = os.lstat(final)
    except FileNotFoundError:
        os.rename(tmp, final)
        return
    if not stat.S_ISDIR(info.st_mode):  # a planted symlink or file named like a checkpoint: never a checkpoint
        os.unlink(final)
        os.rename(tmp, final)
        return
    if exchange(tmp, final):  # tmp now holds the old checkpoint, under a hidden name
        shutil.rmtree(tmp)
        return
    run_dir = final.parent
    if _latest_name(run_dir) == final.name:
        others = [n for n in step_folders(run_dir) if n != final.name]
        if others:
            write_atomic(run_dir / "latest", others[-1] + "\n")
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=run_dir))
    os.rename(final, old)  # replaces the empty folder `old`
    os.rename(tmp, final)
    shutil.rmtree(old)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic rename (Linux renameat2 RENAME_EXCHANGE); False where it is unavailable."""
    function = getattr(_libc(), "renameat2", None)
    if function is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if function(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel or a filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def rotate(run_dir: Path, keep: int) -> None:
    """Delete the step folders beyond the newest `keep` (by number, never the one `latest` names) and the hidden
    folders of killed writers: each is first renamed to a hidden name, so no half-deleted step-N is ever seen."""
    current = _latest_name(run_dir)
    names = step_folders(run_dir)
    for name in names[: max(0, len(names) - keep)]:
        if name != current:
            hidden = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=run_dir))
            os.rename(run_dir / name, hidden)
    clean_temporaries(run_dir)


def clean_temporaries(run_dir: Path) -> None:
    """Delete the hidden .step-* folders left by a writer that was killed (call it holding the run's lock)."""
    for entry in os.scandir(run_dir):
        if entry.name.startswith(".step-") and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def step_folders(run_dir: Path) -> list[str]:
    """The names of the real folders step-<digits> directly in `run_dir`, oldest (smallest step) first."""
    names = [e.name for e in os.scandir(run_dir) if is_step_name(e.name) and e.is_dir(follow_symlinks=False)]
    return sorted(names, key=step_of)


def _latest_name(run_dir: Path) -> str | None:
    try:
        return parse_latest(read_regular(run_dir / "latest", LATEST_LIMIT), run_dir / "latest")
    except (FileNotFoundError, CheckpointError):
        return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- the lock -------------------------------------------------------------------------------------------------

_HELD: dict[str, int] = {}
"""Run folders this process holds the lock of (real path -> nesting depth): the CLI takes the lock before
`train` does, and a flock is per open file, so the same process must not take it twice."""


class RunLock:
    """An exclusive flock on RUN/.lock while in a `with` block; ValueError (one line) when another process holds it.

    held_by_launcher: this process was started by a launcher that holds the lock (`lstmkit train --nproc N`);
    then a lock held elsewhere is the launcher's, and the block runs without taking it."""

    def __init__(self, run_dir: str | Path, held_by_launcher: bool = False) -> None:
        self.run_dir, self.held_by_launcher = Path(run_dir), held_by_launcher
        self.key, self.fd = "", None

    def __enter__(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.key = os.path.realpath(self.run_dir)
        if self.key in _HELD:
            _HELD[self.key] += 1
            return self
        try:
            fd = os.open(self.run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:  # a symlink planted as .lock (ELOOP), a read-only folder, ...
            raise ValueError(
                f"cannot lock run folder {self.run_dir}: {LOCK_NAME} cannot be opened ({error.strerror or error})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if self.held_by_launcher:
                return self
            raise ValueError(
                f"run folder {self.run_dir} is in use by another lstmkit train"
                f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it to end or choose "
                "another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        _HELD[self.key] = 1
        return self

    def __exit__(self, *exc) -> None:
        if self.key not in _HELD:
            return
        _HELD[self.key] -= 1
        if _HELD[self.key] == 0:
            del _HELD[self.key]
            os.close(self.fd)  # closing the file releases the flock
            self.fd = None


# ---- reading --------------------------------------------------------------------------------------------------


def find_checkpoint(path: Path) -> Path:
    """A run folder (its `latest`) or a checkpoint folder -> the checkpoint folder, confined to the run folder."""
    path = Path(path)
    if os.path.lexists(path / "meta.json"):
        return path
    latest = path / "latest"
    if not os.path.lexists(latest):
        raise CheckpointError(
            f"no checkpoint in {path}: expected a run folder with a 'latest' file or a step-NNNNNNNN checkpoint folder"
        )
    if os.path.islink(latest):
        raise CheckpointError(f"{latest} is corrupt: it is a symlink, expected a regular file (not followed)")
    name = parse_latest(read_regular(latest, LATEST_LIMIT), latest)
    try:
        info = os.lstat(path / name)
    except FileNotFoundError:
        raise CheckpointError(f"{latest} is corrupt: it names {name}, which does not exist in {path}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise CheckpointError(
            f"{latest} is corrupt: it names {name}, which is not a folder (symlinks are not followed)"
        )
    return path / name


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint folder of `path` and its checked meta.json (state.pt is read by `read_state`)."""
    folder = find_checkpoint(path)
    try:
        data = read_regular(folder / "meta.json", META_LIMIT)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {folder} is incomplete: meta.json is missing") from None
    return Checkpoint(folder, parse_meta(data, folder))


def read_state(folder: Path) -> dict:
    """state.pt of a checkpoint folder, checked: {"optimizer": state_dict, "rng": {"data", "torch"}}."""
    return load_state(Path(folder))


def load_weights(folder: Path, model: torch.nn.Module, keep: str = "") -> None:
    """Load model.safetensors into `model`, strictly; a clear error when it is corrupt or from another model.

    keep: a name prefix (e.g. "head."); the model keeps its own values of the parameters under it, whatever the
    file holds there (a warm start under a new head). "" = load every name."""
    path = Path(folder) / "model.safetensors"
    stored = stored_shapes(folder)
    expected = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    if keep:
        stored = {k: v for k, v in stored.items() if not k.startswith(keep)}
        expected = {k: v for k, v in expected.items() if not k.startswith(keep)}
    wrong = sorted(k for k in expected.keys() & stored.keys() if expected[k] != stored[k])
    missing, unexpected = sorted(expected.keys() - stored.keys()), sorted(stored.keys() - expected.keys())
    if wrong or (missing and not _tied(model, missing)) or unexpected:
        detail = "; ".join(
            part
            for part in (
                f"shapes differ for {wrong[:3]}" if wrong else "",
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
            )
            if part
        )
        raise CheckpointError(f"checkpoint {folder} is from a different model: {detail[:200]}")
    if not keep:
        load_model(model, str(path), strict=True)
        return
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {key: f.get_tensor(key) for key in stored}
    except (SafetensorError, OSError, ValueError) as error:
        raise _unreadable(folder, error) from None
    model.load_state_dict(tensors, strict=False)  # every name but keep's checked above


def stored_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """{name: shape} of a checkpoint folder's model.safetensors, read from its header (no tensor is loaded); a clear
    error when it is missing, not a regular file, or unreadable."""
    path = Path(folder) / "model.safetensors"
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {folder} is incomplete: model.safetensors is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(
            f"checkpoint {folder} is corrupt: model.safetensors is not a regular file (symlinks are not followed)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise _unreadable(folder, error) from None


def _unreadable(folder: Path, error: Exception) -> CheckpointError:
    reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
    return CheckpointError(f"checkpoint {folder} is corrupt: model.safetensors cannot be read ({reason})")


def _tied(model: torch.nn.Module, missing: list[str]) -> bool:
    """safetensors stores a tensor shared by two names once; the other name is then legitimately absent."""
    every_name = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    return set(missing) <= every_name - dict(model.named_parameters()).keys()
