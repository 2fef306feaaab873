"""Timing side by side: every candidate of a case runs in the same process, interleaved.

    race({"ours": f, "peer": g}, repeats=5)    one warm-up call each, then `repeats` rounds; in round r
                                               the order is rotated by r, so neither candidate always
                                               runs first (or right after the other's garbage)
    -> {"ours": [s, s, ...], "peer": [...]}    seconds of every round; the tables quote the median

The machines are shared and noisy: interleaving makes a burst of noise hit every candidate alike, and
the median ignores the rounds it ruined. `sync` waits for a GPU before the clock is read.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

CPU = torch.device("cpu")


def race(candidates: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None] | None = None):
    """Seconds of each call, per candidate: {name: [seconds of round 0, round 1, ...]}."""
    if repeats < 1:
        raise ValueError(f"repeats is {repeats}, expected at least 1")
    names = list(candidates)
    for name in names:  # warm-up: allocator, oneDNN primitives, lazy imports
        _timed(candidates[name], sync)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(_timed(candidates[name], sync))
    return runs


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1e3


def _timed(fn: Callable[[], object], sync: Callable[[], None] | None) -> float:
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start


def forward(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """Time fn() without autograd (inference)."""

    def run() -> None:
        with torch.no_grad():
            fn()

    return run


def forward_backward(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """Time fn() and the backward pass of the sum of its output (gradients for every input and weight)."""

    def run() -> None:
        fn().sum().backward()

    return run


MODES = {"fwd": forward, "fwd+bwd": forward_backward}
