"""The machine the numbers come from, and its matrix-multiply rate (the physical limit the tables quote).

    rate = 2·n³ / t      for one float32 (n×n)·(n×n) product, median of a few, after a warm-up

Measured two ways, because they differ by 2× on some CPUs:

* `torch.mm`: what every matrix product in PyTorch code gets (on x86 CPUs, Intel MKL; on AMD CPUs MKL
  runs an AVX2 path, half the AVX-512 width);
* oneDNN (a `Linear` converted by `torch.utils.mkldnn`, inference only): the library inside
  `torch.nn.LSTM`'s CPU kernel, which uses the full vector width everywhere.

The tables quote each row's achieved FLOP rate as a percentage of both.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from datetime import date
from importlib.metadata import PackageNotFoundError, version

import torch


def gemm_rates(n: int, repeats: int = 5) -> dict[str, float]:
    """{"torch.mm": GFLOP/s, "oneDNN": GFLOP/s} for float32 n×n products on the CPU."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    rates = {"torch.mm": 2 * n**3 / _median_seconds(lambda: torch.mm(a, b), repeats) / 1e9}
    if torch.backends.mkldnn.is_available():
        from torch.utils import mkldnn

        linear = torch.nn.Linear(n, n, bias=False)
        with torch.no_grad():
            linear.weight.copy_(b.t())
            fast = mkldnn.to_mkldnn(linear)
            x = a.to_mkldnn()
            rates["oneDNN"] = 2 * n**3 / _median_seconds(lambda: fast(x), repeats) / 1e9
    return rates


def _median_seconds(fn, repeats: int) -> float:
    with torch.no_grad():
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


MAX_THREADS = 1024
"""More torch threads than this is a typo, not a machine (torch would try to start them all)."""


def check_threads(threads: int | None) -> None:
    """None (torch's own choice) or 1..MAX_THREADS, else one line naming --threads."""
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS
    ):
        raise ValueError(f"--threads is {threads}, expected 1 to {MAX_THREADS} (or leave it out for the default)")


PEERS = ("xlstm", "mlstm-kernels", "transformers", "mambapy")
"""The peer packages whose versions every benchmark header names."""


def describe() -> dict:
    """CPU model, cores, threads, versions, and the GPU when there is one."""
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": date.today().isoformat(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for package in PEERS:
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header_lines(machine: dict, gemm: dict[int | None, dict[str, float]], settings: dict) -> list[str]:
    """The lines above the tables; `gemm` holds the rates at each thread count measured at."""
    peers = ", ".join(f"{p} {machine[p]}" for p in PEERS if machine.get(p)) or "not installed"
    counts = settings.get("threads") or [machine["torch_threads"]]
    measured = " and ".join(str(n) for n in counts) + (" thread" if counts == [1] else " threads")
    rates = "; ".join(
        (f"at {n} thread{'s' if n != 1 else ''}: " if len(gemm) > 1 else "")
        + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in by_name.items())
        for n, by_name in gemm.items()
    )
    return [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} (measured at {measured}), "
        f"Python {machine['python']}; peers: {peers}; {machine['date']}.",
        f"Float32 GEMM rate ({settings['gemm_n']}³): {rates}.",
        f"Median of {settings['repeats']} interleaved rounds after a warm-up; ratio = peer / ours (above 1: ours is "
        "faster or smaller); IQR = the middle half of the per-round ratios; each table's first row is its control, "
        "the peer raced against itself (ideally 1.00).",
    ]
