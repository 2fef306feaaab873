"""Writing what the user asked for, and nothing else: checked before the work, atomic where a file is replaced.

    check_output_file(path)        before the work: ValueError "cannot write PATH: <reason>" if it cannot be written
    check_output_dir(path)         the same for a folder of outputs (made if missing)
    write_output(path, data)       '-' or /dev/stdout: standard output; a character device or FIFO: written
                                   through; a regular file, or a symlink to one: replaced atomically
    write_atomic(path, data)       a temporary file beside `path`, flushed to disk, renamed over it

A symlink is followed to what it names: to a regular file (replaced atomically, the link kept), a device or a
FIFO (written through). A dangling symlink, a folder, a block device or a socket is refused. Replacing a file
keeps its permissions; a new file gets the ones a plain `open` would give (mkstemp's 0600 made pages unreadable).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

STDOUT_NAMES = ("-", "/dev/stdout")


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, then rename over it: a reader sees the old file or the new one."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(path: str | Path, data: bytes | str) -> None:
    """Write a user-named output (see the module docstring for what each kind of path gets)."""
    check_output_file(path)
    payload = data.encode() if isinstance(data, str) else data
    if str(path) in STDOUT_NAMES:
        sys.stdout.flush()
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    target = Path(os.path.realpath(path))
    if target.exists() and not stat.S_ISREG(os.stat(target).st_mode):  # a device or a FIFO: write through
        with open(target, "wb", buffering=0) as f:
            f.write(payload)
        return
    write_atomic(target, payload)


def check_output_file(path: str | Path) -> None:
    """Raise ValueError("cannot write PATH: reason") unless `path` can take a file (tried, not guessed)."""
    text = str(path)
    if text in STDOUT_NAMES:
        return
    if not text:
        raise ValueError("cannot write '': expected a file name")
    if os.path.islink(text) and not os.path.exists(text):
        raise ValueError(f"cannot write {text}: it is a symlink to {os.readlink(text)!r}, which does not exist")
    if os.path.exists(text):
        mode = os.stat(text).st_mode
        if stat.S_ISDIR(mode):
            raise ValueError(f"cannot write {text}: it is a folder, expected a file name")
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            if not os.access(text, os.W_OK):
                raise ValueError(f"cannot write {text}: permission denied")
            return
        if not stat.S_ISREG(mode):
            raise ValueError(f"cannot write {text}: it is neither a regular file, a character device nor a FIFO")
    folder = Path(os.path.realpath(text)).parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {text}: folder {Path(text).parent} does not exist")
    _try_writing_in(folder, text)


def check_output_dir(path: str | Path) -> None:
    """Raise ValueError("cannot write PATH: reason") unless `path` is (or can be made) a folder we can write in."""
    text = str(path)
    if not text:
        raise ValueError("cannot write '': expected a folder name")
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cannot write {text}: it is a file, expected a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot write {text}: {error.strerror or error}") from None
    _try_writing_in(folder, text)


def _try_writing_in(folder: Path, shown: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lstmkit-check.", dir=folder)
    except OSError as error:
        raise ValueError(f"cannot write {shown}: {error.strerror or error}") from None
    os.close(fd)
    os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
