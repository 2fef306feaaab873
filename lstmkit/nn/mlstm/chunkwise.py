"""mLSTM, chunkwise form: parallel inside chunks of L steps, recurrent across them.

Chunk c holds steps 1..L (a shorter last chunk is the same with fewer) and starts from the carried state
(C_c, n_c, m_c); (C_0, n_0, m_0) is the initial state. For steps s ≤ t of chunk c:

    b_t  = Σ_{r ≤ t, r in chunk c} log σ(f̃_r)       the cumulative log forget gates, restarted in each chunk
    b_L                                              the chunk's whole log forget

Inter-chunk recurrence: the state at the chunk's end, which the next chunk starts from,

    a_s     = b_L - b_s + ĩ_s                        log weight of k_s v_sᵀ at the chunk's end
    g       = b_L + m_c                              log weight of the carried state there
    m_{c+1} = max(g, max_s a_s)                      the stabilizer
    C_{c+1} = e^{g - m_{c+1}} C_c + Σ_s e^{a_s - m_{c+1}} k_s v_sᵀ
    n_{c+1} = e^{g - m_{c+1}} n_c + Σ_s e^{a_s - m_{c+1}} k_s

Inside the chunk: the intra-chunk parallel part plus the carried state's contribution,

    D_ts = b_t - b_s + ĩ_s                          log weight of k_s v_sᵀ in C_t
    g_t  = b_t + m_c                                 log weight of the carried state in C_t
    m_t  = max(g_t, max_s D_ts)                      the stabilizer: the recurrent form's m_t
    num_t = Σ_s e^{D_ts - m_t} (q̂_tᵀ k_s) v_s + e^{g_t - m_t} q̂_tᵀ C_c
    qn_t  = Σ_s e^{D_ts - m_t} (q̂_tᵀ k_s)     + e^{g_t - m_t} q̂_tᵀ n_c
    h_t   = num_t / (max(|qn_t|, e^{-m_t}) + eps),   q̂ = q / √DK

(the inter-chunk step is the last row t = L of the intra-chunk one: a_s = D_Ls, g = g_L). Every exponent is ≤ 0.

Shapes: q, k (B, NH, T, DK), v (B, NH, T, DV), i, f (B, NH, T); state C (B, NH, DK, DV), n (B, NH, DK),
m (B, NH); NC = T // L whole chunks, (B, NH, NC, L, ·) when split, then a tail of T mod L steps.

Why: linear in T like the recurrent form (O(T·L) time, O(T·L + T/L · DK·DV) memory), with the parallel
form's large matrix products instead of T small steps. Two paths, both tested equal to the recurrent form:
`chunkwise_loop` below, the equations as written, with masks; `chunkwise_fast.chunkwise_unmasked` without them.

Masks (`state`): padding goes into the gates (`mask_gates`); resets become segment ids counted within each chunk,
as in the parallel form; a reset at t = 0 is the empty state going in (`reset_at_start`); f̃ = -inf is a reset
(`forget_all_as_reset`). e^{-m} is computed with m ≥ `m_floor`; float16 and bfloat16 run in float32.
Measured speeds: docs/benchmarks.md.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.masks import check_masks
from lstmkit.nn.mlstm.chunkwise_fast import chunkwise_unmasked
from lstmkit.nn.mlstm.parallel import final_state, mask_gates, parallel_with_state
from lstmkit.nn.mlstm.state import (
    check_inputs,
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
    *,
    detach_normalizer: bool = False,
    chunk_size: int | None = None,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, mLSTMState]:
    """h (B, NH, T, DV) and the final state, in chunks of `chunk_size` (None: `auto_chunk_size`).

    See `mlstm_recurrent` for the arguments.
    """
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size is {chunk_size!r}, expected a positive integer or None")
    state = check_inputs(q, k, v, i, f, state)
    check_masks(reset, valid, (q.shape[0], q.shape[2]), "(B, T)")
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
        body = functools.partial(
            chunkwise_loop, eps=eps, detach_normalizer=detach_normalizer, L=L, reset=reset, valid=valid
        )
    return in_float32(body, q, k, v, i, f, state)


def chunkwise_loop(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    *,
    eps: float,
    detach_normalizer: bool,
    L: int,
    reset: Tensor | None,
    valid: Tensor | None,
) -> tuple[Tensor, mLSTMState]:
    """The module's equations as they read, masks allowed (B, 1 or NH, T), with autograd: the carried states
    (C_c, n_c, m_c) by a loop over the chunks (`chunk_end_state`), then every whole chunk's h at once from its
    carried state (`whole_chunks_h`), then the tail's h and the final state by the parallel form."""
    T = q.shape[2]
    NC = T // L
    i, f, reset = mask_gates(i, f, reset, valid)  # padding now lives in the gates
    log_f = F.logsigmoid(f)
    starts = []  # (C_c, n_c, m_c): the state each whole chunk starts from
    for c in range(NC):
        starts.append(state)
        span = slice(c * L, (c + 1) * L)
        state = chunk_end_state(k, v, i, log_f, state, span=span, reset=reset, valid=valid)
    outputs = []
    if NC:
        h = whole_chunks_h(
            q, k, v, i, f, starts, L=L, eps=eps, detach_normalizer=detach_normalizer, reset=reset, valid=valid
        )
        outputs.append(h)
    if NC * L < T:
        span = slice(NC * L, T)
        h, state = parallel_with_state(
            *(x[:, :, span] for x in (q, k, v, i, f)),
            state,
            eps=eps,
            detach_normalizer=detach_normalizer,
            reset=part(reset, span),
            valid=part(valid, span),
        )
        outputs.append(h)
    return torch.cat(outputs, dim=2), state


def chunk_end_state(
    k: Tensor,
    v: Tensor,
    i: Tensor,
    log_f: Tensor,
    state: mLSTMState,
    *,
    span: slice,
    reset: Tensor | None,
    valid: Tensor | None,
) -> mLSTMState:
    """The inter-chunk step: (C_{c+1}, n_{c+1}, m_{c+1}) from (C_c, n_c, m_c) = `state` and the chunk's steps
    `span`, with b its cumulative log forget gates. Padding must already be in i, log_f and reset (`mask_gates`)."""
    b = log_f[:, :, span].cumsum(-1)  # (B, NH, L)
    return final_state(
        k[:, :, span], v[:, :, span], i[:, :, span], b, state, reset=part(reset, span), valid=part(valid, span)
    )


def whole_chunks_h(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    starts: list[mLSTMState],
    *,
    L: int,
    eps: float,
    detach_normalizer: bool,
    reset: Tensor | None,
    valid: Tensor | None,
) -> Tensor:
    """h (B, NH, NC·L, DV) of the NC = len(starts) whole chunks at once: each chunk's intra-chunk part plus its
    carried state's contribution, by the parallel form on a chunk axis."""
    NC = len(starts)

    def chunks(x: Tensor) -> Tensor:  # (B, NH, NC·L, ...) -> (B, NH, NC, L, ...)
        return x[:, :, : NC * L].unflatten(2, (NC, L))

    start = mLSTMState(*(torch.stack(s, dim=2) for s in zip(*starts, strict=True)))  # chunk axis 2
    reset_c, valid_c = (None if x is None else chunks(x) for x in (reset, valid))  # (B, 1 or NH, NC, L)
    h, _ = parallel_with_state(
        *(chunks(x) for x in (q, k, v, i, f)),
        start,
        eps=eps,
        detach_normalizer=detach_normalizer,
        reset=reset_c,
        valid=valid_c,
    )
    return h.flatten(2, 3)


def unmasked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    i: Tensor,
    f: Tensor,
    state: mLSTMState,
    *,
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
            *(x[:, :, span] for x in (q, k, v, i, f)), state, eps=eps, detach_normalizer=detach_normalizer, L=L
        )
        outputs.append(h)
    if tail:
        span = slice(NC * L, T)
        h, state = parallel_with_state(
            *(x[:, :, span] for x in (q, k, v, i, f)), state, eps=eps, detach_normalizer=detach_normalizer
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
    does less work but in smaller, less efficient matrix products, and keeps T/L states of DK×DV (the
    measured speeds behind the choice: docs/benchmarks.md).
    """
    L = 64 if DK * DV <= 64 * 64 else 128
    return min(L, 1 << (T.bit_length() - 1)) if T > 0 else L


def part(mask: Tensor | None, span: slice) -> Tensor | None:
    """mask[:, :, span], or None when there is no mask."""
    return None if mask is None else mask[:, :, span]
