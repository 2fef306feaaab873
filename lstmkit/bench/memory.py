"""Peak memory of one mLSTM forward + backward as T grows, each measured in a fresh process.

    peak = VmHWM - VmRSS before the call      (Linux /proc/self/status: the process's high-water mark
                                               of resident memory, and resident memory now)

A fresh `python -c` per (candidate, T), so nothing one call allocated is still cached for the next.
Candidates: our chunkwise and parallel forms against the authors' `chunkwise--native_autograd` and
`parallel--native_autograd`; the parallel forms only up to T = 2048 (their T×T matrices reach GBs), and
not in the quick run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

from lstmkit.bench.peers import need
from lstmkit.bench.results import Row

FAMILY = "Peak memory vs T (mLSTM forward + backward)"
LENGTHS, QUICK_LENGTHS = (1024, 4096, 16384), (64, 128)
PARALLEL_UP_TO = 2048

CALLS = {
    "lstmkit mlstm_chunkwise": "from lstmkit.nn.mlstm import mlstm_chunkwise as form\ncall = lambda: form(*x)[0]",
    "lstmkit mlstm_parallel": "from lstmkit.nn.mlstm import mlstm_parallel as form\ncall = lambda: form(*x)[0]",
    "chunkwise--native_autograd": "from mlstm_kernels.torch import get_mlstm_kernel\n"
    "form = get_mlstm_kernel('chunkwise--native_autograd')\ncall = lambda: form(*x, chunk_size=64)",
    "parallel--native_autograd": "from mlstm_kernels.torch import get_mlstm_kernel\n"
    "form = get_mlstm_kernel('parallel--native_autograd')\ncall = lambda: form(*x)",
}

SCRIPT = """
import torch
{call}

def status_kb(key):
    line = next(x for x in open("/proc/self/status") if x.startswith(key + ":"))
    return int(line.split()[1])

g = torch.Generator().manual_seed(0)
x = [torch.randn(4, 4, {T}, 64, generator=g, requires_grad=True) for _ in range(3)]
x.append(torch.randn(4, 4, {T}, generator=g, requires_grad=True))
x.append((torch.randn(4, 4, {T}, generator=g) + 3).requires_grad_())
before = status_kb("VmRSS")
call().sum().backward()
print((status_kb("VmHWM") - before) / 1024)
"""


def peak_mb(candidate: str, T: int) -> float:
    """MB above the resident memory before the call, at the call's peak, in a fresh process."""
    script = SCRIPT.format(call=CALLS[candidate], T=T)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"peak memory of {candidate} at T={T} failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(out.stdout.strip().splitlines()[-1])


def rows(quick: bool, repeats: int, device=None, sync=None) -> Iterator[Row]:
    need("mlstm_kernels.torch")
    for T in QUICK_LENGTHS if quick else LENGTHS:
        pairs = [("lstmkit mlstm_chunkwise", "chunkwise--native_autograd")]
        if T <= PARALLEL_UP_TO and not quick:
            pairs.append(("lstmkit mlstm_parallel", "parallel--native_autograd"))
        for ours, peer in pairs:
            yield Row(
                family=FAMILY,
                case=f"B4 NH4 T{T} D64",
                mode="peak",
                ours=ours,
                ours_value=peak_mb(ours, T),
                peer=peer,
                peer_value=peak_mb(peer, T),
                unit="MB",
            )
