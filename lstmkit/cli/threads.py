"""`--threads N`: how many threads torch computes with, one option shared by every verb that runs torch.

    add_threads_option(parser)                 train, eval, compare, generate, explain, report: default 1
    add_threads_option(parser, default=None)   bench: left out, the suite measures at 1 and at 2 threads
    with threads_of(args): args.run(args)      `lstmkit.cli.main`: checks N (one line, exit 2), sets it for the
                                               verb, and gives the process its own count back afterwards

Why 1 by default. torch starts one thread per core; on a machine where other work runs, those threads wait for
each other at every small operation, and a recurrent model's training step is thousands of small operations.
The default was chosen by measurement: one training step (forward, backward, gradient clipping, AdamW) of the
models the verbs train, at 1 and at 2 threads in the same process, the two alternating in interleaved rounds,
median of 9 rounds each — the parity task's sLSTM, LSTM and xLSTM (blocks ms) at the default hidden size 64,
the adding task's LSTM at hidden 64, 256 and 1024, the xLSTM at 256 and 512 — on a two-core machine with other
work running. One thread was faster at every size, so the default is 1 whatever the model (no size threshold
was found to put in); a large model on an idle machine with many cores may gain from `--threads N`.

Processes a verb starts get the same count: `train --nproc N` hands its command line, `--threads` included, to
torchrun, and every rank parses it again. `lstmkit data` (its baselines fix one thread themselves), walkthrough,
gradients and exercise (NumPy) have no such option.
"""

from __future__ import annotations

import contextlib

DEFAULT_THREADS = 1
"""Torch threads of a verb when --threads is left out (measured; see above)."""


def add_threads_option(parser, default: int | None = DEFAULT_THREADS, shown: str | None = None) -> None:
    """--threads N on a verb's parser; `shown` replaces the default's description in --help."""
    why = "1: measured faster than 2 at every model size tried, on a machine with other work running"
    parser.add_argument(
        "--threads",
        type=int,
        default=default,
        metavar="N",
        help=f"torch threads, 1 to {max_threads()} (default {shown or why})",
    )


def max_threads() -> int:
    from lstmkit.bench.machine import MAX_THREADS

    return MAX_THREADS


@contextlib.contextmanager
def threads_of(args):
    """Inside the block torch uses args.threads threads (when the verb has the option and it is not None)."""
    threads = getattr(args, "threads", None)
    if threads is None:
        yield
        return
    import torch

    from lstmkit.bench.machine import check_threads

    check_threads(threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
