"""Our mLSTM forms and sLSTM layer against the xLSTM authors' CPU kernels, side by side in one process.

    .venv/bin/python benchmarks/bench_xlstm_cells.py            # the issue's shapes, 5 repeats
    .venv/bin/python benchmarks/bench_xlstm_cells.py --quick    # small shapes, 2 repeats (smoke run)

mLSTM: B=4, NH=4, DK=DV=64, T in (256, 1024, 4096): our chunkwise (L=64) and parallel forms against
`mlstm_kernels` `chunkwise--native_autograd` (L=64) and `parallel--native_autograd`.
sLSTM: B=4, T=256, H=128, 4 heads: our layer against the authors' `sLSTMCell` with backend="vanilla".
Candidates run interleaved, rotating who goes first, after one warm-up; medians; the speed ratio is
t_peer / t_ours (above 1: ours is faster). Then the peak resident memory of one forward+backward of
the chunkwise and the parallel form as T doubles, each measured in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from lstmkit.nn.mlstm import mlstm_chunkwise, mlstm_parallel
from lstmkit.nn.slstm import slstm


def timed(fn, backward: bool) -> float:
    start = time.perf_counter()
    if backward:
        fn().sum().backward()
    else:
        with torch.no_grad():
            fn()
    return time.perf_counter() - start


def race(candidates: dict, backward: bool, repeats: int) -> dict[str, float]:
    for fn in candidates.values():
        timed(fn, backward)
    names = list(candidates)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(timed(candidates[name], backward))
    return {name: statistics.median(ts) for name, ts in times.items()}


def mlstm_candidates(T: int, with_parallel: bool):
    from mlstm_kernels.torch import get_mlstm_kernel

    g = torch.Generator().manual_seed(0)
    B, NH, D = 4, 4, 64
    q, k, v = (torch.randn(B, NH, T, D, generator=g, requires_grad=True) for _ in range(3))
    i = torch.randn(B, NH, T, generator=g, requires_grad=True)
    f = (torch.randn(B, NH, T, generator=g) + 3).requires_grad_()
    theirs_chunk = get_mlstm_kernel("chunkwise--native_autograd")
    rows = {
        "authors chunkwise--native_autograd": lambda: theirs_chunk(q, k, v, i, f, chunk_size=64),
        "lstmkit mlstm_chunkwise": lambda: mlstm_chunkwise(q, k, v, i, f, chunk_size=64)[0],
    }
    if with_parallel:
        theirs_par = get_mlstm_kernel("parallel--native_autograd")
        rows["authors parallel--native_autograd"] = lambda: theirs_par(q, k, v, i, f)
        rows["lstmkit mlstm_parallel"] = lambda: mlstm_parallel(q, k, v, i, f)[0]
    return rows


def slstm_candidates(B: int, T: int, H: int, NH: int):
    from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig

    config = sLSTMCellConfig(hidden_size=H, num_heads=NH, backend="vanilla", dtype="float32",
                             enable_automatic_mixed_precision=False)  # fmt: skip
    cell = sLSTMCell(config)
    DH = H // NH
    R = (torch.randn(NH, 4, DH, DH) * 0.1).requires_grad_()
    b = torch.zeros(4 * H, requires_grad=True)
    with torch.no_grad():
        cell._recurrent_kernel_.copy_(R.reshape(NH, 4 * DH, DH))
    x = torch.randn(B, T, 4 * H, requires_grad=True)
    return {"authors sLSTM vanilla": lambda: cell(x)[0], "lstmkit slstm": lambda: slstm(x, R, b)[0]}


def table(title: str, shape: str, results: dict[str, float], peer: str) -> None:
    for name, t in results.items():
        print(f"| {title} | {shape} | {name} | {t * 1e3:.1f} | {results[peer] / t:.2f} |", flush=True)


PEAK = """
import torch
from lstmkit.nn.mlstm import mlstm_chunkwise, mlstm_parallel

def status_kb(key):  # VmHWM is this process's peak resident memory; unlike ru_maxrss it is not inherited
    line = next(x for x in open("/proc/self/status") if x.startswith(key + ":"))
    return int(line.split()[1])

T = {T}
q, k, v = (torch.randn(4, 4, T, 64, requires_grad=True) for _ in range(3))
i, f = torch.randn(4, 4, T, requires_grad=True), torch.randn(4, 4, T, requires_grad=True)
before = status_kb("VmRSS")
{form}(q, k, v, i, f)[0].sum().backward()
print((status_kb("VmHWM") - before) / 1024)
"""


def peak_memory_mb(form: str, T: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PEAK.format(T=T, form=form)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    lengths = (128, 256) if args.quick else (256, 1024, 4096)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU, median of {repeats}\n")
    print("| cell | shape | candidate | median ms | speed vs authors |")
    print("|---|---|---|---:|---:|")
    for T in lengths:
        for backward in (False, True):
            mode = "fwd+bwd" if backward else "fwd"
            results = race(mlstm_candidates(T, with_parallel=True), backward, repeats)
            table(f"mLSTM {mode}", f"B4 NH4 D64 T{T}", results, "authors chunkwise--native_autograd")
    B, T, H, NH = (2, 32, 32, 4) if args.quick else (4, 256, 128, 4)
    for backward in (False, True):
        mode = "fwd+bwd" if backward else "fwd"
        results = race(slstm_candidates(B, T, H, NH), backward, repeats)
        table(f"sLSTM {mode}", f"B{B} T{T} H{H} NH{NH}", results, "authors sLSTM vanilla")
    print("\n| T | chunkwise peak MB (fwd+bwd) | parallel peak MB (fwd+bwd) |")
    print("|---:|---:|---:|")
    for T in lengths:
        print(f"| {T} | {peak_memory_mb('mlstm_chunkwise', T):.0f} | {peak_memory_mb('mlstm_parallel', T):.0f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
