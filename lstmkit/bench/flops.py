"""FLOP counts of the benchmarked computations: matrix products only, 2 FLOPs per multiply-add.

Elementwise work (gate nonlinearities, decay matrices, normalisers) is left out: it is memory-bound,
and the GEMM rate is the ceiling these fractions are quoted against.

A recurrent layer (one layer, one direction), G gate blocks (LSTM 4, GRU 3, RNN 1), per step:

    input product     (B×I)·(I×G·H)     2·B·I·G·H
    recurrent product (B×H)·(H×G·H)     2·B·H·G·H
    forward = T · 2·B·G·H·(I + H)

Backward does two products for each forward one (the gradient of the input and of the weight), so
forward + backward = 3 × forward. The same factor is used for the mLSTM (its FLOPs:
`lstmkit.nn.mlstm.chunkwise_flops`).
"""

from __future__ import annotations

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}

BACKWARD_FACTOR = 3
"""forward + backward FLOPs / forward FLOPs for products: y = a·b needs da = dy·bᵀ and db = aᵀ·dy."""


def recurrent_layer_flops(kind: str, T: int, B: int, I: int, H: int) -> float:
    """Forward FLOPs of one layer of `kind` (LSTM, GRU, RNN) over T steps."""
    return T * 2.0 * B * GATES[kind] * H * (I + H)


def with_backward(forward_flops: float, mode: str) -> float:
    return forward_flops * (BACKWARD_FACTOR if mode == "fwd+bwd" else 1)
