"""Writing what the user asked for, and nothing else: checked before the work, atomic where a file is replaced.

    check_output_file(path)        before the work: ValueError "cannot write PATH: <reason>" if it cannot be written
    check_output_dir(path)         the same for a folder of outputs; creates nothing (make_output_dir does, later)
    write_output(path, data)       the one writer of a user-named file (what each kind of path gets is below)
    write_atomic(path, data)       a temporary file beside `path`, flushed to disk, renamed over `path` itself
    make_output_dir(path)          after the work: the folder check_output_dir accepted, with its parents
    write_into(folder, name, data) one file of a folder of outputs, atomically

What `write_output` does with each kind of path:

    '-', /dev/stdout, /dev/fd/1    standard output (nothing is created or replaced)
    /dev/stderr, /dev/fd/2         standard error
    a character device, a FIFO     written through (opened for writing, never created, truncated or replaced):
                                   `-o /dev/null` discards, `-o /dev/tty` shows, a FIFO's reader gets the bytes
                                   (a FIFO without a reader waits for one, as the shell's `>` does)
    a regular file                 replaced atomically (a reader sees the old file or the new one, never half of
                                   one); its permission bits and owner are kept; a new file gets the permission
                                   bits of a plain `open`
    a symlink                      followed: to a regular file, that file is replaced atomically and the link
                                   stays a link; to a device or FIFO, written through; dangling, refused
    anything else                  refused: '', a folder, a name ending in '/', a folder that does not exist, a
                                   read-only file or folder, a block device, a socket, a name too long

Every refusal is a ValueError "cannot write PATH: <reason>" (one line, the path as the user typed it), raised by
the checks before any work is done and again, for what changed meanwhile, by the writer; an OSError while writing
a file (a full disk, say) becomes the same kind of line and leaves the old file as it was. An error writing to
standard output is a `StdoutError` (an OSError): the CLI reports it as "cannot write to standard output".
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

STDOUT_NAMES = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")
STDERR_NAMES = ("/dev/stderr", "/dev/fd/2", "/proc/self/fd/2")
TEMP_PREFIX_CHARS = 40
"""How much of a file's name its temporary sibling repeats (`.NAME.xxxxxxxx`): enough to recognise it, short
enough that a name near the file system's limit still leaves room."""


class StdoutError(OSError):
    """Writing to standard output (or standard error) failed: `> /dev/full`, a closed terminal. The CLI
    reports it as "cannot write to standard output: REASON"; a BrokenPipeError (`| head`) stays what it is."""


def is_stdout(path: str | Path | None) -> bool:
    """True when `path` names standard output ('-', /dev/stdout, /dev/fd/1)."""
    return path is not None and str(path) in STDOUT_NAMES


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path` (a symlink at `path`
    is replaced, not followed: `write_output` resolves links first). The permission bits (and, where allowed, the
    owner) of a file replaced are kept; a failure at any point removes the temporary file and leaves `path` as it
    was. A hard link to the old file keeps the old content."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    try:
        old = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:TEMP_PREFIX_CHARS]}.", dir=path.parent)
    try:
        os.fchmod(fd, stat.S_IMODE(old.st_mode) if old else 0o666 & ~_umask())
        if old and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            _keep_owner(fd, old)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def write_output(path: str | Path, data: bytes | str) -> None:
    """Write a user-named output (see the module docstring for what each kind of path gets)."""
    check_output_file(path)
    text = str(path)
    payload = data.encode() if isinstance(data, str) else data
    if text in STDOUT_NAMES or text in STDERR_NAMES:
        stream = sys.stdout if text in STDOUT_NAMES else sys.stderr
        try:
            stream.flush()
            stream.buffer.write(payload)
            stream.buffer.flush()
        except BrokenPipeError:
            raise
        except OSError as error:
            raise StdoutError(error.errno, error.strerror) from error
        return
    try:
        mode = os.stat(text).st_mode
    except FileNotFoundError:  # not there yet: a new regular file
        mode = stat.S_IFREG
    try:
        if stat.S_ISREG(mode):
            write_atomic(os.path.realpath(text), payload)
        else:  # a character device or a FIFO (check_output_file refused the rest): write through
            _write_through(text, payload)
    except OSError as error:
        raise ValueError(f"cannot write {text}: {_reason(error)}") from None


def _write_through(path: str, payload: bytes) -> None:
    """Open without O_CREAT or O_TRUNC, so that a device or FIFO is never turned into (or replaced by) a file."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "wb", buffering=0) as f:
        view = memoryview(payload)
        while view:
            view = view[f.write(view) :]


def check_output_file(path: str | Path) -> None:
    """Raise ValueError("cannot write PATH: reason") unless `path` can take a file (tried, not guessed)."""
    text = str(path)
    if text in STDOUT_NAMES or text in STDERR_NAMES:
        return
    if not text:
        raise ValueError("cannot write '': expected a file name")
    if os.path.islink(text) and not os.path.exists(text):
        raise ValueError(f"cannot write {text}: it is a symlink to {_quoted(os.readlink(text))}, which does not exist")
    try:
        mode = os.stat(text).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:  # a component that is a file (ENOTDIR), a loop of links, a name too long
        raise ValueError(f"cannot write {text}: {_reason(error)}") from None
    if mode is None and text.endswith(("/", os.sep)):  # `-o new/`: Path would quietly drop the slash
        raise ValueError(f"cannot write {text}: it names a folder, expected a file name")
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise ValueError(f"cannot write {text}: it is a folder, expected a file name")
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            raise ValueError(f"cannot write {text}: it is {_kind(mode)}, expected a file, a character device or a FIFO")
        if not os.access(text, os.W_OK):
            raise ValueError(f"cannot write {text}: permission denied")
        if not stat.S_ISREG(mode):
            return
    folder = Path(os.path.realpath(text)).parent
    _check_folder_of(folder, text)
    _check_name_length(folder, os.path.basename(os.path.realpath(text)), text)
    _try_writing_in(folder, text)


def check_output_dir(path: str | Path) -> None:
    """Raise ValueError("cannot write PATH: reason") unless `path` is a folder we can write in, or one that
    `make_output_dir` can create; creates nothing (a failed run leaves no empty folder behind)."""
    text = str(path)
    if not text:
        raise ValueError("cannot write '': expected a folder name")
    if text in STDOUT_NAMES or text in STDERR_NAMES:
        raise ValueError(f"cannot write {text}: this writes several files, expected a folder name")
    if os.path.islink(text) and not os.path.exists(text):
        raise ValueError(f"cannot write {text}: it is a symlink to {_quoted(os.readlink(text))}, which does not exist")
    existing = Path(text)
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not os.path.lexists(existing):  # a relative path whose first component is missing: the working folder
        existing = Path(".")
    if not existing.is_dir():
        shown = "it is" if str(existing) == text.rstrip("/") else f"{existing} is"
        raise ValueError(f"cannot write {text}: {shown} a file, expected a folder")
    _try_writing_in(existing, text)


def make_output_dir(path: str | Path) -> Path:
    """Create the folder `check_output_dir` accepted (and its parents), or raise the same kind of ValueError."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {_reason(error)}") from None
    return folder


def write_into(folder: str | Path, name: str, data: bytes | str) -> Path:
    """Write FOLDER/NAME atomically, in a folder of outputs that `check_output_dir` accepted and `make_output_dir`
    made (explain's pictures, bench's tables); an OSError becomes "cannot write FOLDER/NAME: reason"."""
    path = Path(folder) / name
    try:
        write_atomic(path, data)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {_reason(error)}") from None
    return path


def _check_folder_of(folder: Path, shown: str) -> None:
    if folder.is_dir():
        return
    if os.path.lexists(folder):
        raise ValueError(f"cannot write {shown}: {folder} is not a folder")
    raise ValueError(f"cannot write {shown}: folder {Path(shown).parent} does not exist")


def _check_name_length(folder: Path, name: str, shown: str) -> None:
    try:
        most = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return
    if len(os.fsencode(name)) > most:
        raise ValueError(
            f"cannot write {_quoted(shown)}: the name is {len(os.fsencode(name))} bytes long, expected at most {most}"
        )


def _try_writing_in(folder: Path, shown: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lstmkit-check.", dir=folder)
    except OSError as error:
        raise ValueError(f"cannot write {shown}: {_reason(error)}") from None
    os.close(fd)
    os.unlink(tmp)


def _keep_owner(fd: int, old: os.stat_result) -> None:
    """Root replacing a user's file gives the new one back to that user (others cannot, and need not)."""
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except PermissionError:
        pass


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: some file systems cannot open a folder for fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _quoted(text: str, most: int = 80) -> str:
    """A path as a message may show it: at most `most` characters."""
    return text if len(text) <= most else text[: most - 3] + "..."


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
