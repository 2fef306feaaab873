"""Building a C++ source into torch operators on first use, shared by the C++ loops (sLSTM, the selective scan).

    ops = build(name, lambda: compile_once(name, source, flags), what, fallback)   torch.ops.<name>, or None

`torch.utils.cpp_extension.load` compiles the source once into torch's extension cache (`$TORCH_EXTENSIONS_DIR` or
~/.cache/torch_extensions/<python>_<device>/<name>); later processes only run ninja's no-op check. The sources
register their operators with TORCH_LIBRARY (no pybind11), so only light headers are compiled. An flock around the
build serializes first uses and lets a lock file left by a process killed mid-build (which torch would wait on
forever) be removed as stale. When the build fails (no compiler, no ninja, ...) `build` warns once, naming why and
what is used instead, and returns None: the caller falls back, never crashes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch


def build(name: str, compile: Callable[[], None], what: str, fallback: str):
    """`torch.ops.<name>` after `compile()` (usually `compile_once`); None, after a warning that `what` could not be
    built and `fallback` is used, when it fails."""
    try:
        compile()
        return getattr(torch.ops, name)
    except Exception as error:  # any build failure means "use the fallback", never a crash
        lines = str(error).strip().splitlines() or [""]
        why = next((line for line in lines if "error:" in line), lines[-1])  # a compiler's first error, if any
        why = f"{type(error).__name__}: {why.strip()}"
        warnings.warn(f"lstmkit: could not build {what} ({why}); using {fallback}", RuntimeWarning, stacklevel=4)
        return None


def compile_once(name: str, source: Path, flags: list[str]) -> None:
    """Compile `source` into torch's extension cache and load it (a no-op check when it is already built)."""
    import fcntl

    from torch.utils import cpp_extension

    build_dir = cpp_extension._get_build_directory(name, verbose=False)  # honours $TORCH_EXTENSIONS_DIR
    with open(os.path.join(build_dir, "lstmkit.flock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released by the kernel even if this process dies
        stale = Path(build_dir) / "lock"  # torch's own lock: under our flock nobody else is building
        stale.unlink(missing_ok=True)
        cpp_extension.load(
            name=name,
            sources=[str(source)],
            extra_cflags=flags,
            build_directory=build_dir,
            is_python_module=False,
            verbose=False,
        )
