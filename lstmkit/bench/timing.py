"""Timing side by side: every candidate of a case runs in the same process, interleaved.

    race({"ours": f, "peer": g}, repeats=5)    one warm-up call each, then `repeats` rounds; in round r
                                               the order is rotated by r, so neither candidate always
                                               runs first (or right after the other's garbage)
    -> {"ours": [s, s, ...], "peer": [...]}    seconds of every round; the tables quote the median

The machines are shared and noisy: interleaving makes a burst of noise hit every candidate alike, and
the median ignores the rounds it ruined. `sync` waits for a GPU before the clock is read.

    with watching() as seen:                   the suite's view of the races a family runs inside it
        ...                                    (families build their candidates themselves and hand out rows)
        latest = seen.take()                   the latest race since the last take(), or None
    candidate_of(latest, row.peer_runs)        which of its candidates a row's peer is
    control(latest, name, repeats)             candidate `name` raced against itself, same machinery:
    -> {name: [...], name + AGAIN: [...]}      the ratio of the two medians is the noise floor (ideally 1.00)
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import NamedTuple

import torch

CPU = torch.device("cpu")
AGAIN = " (again)"
"""The control's second name: the same call as the candidate it repeats."""


class Race(NamedTuple):
    candidates: dict[str, Callable[[], object]]
    sync: Callable[[], None] | None
    runs: dict[str, list[float]]
    """What race() returned: a row's `peer_runs` is one of these lists, which names its candidate."""


class Seen:
    """A one-slot log: the latest race run while `watching()` is open, until `take()` collects it."""

    def __init__(self) -> None:
        self.latest: Race | None = None

    def take(self) -> Race | None:
        latest, self.latest = self.latest, None
        return latest


_WATCHER: ContextVar[Seen | None] = ContextVar("lstmkit_bench_watcher", default=None)
"""Set only inside `watching()`: the families call race() themselves, so this is how the suite gets a peer's call
back to race it against itself, without each family handing out its candidates (one slot: nothing older is kept)."""


@contextlib.contextmanager
def watching() -> Iterator[Seen]:
    seen = Seen()
    token = _WATCHER.set(seen)
    try:
        yield seen
    finally:
        _WATCHER.reset(token)


def candidate_of(latest: Race, runs: list[float]) -> str | None:
    """The name of the candidate whose rounds are `runs` (a row's label may differ from the race's name)."""
    return next((name for name, seconds in latest.runs.items() if runs and seconds == runs), None)


def control(latest: Race, name: str, repeats: int) -> dict[str, list[float]]:
    """`name`'s call of a race raced against itself: {name: [...], name + AGAIN: [...]}."""
    fn = latest.candidates[name]
    return _rounds({name: fn, name + AGAIN: fn}, repeats, latest.sync)  # not logged: it is no family's race


def race(candidates: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None] | None = None):
    """Seconds of each call, per candidate: {name: [seconds of round 0, round 1, ...]}."""
    runs = _rounds(candidates, repeats, sync)
    seen = _WATCHER.get()
    if seen is not None:
        seen.latest = Race(dict(candidates), sync, runs)
    return runs


def _rounds(candidates: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None] | None):
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
