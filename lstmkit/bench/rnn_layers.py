"""LSTM, GRU and RNN layers against `torch.nn`, and against the loop most from-scratch LSTMs are.

Candidates of one case share the peer's weights (T, B, I, H; one layer, float32):

    torch.nn.LSTM          PyTorch's fused kernel (oneDNN on CPU, cuDNN on GPU)
    lstmkit LSTM           our layer's forward: the same kernel, so the ratio should be ~1
    lstmkit LSTM.trace     our readable path, which also returns every gate and state of every step
    nn.LSTMCell loop       `for x_t in x: h, c = cell(x_t, (h, c))`, what most from-scratch LSTMs are

Rows: forward and trace against torch.nn (targets 0.95 and 1/2.5 for the forward pass, 1/4 with the
backward, from the layers issue), forward and trace against the cell loop. GRU and RNN have no cell
loop row.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

import lstmkit.nn as lnn
from lstmkit.bench.flops import recurrent_layer_flops, with_backward
from lstmkit.bench.results import Row
from lstmkit.bench.timing import CPU, MODES, median_ms, race

FAMILY = "LSTM / GRU / RNN layers"
SHAPES = [(256, 32, 128, 256), (1000, 1, 64, 128), (64, 64, 64, 128)]  # (T, B, I, H)
QUICK_SHAPES = [(16, 4, 8, 16)]
TARGETS = {
    ("forward", "fwd"): 0.95,
    ("forward", "fwd+bwd"): 0.95,
    ("trace", "fwd"): 1 / 2.5,
    ("trace", "fwd+bwd"): 1 / 4,
}


def target(kind: str, path: str | None, mode: str) -> float | None:
    """The layers issue's targets: every forward ≥ 0.95× torch.nn; only the LSTM's trace has one."""
    return TARGETS.get((path, mode)) if path == "forward" or kind == "LSTM" else None


def cell_loop(cell: torch.nn.LSTMCell):
    """The plain Python loop of `torch.nn.LSTMCell` over time: (T, B, I) -> (T, B, H)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        h = c = x.new_zeros(x.shape[1], cell.hidden_size)
        outputs = []
        for x_t in x.unbind(0):
            h, c = cell(x_t, (h, c))
            outputs.append(h)
        return torch.stack(outputs)

    return run


def candidates(kind: str, I: int, H: int, device: torch.device) -> dict:
    """{name: fn(x) -> output (T, B, H)}; the peer first. Every candidate has the peer's weights."""
    torch.manual_seed(0)
    Peer, Ours = {"LSTM": (torch.nn.LSTM, lnn.LSTM), "GRU": (torch.nn.GRU, lnn.GRU), "RNN": (torch.nn.RNN, lnn.RNN)}[
        kind
    ]
    peer, ours = Peer(I, H).to(device), Ours(I, H).to(device)
    ours.load_state_dict(peer.state_dict())
    fns = {
        f"torch.nn.{kind}": lambda x: peer(x)[0],
        f"lstmkit {kind}": lambda x: ours(x)[0],
        f"lstmkit {kind}.trace": lambda x: ours.trace(x)[0],
    }
    if kind == "LSTM":
        cell = torch.nn.LSTMCell(I, H).to(device)
        cell.load_state_dict({name.removesuffix("_l0"): p for name, p in peer.state_dict().items()})
        fns["nn.LSTMCell loop"] = cell_loop(cell)
    return fns


def rows(quick: bool, repeats: int, device: torch.device = CPU, sync=None) -> Iterator[Row]:
    for kind in ("LSTM", "GRU", "RNN"):
        for T, B, I, H in QUICK_SHAPES if quick else SHAPES:
            fns = candidates(kind, I, H, device)
            x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(1)).to(device)
            for mode, wrap in MODES.items():
                xm = x.clone().requires_grad_(mode == "fwd+bwd")
                runs = race({name: wrap(lambda fn=fn, xm=xm: fn(xm)) for name, fn in fns.items()}, repeats, sync)
                flops = with_backward(recurrent_layer_flops(kind, T, B, I, H), mode)
                pairs = [
                    (f"lstmkit {kind}", f"torch.nn.{kind}", "forward"),
                    (f"lstmkit {kind}.trace", f"torch.nn.{kind}", "trace"),
                ]
                if kind == "LSTM":
                    pairs += [(name, "nn.LSTMCell loop", None) for name in ("lstmkit LSTM", "lstmkit LSTM.trace")]
                for ours, peer, path in pairs:
                    yield Row(
                        family=FAMILY,
                        case=f"{kind} T{T} B{B} I{I} H{H}",
                        mode=mode,
                        ours=ours,
                        ours_value=median_ms(runs[ours]),
                        peer=peer,
                        peer_value=median_ms(runs[peer]),
                        target=target(kind, path, mode),
                        flops=flops,
                        ours_runs=runs[ours],
                        peer_runs=runs[peer],
                    )
