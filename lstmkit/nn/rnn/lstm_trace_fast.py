"""The LSTM trace without a Python loop over the gates: h from PyTorch's fused kernel, the gates recomputed.

For each layer, both directions in one call, then for each direction with all steps at once:

    h_0 .. h_{T-1} = fused LSTM kernel (torch._VF.lstm, the call torch.nn.LSTM makes, for this layer only)
    z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh      one matrix product per gate over all T·B rows
    i, f, o = σ(z_i), σ(z_f), σ(z_o);  g = tanh(z_g) = 2σ(2 z_g) − 1
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                  `cell_scan.cell_scan`
    h_t: the kernel's (o_t ⊙ tanh(c_t), then W_hr h_t with a projection), not recomputed

h_{t-1} is the previous step's output (h0 at the first step; for the reverse direction, "previous" is
t+1). The gates are the same functions of x, h_{t-1} and the weights as in the loop (`cells.lstm_step`),
so autograd through every field is exact: gradients reach the weights both directly and through the
kernel's backward. The output and the final states (h_n, c_n) are the kernel's own.

Shapes: T time, B batch, I input, H hidden, P = proj_size or H, D directions, L layers.

Why it is built so: on CPU the products run in oneDNN as a 1×1 convolution (`gate`), faster than F.linear's
sgemm; one product per gate keeps each buffer under 32 MB, which glibc would map afresh (and page-fault) on
every call; g uses σ, faster than torch's CPU tanh, by an exact identity (rounding within 3e-16 in float64).
Measured speeds: docs/benchmarks.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.rnn.cell_scan import cell_scan
from lstmkit.nn.rnn.cells import LSTMTrace
from lstmkit.nn.rnn.trace_layers import Prepared, layer_params, param_suffixes


def recompute_trace(module, prep: Prepared) -> tuple[Tensor, tuple[Tensor, Tensor], LSTMTrace]:
    """(output (T, B, D·P), (h_n, c_n) each (L·D, B, ·), LSTMTrace with fields (L·D, T, B, ·)), time-major.

    Any LSTM configuration without a mask (packed input takes the loop). Between layers, dropout in
    training mode is `F.dropout` at the same point as in the loop, so the same seed gives the same masks."""
    D = 2 if module.bidirectional else 1
    h0, c0 = prep.hx  # (L·D, B, P), (L·D, B, H)
    P = h0.shape[-1]
    suffixes = param_suffixes(module)
    layer_input, traces, h_n, c_n = prep.x, [], [], []
    for layer in range(module.num_layers):
        ks = slice(layer * D, (layer + 1) * D)
        output, h_last, c_last = fused_layer(module, layer, layer_input, h0[ks], c0[ks])  # (T, B, D·P), (D, B, ·)
        for direction in range(D):
            k = layer * D + direction
            h = output[..., direction * P : (direction + 1) * P]  # (T, B, P), this direction's h_t
            gates = recompute_gates(module, suffixes[k], x=layer_input, h=h, h0=h0[k], c0=c0[k], reverse=direction == 1)
            traces.append(gates)
        h_n.append(h_last)
        c_n.append(c_last)
        layer_input = output
        if module.training and module.dropout > 0 and layer < module.num_layers - 1:
            layer_input = F.dropout(layer_input, module.dropout, training=True)
    fields = zip(*traces, strict=True)
    trace = LSTMTrace(*(field[0].unsqueeze(0) if len(field) == 1 else torch.stack(field) for field in fields))
    return output, (torch.cat(h_n), torch.cat(c_n)), trace


def fused_layer(module, layer: int, x: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One layer (both directions) by PyTorch's fused kernel: (h of every step (T, B, D·P), h_n, c_n (D, B, ·)).

    The weights are that layer's, in torch's flat order (w_ih, w_hh[, b_ih, b_hh][, w_hr] per direction).
    `train` only asks the kernel to keep what its backward needs (the dropout here is 0)."""
    D = 2 if module.bidirectional else 1
    weights = []
    for suffix in param_suffixes(module)[layer * D : (layer + 1) * D]:
        W_ih, W_hh, b_ih, b_hh = layer_params(module, suffix)
        weights += [W_ih, W_hh] + ([b_ih, b_hh] if module.bias else [])
        weights += [getattr(module, f"weight_hr{suffix}")] if module.proj_size else []
    train = torch.is_grad_enabled()
    return torch._VF.lstm(
        x,
        (h0, c0),
        weights,
        has_biases=module.bias,
        num_layers=1,
        dropout=0.0,
        train=train,
        bidirectional=module.bidirectional,
        batch_first=False,
    )


def recompute_gates(module, suffix: str, x: Tensor, h: Tensor, h0: Tensor, c0: Tensor, reverse: bool) -> LSTMTrace:
    """The gates and cell states of one direction from its input x (T, B, I) and its outputs h (T, B, P)."""
    W_ih, W_hh, b_ih, b_hh = layer_params(module, suffix)
    xh = x_and_previous_h(x, h, h0, reverse)  # (T, B, I + P): [x_t ; h_{t-1}]
    W = torch.cat([W_ih, W_hh], dim=1)  # (4H, I + P)
    b = b_ih + b_hh if b_ih is not None else None  # (4H,)
    W_i, W_f, W_g, W_o = W.chunk(4)
    b_i, b_f, b_g, b_o = b.chunk(4) if b is not None else (None,) * 4
    i = gate(xh, W_i, b_i, torch.sigmoid_)  # (T, B, H)
    f = gate(xh, W_f, b_f, torch.sigmoid_)
    # tanh(z_g) = 2σ(2 z_g) − 1 (see the module docstring); doubling W_g and b_g doubles z_g exactly
    g = gate(xh, 2 * W_g, None if b_g is None else 2 * b_g, tanh_of_half_)
    o = gate(xh, W_o, b_o, torch.sigmoid_)
    del xh  # without autograd, c reuses its memory (fresh pages fault, see the module docstring)
    c = cell_scan(f, i, g, c0, reverse)  # (T, B, H)
    return LSTMTrace(i, f, g, o, c, h)


def x_and_previous_h(x: Tensor, h: Tensor, h0: Tensor, reverse: bool) -> Tensor:
    """[x_t ; h_{t-1}] for every step, (T, B, I + P): h_{t-1} is h0 at the first step (t = 0, or T-1 when
    reverse). One buffer filled by slices (a cat of x with a shifted copy of h would need two)."""
    T, B, I = x.shape
    xh = x.new_empty(T, B, I + h.shape[-1])
    xh[..., :I] = x
    first, rest, previous = (-1, slice(0, -1), h[1:]) if reverse else (0, slice(1, None), h[:-1])
    xh[first, :, I:] = h0
    xh[rest, :, I:] = previous
    return xh


def tanh_of_half_(z2: Tensor) -> Tensor:
    """tanh(z) = 2σ(2z) − 1, from z2 = 2z, in place unless autograd keeps σ(2z) for its backward."""
    s = torch.sigmoid_(z2)
    return (2 * s).sub_(1) if torch.is_grad_enabled() else s.mul_(2).sub_(1)


def gate(xh: Tensor, W: Tensor, b: Tensor | None, activation_) -> Tensor:
    """activation_(W xh_t + b) for every row: xh (T, B, K), W (N, K) -> (T, B, N). oneDNN for CPU float32.

    The activation runs in place on the fresh product: the product's backward needs only its inputs."""
    T, B, K = xh.shape
    if not _onednn_takes(xh):
        return activation_(F.linear(xh.reshape(T * B, K), W, b)).view(T, B, W.shape[0])
    # A 1×1 convolution is this matrix product; channels_last reads the rows where they lie (no copy).
    # Dilation does nothing to a 1×1 kernel, but makes torch's backward pick oneDNN too: its heuristic
    # sends undilated 1×1 convolutions of fewer than 16 images on one thread to THNN's im2col path
    # (forward + backward 57 ms instead of 27 at 8192×384 -> 256, measured).
    pixels = xh.reshape(1, 1, T * B, K).permute(0, 3, 1, 2)  # (1, K, 1, T·B), channels_last
    kernel = W[:, :, None, None]  # (N, K, 1, 1)
    z = torch.mkldnn_convolution(pixels, kernel, b, padding=[0, 0], stride=[1, 1], dilation=[2, 2], groups=1)
    return activation_(z).permute(0, 2, 3, 1).reshape(T, B, -1)  # z (1, N, 1, T·B) -> (T, B, N)


def _onednn_takes(x: Tensor) -> bool:
    """Whether oneDNN can run the product: float32 on CPU, rows to multiply, oneDNN built in and not switched
    off, and not under torch.compile, whose fake tensors have no oneDNN view (the compiler picks the product)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() == 0:
        return False
    mkldnn = torch.backends.mkldnn
    return mkldnn.is_available() and mkldnn.enabled and not torch.compiler.is_compiling()
