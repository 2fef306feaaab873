"""mLSTM, chunkwise form: parallel inside chunks of L steps, recurrent across them.

Cost O(T·L) time and O(T·L + T/L · DK·DV) memory: linear in T, with the parallel form's large
matrix products. Two passes:

1. states: walk the chunks in order, carrying (C, n, m) from each chunk's start to its end with the
   parallel form's final-state formula (one (DK×L)·(L×DV) product per chunk);
2. outputs: the parallel form with each chunk's starting state, for all full chunks at once (the
   chunks become a batch dimension), and once more for a shorter last chunk when L does not divide T.

Any T works; the result equals the recurrent and parallel forms (float64: 1e-10). Masks: padding is
folded into the gates once (`mask_gates`); the masks are sliced into chunks like the gates, so reset
segment ids are counted within each chunk, which starts from its own carried state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.mlstm.parallel import _final_state, mask_gates, parallel_with_state
from lstmkit.nn.mlstm.state import check_inputs, check_masks, mLSTMState


def mlstm_chunkwise(
    q: Tensor, k: Tensor, v: Tensor, i: Tensor, f: Tensor, state: mLSTMState | None = None, eps: float = 1e-6,
    detach_normalizer: bool = False, chunk_size: int = 64, *, reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, mLSTMState]:  # fmt: skip
    """h (B, NH, T, DV) and the final state, in chunks of `chunk_size`. See `mlstm_recurrent`."""
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size is {chunk_size!r}, expected a positive integer")
    state = check_inputs(q, k, v, i, f, state)
    check_masks(q, reset, valid)
    T, L = q.shape[2], chunk_size
    NC, tail = divmod(T, L)
    reset, valid = (None if x is None else x[:, None] for x in (reset, valid))  # (B, 1, T): broadcast over heads
    i, f, reset = mask_gates(i, f, reset, valid)  # padding now lives in the gates
    log_f = F.logsigmoid(f)

    starts = []  # the state at the start of each full chunk
    for c in range(NC):
        starts.append(state)
        span = slice(c * L, (c + 1) * L)
        state = _final_state(k[:, :, span], v[:, :, span], i[:, :, span], log_f[:, :, span].cumsum(-1), state,
                             reset=part(reset, span), valid=part(valid, span))  # fmt: skip
    outputs = []
    if NC:

        def chunks(x: Tensor) -> Tensor:  # (B, NH, NC·L, ...) -> (B, NH, NC, L, ...)
            return x[:, :, : NC * L].unflatten(2, (NC, L))

        start = mLSTMState(*(torch.stack(s, dim=2) for s in zip(*starts, strict=True)))  # chunk axis 2
        reset_c, valid_c = (None if x is None else chunks(x) for x in (reset, valid))  # (B, 1, NC, L)
        h, _ = parallel_with_state(chunks(q), chunks(k), chunks(v), chunks(i), chunks(f), start, eps, detach_normalizer,
                                   reset=reset_c, valid=valid_c)  # fmt: skip
        outputs.append(h.flatten(2, 3))
    if tail:
        span = slice(NC * L, T)
        h, state = parallel_with_state(q[:, :, span], k[:, :, span], v[:, :, span], i[:, :, span], f[:, :, span],
                                       state, eps, detach_normalizer, reset=part(reset, span),
                                       valid=part(valid, span))  # fmt: skip
        outputs.append(h)
    return torch.cat(outputs, dim=2), state


def part(mask: Tensor | None, span: slice) -> Tensor | None:
    """mask[:, :, span], or None when there is no mask."""
    return None if mask is None else mask[:, :, span]
