"""mLSTM, chunkwise form: parallel inside chunks of L steps, recurrent across them.

Cost O(T·L) time and O(T·L + T/L · DK·DV) memory: linear in T, with the parallel form's large
matrix products. Any T works (whole chunks, then a shorter last chunk through the parallel form); the
result equals the recurrent and parallel forms (float64: 1e-10). Two paths:

* no masks (also all-valid / no-reset masks, and a reset only at t = 0, which is the empty state going
  in): `chunkwise_fast`. The stabilizers from one cumsum, one cummax and a log-depth max-plus scan; the products in
  `ChunkwiseKernel`, a hand-written backward with fixed stabilizers (the eps term's stabilizer gradient is
  put back by autograd on O(T) tensors). Per chunk: one L×L exponential, P = (q̂Kᵀ) ⊙ W in place, the
  normalizer as an extra column of V and C, the chunk-to-chunk scan as one addcmul per chunk.
* masks (also f̃ = -inf, a reset of that head there: `forget_all_as_reset`): the chunks' states
  by the parallel form's final-state formula, then the general parallel form
  (initial-state term, segment ids, padding guards) for all chunks at once, with autograd. Padding is
  folded into the gates once (`mask_gates`); reset segment ids are counted within each chunk, which
  starts from its own carried state.

Speed (the unmasked path, B=4, NH=4, DK=DV=64, float32, on a 2-core AMD CPU shared with other busy
processes, against `mlstm_kernels` chunkwise--native_autograd with L=64, interleaved in one process,
medians of 7-9, ranges over repeated runs; ratio = theirs / ours; before this path: fwd 0.91-1.18,
fwd+bwd 1.06-1.12):

    T      threads   fwd (L=64)   fwd+bwd (L=64)   fwd+bwd (L=32)
    1024   1         1.2-2.3      1.44-1.73        1.35-1.79
    4096   1         1.3-1.44     2.2-2.8          2.2-2.9
    1024   2         2.1          1.73             1.90        (2 threads: one run each, very noisy)
    4096   2         1.2-1.6      3.5-5.0          3.1-4.2

Most of the gain is in backward: autograd through the general form keeps ~25 passes over the L×L
matrices, the kernel ~8, and no slice/concatenate copies of the T/L states. L=32 and 64 are within noise
at DK=DV=64; `auto_chunk_size` picks 64 there and 128 for larger heads.

FLOPs (`chunkwise_flops`) and the achieved rate, fwd+bwd, 1 thread, against torch.mm 2048³ in the same
process (65-98 GFLOP/s single-threaded under the machine's load): DK=DV=64, T=4096: 28 % (L=64);
DK=DV=128, T=4096: 36 % (L=128); DK=DV=256, T=8192, B·NH=8: 43-48 % (L=128, the fastest) and 52 % (L=256,
counting the masked half of the L×L products). The limit is the batched products themselves: MKL runs
(128×256)·(256×257)-sized batches at 37-45 GFLOP/s single-threaded, about half its 2048³ rate; then the
scan (memory bound, one pass over a DK×DV state per chunk) and temporaries above glibc's 32 MB mmap
threshold, which are page-faulted afresh on every call.

At the extremes (`state`): e^{-m} is computed with m clamped to m ≥ `m_floor` (`lower_bound`), in both paths;
float16 and bfloat16 run in float32 (`in_float32`).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.mlstm.chunkwise_fast import chunkwise_unmasked
from lstmkit.nn.mlstm.parallel import _final_state, mask_gates, parallel_with_state
from lstmkit.nn.mlstm.state import (
    check_inputs,
    check_masks,
    forget_all_as_reset,
    in_float32,
    mLSTMState,
    no_steps,
)


def mlstm_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState | None = None,
    eps: float = 1e-6,
    detach_normalizer: bool = False,
    chunk_size: int | None = None,
    *,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, mLSTMState]:
    """h (B, NH, T, DV) and the final state, in chunks of `chunk_size` (None: `auto_chunk_size`).

    See `mlstm_recurrent` for the arguments.
    """
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size is {chunk_size!r}, expected a positive integer or None")
    state = check_inputs(q, k, v, i, f, state)
    check_masks(q, reset, valid)
    T, DK, DV = q.shape[2], q.shape[3], v.shape[3]
    if T == 0:
        return no_steps(q, v, state)
    L = auto_chunk_size(T, DK, DV) if chunk_size is None else chunk_size
    reset, valid = (None if x is None else x[:, None] for x in (reset, valid))  # (B, 1, T): broadcast over heads
    f, reset = forget_all_as_reset(f, reset)  # reset (B, NH, T) where some f̃ = -inf
    if reset is not None:
        state, reset = reset_at_start(state, reset, valid)
    if reset is not None and not reset.any():
        reset = None  # trivial masks take the unmasked path: same values, bit for bit
    if valid is not None and valid.all():
        valid = None
    if reset is None and valid is None:
        body = functools.partial(unmasked, eps=eps, detach_normalizer=detach_normalizer, L=L)
    else:
        body = functools.partial(masked, eps=eps, detach_normalizer=detach_normalizer, L=L, reset=reset, valid=valid)
    return in_float32(body, q, k, v, i, f, state)


def masked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    eps: float,
    detach_normalizer: bool,
    L: int,
    reset: Tensor | None,
    valid: Tensor | None,
) -> tuple[Tensor, mLSTMState]:
    """With masks (B, 1 or NH, T): the chunks' states by `_final_state`, then all chunks' outputs by the general
    parallel form (initial-state term, segment ids, padding guards), with autograd."""
    NC, tail = divmod(q.shape[2], L)
    i, f, reset = mask_gates(i, f, reset, valid)  # padding now lives in the gates
    log_f = F.logsigmoid(f)

    starts = []  # the state at the start of each full chunk
    for c in range(NC):
        starts.append(state)
        span = slice(c * L, (c + 1) * L)
        state = _final_state(
            k[:, :, span],
            v[:, :, span],
            i[:, :, span],
            log_f[:, :, span].cumsum(-1),
            state,
            reset=part(reset, span),
            valid=part(valid, span),
        )
    outputs = []
    if NC:

        def chunks(x: Tensor) -> Tensor:  # (B, NH, NC·L, ...) -> (B, NH, NC, L, ...)
            return x[:, :, : NC * L].unflatten(2, (NC, L))

        start = mLSTMState(*(torch.stack(s, dim=2) for s in zip(*starts, strict=True)))  # chunk axis 2
        reset_c, valid_c = (None if x is None else chunks(x) for x in (reset, valid))  # (B, 1, NC, L)
        h, _ = parallel_with_state(
            chunks(q),
            chunks(k),
            chunks(v),
            chunks(i),
            chunks(f),
            start,
            eps,
            detach_normalizer,
            reset=reset_c,
            valid=valid_c,
        )
        outputs.append(h.flatten(2, 3))
    if tail:
        span = slice(NC * L, q.shape[2])
        h, state = parallel_with_state(
            q[:, :, span],
            k[:, :, span],
            v[:, :, span],
            i[:, :, span],
            f[:, :, span],
            state,
            eps,
            detach_normalizer,
            reset=part(reset, span),
            valid=part(valid, span),
        )
        outputs.append(h)
    return torch.cat(outputs, dim=2), state


def unmasked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    eps: float,
    detach_normalizer: bool,
    L: int,
) -> tuple[Tensor, mLSTMState]:
    """No masks: the whole chunks through `chunkwise_unmasked`, a shorter last chunk through the parallel form."""
    T = q.shape[2]
    NC, tail = divmod(T, L)
    outputs = []
    if NC:
        span = slice(0, NC * L)
        h, state = chunkwise_unmasked(
            q[:, :, span], k[:, :, span], v[:, :, span], i[:, :, span], f[:, :, span], state, eps, detach_normalizer, L
        )
        outputs.append(h)
    if tail:
        span = slice(NC * L, T)
        h, state = parallel_with_state(
            q[:, :, span], k[:, :, span], v[:, :, span], i[:, :, span], f[:, :, span], state, eps, detach_normalizer
        )
        outputs.append(h)
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2), state


def chunkwise_flops(B: int, NH: int, T: int, DK: int, DV: int, chunk_size: int) -> int:
    """Floating-point operations of the matrix products in one forward pass of the unmasked chunkwise form.

    Each product counts 2 × its multiply-adds, computed densely as the code does (the masked upper triangle
    of the L×L products included); V⁺ = [V | 1] and C⁺ = [C | n] carry the normalizer as one more column.
    Per chunk of l steps (l = L, and l = T mod L for a shorter last chunk), per head:

        S = Q Kᵀ                (l×DK)(DK×l)          2 l² DK
        P V⁺                    (l×l)(l×(DV+1))       2 l² (DV+1)
        Q C⁺_c                  (l×DK)(DK×(DV+1))     2 l DK (DV+1)
        (α ⊙ K)ᵀ V⁺             (DK×l)(l×(DV+1))      2 l DK (DV+1)   the chunk's state update

    Backward has 8 products of the same sizes (dP = dY V⁺ᵀ, Pᵀ dY, dS K, dSᵀ Q; (w0 ⊙ Q)ᵀ dY, V⁺ Dᵀ,
    (α ⊙ K) D, dY C⁺ᵀ), i.e. 2× forward, so forward+backward is 3× this. Elementwise work (the exponentials,
    O(T·L)) and the chunk-to-chunk scan (O(T/L · DK·DV)) are not counted.
    """
    NC, tail = divmod(T, chunk_size)

    def chunk(l: int) -> int:
        return 2 * l * l * DK + 2 * l * l * (DV + 1) + 2 * l * DK * (DV + 1) + 2 * l * DK * (DV + 1)

    return B * NH * (NC * chunk(chunk_size) + chunk(tail))


def reset_at_start(state: mLSTMState, reset: Tensor, valid: Tensor | None) -> tuple[mLSTMState, Tensor]:
    """A reset at t = 0 (on a valid token) is the empty state going in: put it there, drop it from the mask.
    reset, valid (B, 1 or NH, T)."""
    first = reset[..., 0] if valid is None else reset[..., 0] & valid[..., 0]  # (B, 1 or NH)
    if not first.any():
        return state, reset
    C = torch.where(first[..., None, None], 0.0, state.C)
    n = torch.where(first[..., None], 0.0, state.n)
    m = torch.where(first, -torch.inf, state.m)
    return mLSTMState(C, n, m), torch.cat([torch.zeros_like(reset[..., :1]), reset[..., 1:]], dim=-1)


def auto_chunk_size(T: int, DK: int, DV: int) -> int:
    """The chunk length used when none is given: 64 for heads up to 64×64, else 128; at most T (a power of two).

    Per step the state products cost ~4·DK·DV whatever L is, the in-chunk products ~2·L·(DK+DV): a small L
    does less work but in smaller, less efficient matrix products, and keeps T/L states of DK×DV. Measured
    (1 thread, fwd+bwd, this module's docstring): DK=DV=64 best at L=32..64, 128 at L=64..128, 256 at L=128
    (L=64 is 2× slower there: 128 states of 256×257 per head).
    """
    L = 64 if DK * DV <= 64 * 64 else 128
    return min(L, 1 << (T.bit_length() - 1)) if T > 0 else L


def part(mask: Tensor | None, span: slice) -> Tensor | None:
    """mask[:, :, span], or None when there is no mask."""
    return None if mask is None else mask[:, :, span]
