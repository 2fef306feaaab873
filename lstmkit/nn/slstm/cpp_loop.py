"""The sLSTM layer's time loops in C++: `csrc/slstm.cpp`, compiled on first use, behind an autograd.Function.

The equations are those of `lstmkit.nn.slstm.cell` (xLSTM paper section 2.2):

    ĩ, f̃, z̃, õ = x̃_t + R h_{t-1} + b
    m_t = max(log σ(f̃) + m_{t-1}, ĩ)        (m_t = ĩ where n_{t-1} = 0)
    i = exp(ĩ - m_t)   f = exp(log σ(f̃) + m_{t-1} - m_t)   z = tanh(z̃)   o = σ(õ)
    c_t = f c_{t-1} + i z    n_t = f n_{t-1} + i    h_t = o c_t / n_t

and the backward is the same reverse loop as `lstmkit.nn.slstm.python_loop.sLSTMFunction.backward`.

Why C++: at the sizes sLSTMs run at (B·H ≈ 512) a step is dispatch overhead, not arithmetic. A C++ forward
step is one `bmm` (every head and gate), three vectorized element-wise ATen calls and plain loops; a backward
step one plain loop and one `bmm`; MKL and ATen stay on the calling thread. Measured speeds: docs/benchmarks.md.

Build: `torch.utils.cpp_extension.load` compiles the source once into torch's extension cache
(`$TORCH_EXTENSIONS_DIR` or ~/.cache/torch_extensions/<python>_<device>/lstmkit_slstm); later processes only
run ninja's no-op check. The source includes only <ATen/core/Tensor.h>, a few per-operator headers and
<torch/library.h>, and registers `torch.ops.lstmkit_slstm.{forward,backward}` without pybind11. An flock
around the build serializes first uses and lets a lock file left by a process killed mid-build (which torch
would wait on forever) be removed as stale.

Fallback: when the build fails (no compiler, no ninja, ...) `extension()` warns once, naming why, and
returns None, and `lstmkit.nn.slstm.slstm` keeps using the Python loop, as it does for tensors that are
not on the CPU or not float32/float64.

Shapes: B batch, T time, NH heads, DH head size, H = NH·DH.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor

from lstmkit.nn.cpp_build import build, compile_once
from lstmkit.nn.slstm.layout import flat, heads

SOURCE = Path(__file__).parent / "csrc" / "slstm.cpp"
NAME = "lstmkit_slstm"


@functools.cache
def extension():
    """`torch.ops.lstmkit_slstm`, built on first use; None (after one warning) when it cannot be built."""
    return build(NAME, _build, "the sLSTM C++ loop", "the slower Python loop")


def _build() -> None:
    compile_once(NAME, SOURCE, ["-O3"])


def usable(x: Tensor, *others: Tensor) -> bool:
    """The C++ loop handles CPU tensors of one dtype, float32 or float64."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and all(t.device.type == "cpu" and t.dtype == x.dtype for t in others)
        and extension() is not None
    )


def _final(s: Tensor, T: int) -> Tensor:
    """The state after the last step from (S, NH, B, DH) slots: slot T % S (S = T + 1, or 2 alternating)."""
    return flat(s[T % s.shape[0]])


def _time_major(mask: Tensor | None, like: Tensor) -> Tensor:
    """(B, T) bool -> (T, B) contiguous; an absent mask is an empty tensor."""
    return like.new_empty(0, dtype=torch.bool) if mask is None else mask.t().contiguous()


def _forward(x, R, b, h0, c0, n0, m0, *, reset: Tensor | None, valid: Tensor | None, save: bool):
    """The C++ forward loop -> out, (h, c, n, m) in (S, NH, B, DH) slots, gates, and Rcat and the masks
    as the C++ side takes them (see csrc/slstm.cpp)."""
    NH, _, DH, _ = R.shape
    Rcat = R.permute(0, 3, 1, 2).reshape(NH, DH, 4 * DH)  # (NH, in, gate·out)
    if reset is not None and valid is not None:
        reset = reset & valid  # padding wins over reset
    reset, valid = _time_major(reset, x), _time_major(valid, x)
    states = [heads(s, NH) for s in (h0, c0, n0, m0)]
    out, h, c, n, m, gates = extension().forward(x, b, Rcat, *states, reset, valid, save)
    return out, (h, c, n, m), gates, Rcat, reset, valid


def slstm_cpp(x, R, b, h0, c0, n0, m0, reset: Tensor | None = None, valid: Tensor | None = None):
    """The C++ loops with autograd: -> out (B, T, H), final h, c, n, m (B, H). Arguments as
    `lstmkit.nn.slstm.python_loop.sLSTMFunction`; the caller checks shapes and `usable`. Without gradients to
    compute, the forward keeps two steps of state instead of all T for the backward."""
    inputs = (x, R, b, h0, c0, n0, m0)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return sLSTMCppFunction.apply(*inputs, reset, valid)
    out, every, _, _, _, _ = _forward(*inputs, reset=reset, valid=valid, save=False)
    return out, *(_final(s, x.shape[1]) for s in every)


class sLSTMCppFunction(torch.autograd.Function):
    """Forward and backward time loops in C++."""

    @staticmethod
    def forward(ctx, x, R, b, h0, c0, n0, m0, reset: Tensor | None = None, valid: Tensor | None = None):
        out, (h, c, n, m), gates, Rcat, reset, valid = _forward(
            x, R, b, h0, c0, n0, m0, reset=reset, valid=valid, save=True
        )
        ctx.save_for_backward(Rcat, h, c, n, gates, reset, valid)
        return out, *(_final(s, x.shape[1]) for s in (h, c, n, m))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, dh_T, dc_T, dn_T, dm_T):
        Rcat, h, c, n, gates, reset, valid = ctx.saved_tensors
        NH, DH = Rcat.shape[:2]
        d_final = [heads(g, NH) for g in (dh_T, dc_T, dn_T, dm_T)]
        dx, dRcat, dh, dc, dn, dm = extension().backward(d_out, Rcat, h, c, n, gates, reset, valid, *d_final)
        dR = dRcat.view(NH, DH, 4, DH).permute(0, 2, 3, 1)
        return dx, dR, dx.sum((0, 1)), flat(dh), flat(dc), flat(dn), flat(dm), None, None
