"""mLSTM in three forms with one signature and one result (see each module's docstring):

h, state = mlstm_recurrent(q, k, v, i, f, state=None, eps=1e-6, *, detach_normalizer=False, reset=None, valid=None)
h, state = mlstm_parallel(q, k, v, i, f, state=None, eps=1e-6, *, detach_normalizer=False, reset=None, valid=None)
h, state = mlstm_chunkwise(
    q, k, v, i, f, state=None, eps=1e-6, *, detach_normalizer=False, chunk_size=None, reset=None, valid=None
)
h, state = mlstm_step(q, k, v, i, f, state, eps=1e-6, *, detach_normalizer=False, reset=None, valid=None)

recurrent: the definition, O(T); parallel: all steps at once, O(T²); chunkwise: O(T·L); step: one step of the
recurrent form (q, k (B, NH, DK), v (B, NH, DV), i, f (B, NH), masks (B,)), for generation.

chunk_size=None picks `auto_chunk_size(T, DK, DV)`; `chunkwise_flops` counts the chunkwise form's matrix products.
reset, valid: optional bool (B, T) masks for packed documents and padding (see `state`); `empty_state(q, v)`
(`mLSTMState.empty(B, NH, DK, DV, like=q)`) is the state a reset starts from (m = -inf), `zero_state(q, v)`
(`mLSTMState.zeros`) the default (m = 0).

At the edges (`state`): every input must be finite, except f̃ = -inf ("forget everything", the same step as a
reset) and a state's m = -inf (the empty state); anything else non-finite is one ValueError naming the tensor and
index. For any finite gates the forms stay finite and equal, forward and backward (e^{-m} is computed with m
clamped to the dtype's range); float16 and bfloat16 run in float32 inside. T = 0 gives h (B, NH, 0, DV) and the
state unchanged.
"""

from lstmkit.nn.mlstm.chunkwise import auto_chunk_size, chunkwise_flops, mlstm_chunkwise
from lstmkit.nn.mlstm.parallel import mlstm_parallel
from lstmkit.nn.mlstm.recurrent import mlstm_recurrent, mlstm_step
from lstmkit.nn.mlstm.state import empty_state, mLSTMState, zero_state

__all__ = [
    "auto_chunk_size",
    "chunkwise_flops",
    "empty_state",
    "mLSTMState",
    "mlstm_chunkwise",
    "mlstm_parallel",
    "mlstm_recurrent",
    "mlstm_step",
    "zero_state",
]
