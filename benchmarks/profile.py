"""Where the time of one benchmark case goes: `torch.profiler` over a few calls, top operators by self time.

    .venv/bin/python benchmarks/profile.py lstm-trace        # LSTM.trace, T256 B32 I128 H256, forward
    .venv/bin/python benchmarks/profile.py slstm --backward  # our sLSTM, B4 T256 H128 NH4, forward + backward
    .venv/bin/python benchmarks/profile.py mlstm --backward  # our chunkwise mLSTM, B4 NH4 T4096 D64
    .venv/bin/python benchmarks/profile.py lm                # xLSTMLM training step (no optimizer), suite sizes

The suite (`lstmkit bench`, lstmkit/bench/) measures; this script explains a row: it prints the
operators that take the time, with their call counts, so a reader sees e.g. how many kernels a step
launches and which products dominate.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import lstmkit.nn as lnn
from lstmkit.bench import language_models, xlstm_cells
from lstmkit.nn.mlstm import mlstm_chunkwise
from lstmkit.nn.slstm import slstm


def lstm_trace(backward: bool):
    layer = lnn.LSTM(128, 256)
    x = torch.randn(256, 32, 128, requires_grad=backward)
    return lambda: layer.trace(x)[0]


def slstm_case(backward: bool):
    g = torch.Generator().manual_seed(0)
    R = (torch.randn(4, 4, 32, 32, generator=g) * 0.1).requires_grad_(backward)
    b, x = torch.zeros(512, requires_grad=backward), torch.randn(4, 256, 512, generator=g, requires_grad=backward)
    return lambda: slstm(x, R, b)[0]


def mlstm_case(backward: bool):
    x = xlstm_cells.mlstm_inputs(4, 4, 4096, 64, torch.device("cpu"), grad=backward)
    return lambda: mlstm_chunkwise(*x)[0]


def lm_case(backward: bool):
    s = language_models.LM_SIZES
    model = lnn.xLSTMLM(lnn.xLSTMConfig(vocab_size=s["vocab"], embedding_dim=s["E"], blocks="msms"))
    tokens = torch.randint(0, s["vocab"], (s["B"], s["T"] + 1))

    def loss():
        logits = model(tokens[:, :-1])[0]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))

    return loss


CASES = {"lstm-trace": lstm_trace, "slstm": slstm_case, "mlstm": mlstm_case, "lm": lm_case}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--backward", action="store_true", help="profile forward + backward")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()
    backward = args.backward or args.case == "lm"
    fn = CASES[args.case](backward)

    def call():
        if backward:
            fn().sum().backward()
        else:
            with torch.no_grad():
                fn()

    call()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.calls):
            call()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
