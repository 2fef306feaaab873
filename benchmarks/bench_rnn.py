"""lstmkit.nn LSTM/GRU/RNN against torch.nn, side by side in one process.

    .venv/bin/python benchmarks/bench_rnn.py            # all shapes, 7 repeats
    .venv/bin/python benchmarks/bench_rnn.py --quick    # small shapes, 3 repeats

For every shape and mode (forward; forward + backward) the candidates run interleaved, round-robin
(rotating who goes first), `--repeats` times after one warm-up, so machine noise hits all of them
alike. The table shows medians and the speed ratio t_peer / t_ours (above 1: ours is faster).
Targets (issue 3): fast path >= 0.95; trace path forward >= 1/2.5 = 0.40, forward+backward
>= 1/4 = 0.25; GRU and RNN >= 0.95.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import lstmkit.nn as lnn

SHAPES = [  # (T, B, I, H)
    (256, 32, 128, 256),
    (1000, 1, 64, 128),
    (64, 64, 64, 128),
]
QUICK_SHAPES = [(64, 8, 32, 64), (200, 1, 16, 32)]
PAIRS = {"LSTM": (torch.nn.LSTM, lnn.LSTM), "GRU": (torch.nn.GRU, lnn.GRU), "RNN": (torch.nn.RNN, lnn.RNN)}


def candidates(kind: str, I: int, H: int):
    """(name, callable(x) -> output) pairs; the first is the peer, all share the peer's weights."""
    torch.manual_seed(0)
    Peer, Ours = {"LSTM": (torch.nn.LSTM, lnn.LSTM), "GRU": (torch.nn.GRU, lnn.GRU), "RNN": (torch.nn.RNN, lnn.RNN)}[
        kind
    ]
    peer, ours = Peer(I, H), Ours(I, H)
    ours.load_state_dict(peer.state_dict())
    rows = [(f"torch.nn.{kind}", lambda x: peer(x)[0]), (f"lstmkit {kind} forward", lambda x: ours(x)[0])]
    rows.append((f"lstmkit {kind} trace", lambda x: ours.trace(x)[0]))
    return rows


def time_once(fn, x, backward: bool) -> float:
    start = time.perf_counter()
    if backward:
        fn(x).sum().backward()
    else:
        with torch.no_grad():
            fn(x)
    return time.perf_counter() - start


def measure(kind: str, shape, backward: bool, repeats: int) -> list[tuple[str, float]]:
    T, B, I, H = shape
    x = torch.randn(T, B, I, requires_grad=backward)
    rows = candidates(kind, I, H)
    for _, fn in rows:  # warm-up
        time_once(fn, x, backward)
    times = {name: [] for name, _ in rows}
    for r in range(repeats):
        for name, fn in rows[r % len(rows) :] + rows[: r % len(rows)]:  # rotate who goes first
            times[name].append(time_once(fn, x, backward))
    return [(name, statistics.median(ts)) for name, ts in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes, 3 repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--kinds", nargs="+", default=["LSTM", "GRU", "RNN"], choices=["LSTM", "GRU", "RNN"])
    args = parser.parse_args()
    shapes, repeats = (QUICK_SHAPES, 3) if args.quick else (SHAPES, args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats}, float32, CPU")
    print()
    print("| layer | T, B, I, H | mode | candidate | median ms | speed vs torch.nn |")
    print("|---|---|---|---|---:|---:|")
    for kind in args.kinds:
        for shape in shapes:
            for backward in (False, True):
                results = measure(kind, shape, backward, repeats)
                peer_time = results[0][1]
                mode = "fwd+bwd" if backward else "fwd"
                for name, t in results:
                    ratio = peer_time / t
                    print(f"| {kind} | {', '.join(map(str, shape))} | {mode} | {name} | {t * 1e3:.1f} | {ratio:.2f} |",
                          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
