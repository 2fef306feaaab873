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
    target = Path(output)
    if not target.parent.is_dir():
        raise ValueError(f"cannot write {output}: folder {target.parent} does not exist")
    write_text_atomic(target, text)
