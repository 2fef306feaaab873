"""GPU rows, when a CUDA device is present: our layers there against cuDNN and the authors' Triton kernels.

    LSTM / GRU / RNN    the layer family on the GPU (torch.nn.* runs cuDNN; our forward is the same call)
    mLSTM chunkwise     ours against `chunkwise--triton_limit_chunk` (mlstm_kernels, needs triton)
                        and `chunkwise--native_autograd`, both on the GPU
    sLSTM               ours against their vanilla cell on the GPU

Every call is followed by `torch.cuda.synchronize()` before the clock is read. Without CUDA the suite
prints one line saying these rows were skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch

from lstmkit.bench import rnn_layers, xlstm_cells
from lstmkit.bench.flops import with_backward
from lstmkit.bench.peers import PeerMissing, need
from lstmkit.bench.results import Row
from lstmkit.bench.timing import MODES, median_ms, race

TRITON_KERNEL = "chunkwise--triton_limit_chunk"


def available() -> str | None:
    """The GPU's name, or None without CUDA."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def rows(quick: bool, repeats: int, skipped: list[str]) -> Iterator[Row]:
    """Every GPU row; a part whose peer is missing (or that fails) adds one line to `skipped` instead."""
    name = available()
    device, sync = torch.device("cuda"), torch.cuda.synchronize
    parts = [("layers", rnn_layers.rows), ("mLSTM", mlstm_rows), ("sLSTM", xlstm_cells.slstm_rows)]
    for part, make in parts:
        try:
            for row in make(quick, repeats, device, sync):
                yield dataclasses.replace(row, family=f"GPU ({name}): {row.family}")
        except PeerMissing as e:
            skipped.append(f"GPU {part} rows: {e}")
        except Exception as e:  # never checked in CI (no GPU there): report, do not lose the CPU rows
            skipped.append(f"GPU {part} rows failed: {type(e).__name__}: {e}")


def mlstm_rows(quick: bool, repeats: int, device: torch.device, sync) -> Iterator[Row]:
    from lstmkit.nn.mlstm import auto_chunk_size, chunkwise_flops, mlstm_chunkwise

    kernels = need("mlstm_kernels.torch")
    peers = {"chunkwise--native_autograd": kernels.get_mlstm_kernel("chunkwise--native_autograd")}
    if TRITON_KERNEL in kernels.get_available_mlstm_kernels():
        peers[TRITON_KERNEL] = kernels.get_mlstm_kernel(TRITON_KERNEL)
    for T in xlstm_cells.QUICK_LENGTHS if quick else xlstm_cells.LENGTHS:
        for mode, wrap in MODES.items():
            x = xlstm_cells.mlstm_inputs(4, 4, T, 64, device, grad=mode == "fwd+bwd")
            fns = {"lstmkit mlstm_chunkwise": lambda x=x: mlstm_chunkwise(*x)[0]}
            fns |= {name: (lambda k=k, x=x: k(*x, chunk_size=64)) for name, k in peers.items()}
            runs = race({n: wrap(fn) for n, fn in fns.items()}, repeats, sync)
            L = auto_chunk_size(T, 64, 64)
            for peer in peers:
                yield Row(
                    family=xlstm_cells.MLSTM,
                    case=f"B4 NH4 T{T} D64",
                    mode=mode,
                    ours=f"lstmkit mlstm_chunkwise (L={L})",
                    ours_value=median_ms(runs["lstmkit mlstm_chunkwise"]),
                    peer=peer,
                    peer_value=median_ms(runs[peer]),
                    flops=with_backward(chunkwise_flops(B=4, NH=4, T=T, DK=64, DV=64, chunk_size=L), mode),
                    ours_runs=runs["lstmkit mlstm_chunkwise"],
                    peer_runs=runs[peer],
                )
