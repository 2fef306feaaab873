"""The xLSTM authors' packages as benchmark peers: imported only when a family needs them.

`lstmkit bench` runs without them (`pip install 'lstmkit[peers]'` adds them); the families that compare
against them are then skipped with one line each, naming what is missing.
"""

from __future__ import annotations

import importlib


class PeerMissing(RuntimeError):
    """A family's peer is not installed; the message says which package and how to add it."""


def need(module: str):
    """Import `module` (e.g. "xlstm", "mlstm_kernels.torch") or raise PeerMissing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = module.split(".")[0].replace("_", "-")
        raise PeerMissing(f"{package} is not installed ({e.msg}); pip install 'lstmkit[peers]' adds it") from None
