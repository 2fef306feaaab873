"""Where a verb's text goes: standard output, or a file written atomically."""

from __future__ import annotations

import sys
from pathlib import Path

from lstmkit.checkpoint import write_text_atomic


def emit(text: str, output: str | None) -> None:
    """Print, or write to `output` atomically (a temporary file in the same folder, then rename)."""
    if not text.endswith("\n"):
        text += "\n"
    if output is None:
        sys.stdout.write(text)
        return
    check_folder(output)
    write_text_atomic(Path(output), text)


def check_folder(output: str) -> None:
    """A one-line error when the file's folder does not exist (instead of a traceback from the writer)."""
    folder = Path(output).parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {output}: folder {folder} does not exist")
