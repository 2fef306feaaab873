"""The definition of each cell: NumPy float64, unbatched, every intermediate of every step kept.

One module per cell, each with the same shape of API:

    Params.random(input_size, hidden_size, seed)   PyTorch's stacked layout (W_ih, W_hh, b_ih, b_hh)
    from_concat / to_concat                       the seeds' layout, matrices acting on [h_{t-1}, x_t]
    from_torch / to_torch                         `torch.nn` state-dict names (weight_ih_l0, ...)
    step(params, x, state, rounding) -> Step      one step, a trace of every intermediate
    run(params, xs, state0, rounding) -> [Step]   a sequence
    backward(params, steps, dhs, dstate) -> Grads  backpropagation through time over the traces

The state-space cells (`ssm`, the diagonal LTI SSM with three discretisations, and `mamba`, the selective
SSM) take inputs of C channels and keep a state (C, N); each adds its parallel view (`ssm.convolution`,
`mamba.matrix_view`), equal to the recurrence. The xLSTM cells (`slstm`, `mlstm`) take the gate
pre-activations (sLSTM) or q, k, v and the gates (mLSTM) from a layer's projections; `run_cell` runs raw
inputs through the smallest such projection, for the walkthrough and exercises.

This package imports only NumPy.
"""

from lstmkit.reference import gru, lstm, mamba, mlstm, rnn, slstm, ssm
from lstmkit.reference.rounding import MODES, exact, hand

CELLS = {"lstm": lstm, "gru": gru, "rnn": rnn}
"""The classic cells, which share the API above."""

__all__ = ["CELLS", "MODES", "exact", "gru", "hand", "lstm", "mamba", "mlstm", "rnn", "slstm", "ssm"]
