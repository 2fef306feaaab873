"""The mLSTM forms and the sLSTM layer against the xLSTM authors' CPU kernels.

mLSTM (B, NH, T, D) = (4, 4, T, 64), float32, T from 256 to 4096, forward and forward + backward:

    lstmkit mlstm_chunkwise   our chunkwise form, its automatic chunk size (`auto_chunk_size`)
    chunkwise--native_autograd, chunkwise--native_custbw
                              `mlstm_kernels`' chunkwise form in PyTorch ops (chunk 64), with autograd /
                              with their own backward (which treats the normaliser as a constant)
    lstmkit mlstm_parallel, parallel--native_autograd
                              the quadratic forms, up to T = 1024 (at 4096 one call takes ~10 s)

plus one larger case (`LARGEST`) for the achieved GEMM fraction. Target (issue 8): chunkwise forward +
backward ≥ 1.3× `chunkwise--native_autograd` at T ≥ 1024.

sLSTM: our `slstm(x̃, R, b)` (fast path, own backward) against their `sLSTMCell(backend="vanilla")`,
the same recurrent weights; target forward + backward ≥ 5×.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lstmkit.bench.flops import with_backward
from lstmkit.bench.peers import need
from lstmkit.bench.results import Row
from lstmkit.bench.timing import CPU, MODES, median_ms, race

MLSTM = "mLSTM forms vs T"
SLSTM = "sLSTM layer"
LENGTHS, QUICK_LENGTHS = (256, 1024, 4096), (64, 128)  # multiples of 64: their chunkwise kernel needs it
PARALLEL_UP_TO = 1024
LARGEST = (2, 4, 8192, 256)  # (B, NH, T, D): the GEMM-fraction case; D = xLSTM 7B's key head size
QUICK_LARGEST = (1, 2, 192, 32)
SLSTM_SHAPES, QUICK_SLSTM_SHAPES = [(4, 256, 128, 4), (8, 256, 512, 4)], [(2, 16, 32, 4)]  # (B, T, H, NH)


def mlstm_inputs(B: int, NH: int, T: int, D: int, device: torch.device, grad: bool) -> tuple:
    g = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(B, NH, T, D, generator=g) for _ in range(3))
    i, f = torch.randn(B, NH, T, generator=g), torch.randn(B, NH, T, generator=g) + 3
    return tuple(x.to(device).requires_grad_(grad) for x in (q, k, v, i, f))


def mlstm_rows(quick: bool, repeats: int, device: torch.device = CPU, sync=None) -> Iterator[Row]:
    from lstmkit.nn.mlstm import auto_chunk_size, chunkwise_flops, mlstm_chunkwise, mlstm_parallel

    kernels = need("mlstm_kernels.torch")
    theirs = {
        name: kernels.get_mlstm_kernel(name)
        for name in ("chunkwise--native_autograd", "chunkwise--native_custbw", "parallel--native_autograd")
    }
    cases = [(4, 4, T, 64) for T in (QUICK_LENGTHS if quick else LENGTHS)]
    cases.append(QUICK_LARGEST if quick else LARGEST)
    for B, NH, T, D in cases:
        for mode, wrap in MODES.items():
            qkvif = mlstm_inputs(B, NH, T, D, device, grad=mode == "fwd+bwd")
            fns = {"lstmkit mlstm_chunkwise": lambda x=qkvif: mlstm_chunkwise(*x)[0]}
            for name in ("chunkwise--native_autograd", "chunkwise--native_custbw"):
                fns[name] = lambda kernel=theirs[name], x=qkvif: kernel(*x, chunk_size=64)
            parallel = T <= PARALLEL_UP_TO and (B, NH, T, D) != LARGEST
            if parallel:
                fns["lstmkit mlstm_parallel"] = lambda x=qkvif: mlstm_parallel(*x)[0]
                fns["parallel--native_autograd"] = lambda x=qkvif: theirs["parallel--native_autograd"](*x)
            runs = race({name: wrap(fn) for name, fn in fns.items()}, repeats, sync)
            L = auto_chunk_size(T, D, D)
            flops = with_backward(chunkwise_flops(B=B, NH=NH, T=T, DK=D, DV=D, chunk_size=L), mode)
            case = f"B{B} NH{NH} T{T} D{D}"
            pairs = [
                (
                    "lstmkit mlstm_chunkwise",
                    "chunkwise--native_autograd",
                    1.3 if T >= 1024 and mode == "fwd+bwd" else None,
                ),
                ("lstmkit mlstm_chunkwise", "chunkwise--native_custbw", None),
            ]
            if parallel:
                pairs.append(("lstmkit mlstm_parallel", "parallel--native_autograd", None))
            for ours, peer, target in pairs:
                yield Row(
                    family=MLSTM,
                    case=case,
                    mode=mode,
                    ours=f"{ours} (L={L})" if "chunkwise" in ours else ours,
                    ours_value=median_ms(runs[ours]),
                    peer=peer,
                    peer_value=median_ms(runs[peer]),
                    target=target,
                    flops=flops if "chunkwise" in ours else None,
                    ours_runs=runs[ours],
                    peer_runs=runs[peer],
                )


def slstm_candidates(B: int, T: int, H: int, NH: int, device: torch.device, grad: bool) -> dict:
    """Our slstm and their vanilla cell on the same input and recurrent weights: {name: fn() -> h}."""
    from lstmkit.nn.slstm import slstm

    cell_module = need("xlstm.blocks.slstm.cell")
    config = cell_module.sLSTMCellConfig(
        hidden_size=H, num_heads=NH, backend="vanilla", dtype="float32", enable_automatic_mixed_precision=False
    )
    cell = cell_module.sLSTMCell(config).to(device)
    DH = H // NH
    g = torch.Generator().manual_seed(0)
    R = torch.randn(NH, 4, DH, DH, generator=g) * 0.1
    with torch.no_grad():
        cell._recurrent_kernel_.copy_(R.reshape(NH, 4 * DH, DH))
    R, b = R.to(device).requires_grad_(grad), torch.zeros(4 * H, device=device, requires_grad=grad)
    x = torch.randn(B, T, 4 * H, generator=g).to(device).requires_grad_(grad)
    return {"lstmkit slstm": lambda: slstm(x, R, b)[0], "authors sLSTMCell vanilla": lambda: cell(x)[0]}


def slstm_rows(quick: bool, repeats: int, device: torch.device = CPU, sync=None) -> Iterator[Row]:
    for B, T, H, NH in QUICK_SLSTM_SHAPES if quick else SLSTM_SHAPES:
        for mode, wrap in MODES.items():
            fns = slstm_candidates(B, T, H, NH, device, grad=mode == "fwd+bwd")
            runs = race({name: wrap(fn) for name, fn in fns.items()}, repeats, sync)
            ours, peer = fns
            target = 5.0 if mode == "fwd+bwd" else None
            yield Row(
                family=SLSTM,
                case=f"B{B} T{T} H{H} NH{NH}",
                mode=mode,
                ours=ours,
                ours_value=median_ms(runs[ours]),
                peer=peer,
                peer_value=median_ms(runs[peer]),
                target=target,
                ours_runs=runs[ours],
                peer_runs=runs[peer],
            )
