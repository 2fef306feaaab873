"""Where a verb's output goes: standard output, or a user-named file through `lstmkit.files.write_output`.

A verb checks its -o with `lstmkit.files.check_output_file` (or `check_output_dir`) before the work, then
writes with `emit`/`write_output`, then says what it wrote with `announce` (silent when the output itself was
standard output, so that `-o -` gives exactly the page and nothing else).
"""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

from rich.console import Console

from lstmkit.files import is_stdout, write_output


def emit(text: str, output: str | None) -> None:
    """Print, or write to `output` (see `lstmkit.files.write_output`: '-' is standard output, a device or
    FIFO is written through, a regular file is replaced atomically)."""
    if not text.endswith("\n"):
        text += "\n"
    if output is None:
        sys.stdout.write(text)
        return
    write_output(output, text)


class QuietPipeConsole(Console):
    """rich's Console, except that a closed pipe (`| head`) is not answered by rich's own exit with status 1: the
    BrokenPipeError goes on to `lstmkit.cli.main`, which ends quietly with status 0 as for any other output."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def print_rich(renderable) -> None:
    """Print with rich to standard output (see QuietPipeConsole)."""
    QuietPipeConsole(highlight=False).print(renderable)


def announce(output: str, message: str) -> None:
    """Print `message` (e.g. "wrote FILE") unless `output` was standard output itself."""
    if not is_stdout(output):
        print(message)


def default_output(run_dir: str, stem: str, suffix: str = "") -> Path:
    """Where `report`/`explain` write when -o is not given: RUN/STEM for a run folder, RUN/STEM-step-N beside the
    checkpoints for a checkpoint folder RUN/step-N (inside it, the next rotation would delete the output)."""
    folder = Path(run_dir)
    if folder.name in ("", ".", ".."):
        folder = folder.resolve()
    if is_checkpoint_folder(folder):
        return folder.parent / f"{stem}-{folder.name}{suffix}"
    return folder / f"{stem}{suffix}"


def is_checkpoint_folder(folder: Path) -> bool:
    """A folder named step-<digits> that holds meta.json (what `lstmkit train` writes and rotates)."""
    return re.fullmatch(r"step-[0-9]+", folder.name) is not None and (folder / "meta.json").is_file()
