"""The seeds' worked example, as data.

Where the numbers come from: the hand-worked LSTM in `shared/seeds/000_*.txt` (and its retelling in
`001_*.txt`) gives d_in = 3, hidden = 2, h0 = [1, 1], C0 = [0.3, -0.5], three inputs X1..X3, and the
step-1 pre-activations

    f = [-4, -6]   i = [6, 4]   o = [4, -5]   C̃ = [1, -6]

but not the weights or inputs themselves (they are in the seeds' pictures, which the texts lack).
We chose X1..X3 and small integer weights and biases (entries -2..2, biases -1..1) so that
W_g [h0, X1] + b_g gives exactly those pre-activations; a test checks it. Steps 2 and 3 then follow
from the cell, in hand mode and in exact mode.

The RNN and GRU examples reuse the same inputs, h0 and matrices, so the three walkthroughs can be read
side by side: the RNN's tanh layer *is* the LSTM's candidate row (W_c, b_c); the GRU's reset gate
uses W_i, its update gate W_f, its candidate W_c split into its h and x columns. The sLSTM uses the
same four matrices (ĩ from W_i, f̃ from W_f, z̃ from W_c, õ from W_o, one head, so R is their h columns)
and starts from the LSTM's memory with normaliser 1 and stabiliser 0 (c0/n0 = C0). The mLSTM example
(one head, key size 4 so that q̂ = q/√4 = q/2 stays easy by hand, value size 2) was chosen for small
integers too; it reads the same X1..X3. Only the LSTM numbers come from the seeds.

The state-space examples have their own inputs, chosen so that the exponentials round to friendly values
by hand. The diagonal SSM has one input channel and two state entries with Δ = 0.5 and A = [-1, -4.6], so
ΔA = [-0.5, -2.3] and Ā = exp(ΔA) = [0.607, 0.100] ≈ [0.6, 0.1]: a slower and a fast memory. Mamba has two
channels, two state entries and Mamba's own A = -(1, 2); its weights (found by a small search over integers)
make Δ = softplus(0) ≈ 0.7 at step 1 and, at step 3, Δ ≈ 3 in channel 1 (Ā ≈ 0: the state is overwritten by
the input) beside Δ ≈ 0.1 in channel 2 (Ā ≈ 0.9: the state is kept), the selection the LSTM's gates make.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference import gru, lstm, mamba, mlstm, rnn, slstm, ssm

INPUT_SIZE = 3
HIDDEN_SIZE = 2
H0 = np.array([1.0, 1.0])
C0 = np.array([0.3, -0.5])
XS = np.array(
    [
        [2.0, 1.0, 3.0],  # X1
        [1.0, -1.0, 0.0],  # X2
        [0.0, 2.0, -1.0],  # X3
    ]
)

# Each row acts on [h1, h2, x1, x2, x3].
W_F = np.array([[2, 0, 1, -1, -2], [0, 1, -2, 2, -2]], dtype=float)
W_I = np.array([[1, 2, -2, 2, 2], [2, 0, 2, 2, -1]], dtype=float)
W_C = np.array([[2, -1, -2, -1, 2], [-2, 2, -2, -1, 0]], dtype=float)
W_O = np.array([[1, -1, -2, 2, 2], [1, 0, 0, -1, -2]], dtype=float)
B_F = np.array([-1.0, 1.0])
B_I = np.array([-1.0, -1.0])
B_C = np.array([-1.0, -1.0])
B_O = np.array([0.0, 1.0])

STEP1_PRE_ACTIVATIONS = {"f": [-4, -6], "i": [6, 4], "o": [4, -5], "g": [1, -6]}
"""What the seeds print for step 1's linear transform (g is the seeds' C̃)."""


class Example(NamedTuple):
    """A cell, its parameters, its inputs (T, I) and its initial state: everything a walkthrough needs."""

    cell: str
    params: NamedTuple
    xs: np.ndarray
    state0: NamedTuple
    gate: np.ndarray | None = None
    """Mamba's gate inputs z (T, C), when the example is gated; None for every other cell."""


def seeds_lstm() -> Example:
    concat = lstm.LSTMConcatParams(W_f=W_F, W_i=W_I, W_c=W_C, W_o=W_O, b_f=B_F, b_i=B_I, b_c=B_C, b_o=B_O)
    return Example("lstm", lstm.from_concat(concat, INPUT_SIZE), XS.copy(), lstm.LSTMState(H0.copy(), C0.copy()))


def seeds_rnn() -> Example:
    concat = rnn.RNNConcatParams(W=W_C, b=B_C)
    return Example("rnn", rnn.from_concat(concat, INPUT_SIZE), XS.copy(), rnn.RNNState(H0.copy()))


def seeds_gru() -> Example:
    H = HIDDEN_SIZE
    concat = gru.GRUConcatParams(
        W_r=W_I,
        b_r=B_I,
        W_z=W_F,
        b_z=B_F,
        W_in=W_C[:, H:],
        b_in=B_C,
        W_hn=W_C[:, :H],
        b_hn=np.zeros(H),
    )
    return Example("gru", gru.from_concat(concat, INPUT_SIZE), XS.copy(), gru.GRUState(H0.copy()))


def seeds_slstm() -> Example:
    concat = slstm.sLSTMConcatParams(W_i=W_I, W_f=W_F, W_z=W_C, W_o=W_O, b_i=B_I, b_f=B_F, b_z=B_C, b_o=B_O)
    state0 = slstm.sLSTMState(h=H0.copy(), c=C0.copy(), n=np.ones(HIDDEN_SIZE), m=np.zeros(HIDDEN_SIZE))
    return Example("slstm", slstm.from_concat(concat, INPUT_SIZE), XS.copy(), state0)


# mLSTM, one head: key size 4, value size 2; each row acts on x = [x1, x2, x3].
MLSTM_W_Q = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, -1, 0]], dtype=float)
MLSTM_W_K = np.array([[0, 1, 0], [1, 0, -1], [0, 0, 1], [1, -1, 0]], dtype=float)
MLSTM_W_V = np.array([[0, 1, 0], [1, 0, -1]], dtype=float)


def seeds_mlstm() -> Example:
    params = mlstm.mLSTMCellParams(
        W_q=MLSTM_W_Q.copy(),
        W_k=MLSTM_W_K.copy(),
        W_v=MLSTM_W_V.copy(),
        w_i=np.array([1.0, 0.0, -1.0]),
        w_f=np.array([0.0, 1.0, 1.0]),
        b_i=0.0,
        b_f=-1.0,
    )
    return Example("mlstm", params, XS.copy(), mlstm.zero_state(4, 2))


SSM_XS = np.array([[1.0], [2.0], [-1.0]])


def seeds_ssm() -> Example:
    params = ssm.SSMParams(
        A=np.array([[-1.0, -4.6]]),
        B=np.array([[1.0, 1.0]]),
        C=np.array([[1.0, 1.0]]),
        D=np.array([0.5]),
        delta=np.array([0.5]),
        discretization="zoh",
    )
    return Example("ssm", params, SSM_XS.copy(), ssm.zero_state(1, 2))


MAMBA_XS = np.array([[-1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
MAMBA_GATE = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, -1.0]])


def seeds_mamba() -> Example:
    params = mamba.MambaParams(
        A=np.array([[-1.0, -2.0], [-1.0, -2.0]]),
        W_delta=np.array([[2.0, 1.0], [-1.0, 0.0]]),
        b_delta=np.array([1.0, -1.0]),
        W_B=np.array([[0.0, -1.0], [-1.0, 0.0]]),
        W_C=np.array([[-1.0, 0.0], [1.0, -1.0]]),
        D=np.array([1.0, 1.0]),
    )
    return Example("mamba", params, MAMBA_XS.copy(), mamba.zero_state(2, 2), MAMBA_GATE.copy())


EXAMPLES = {
    "lstm": seeds_lstm,
    "rnn": seeds_rnn,
    "gru": seeds_gru,
    "slstm": seeds_slstm,
    "mlstm": seeds_mlstm,
    "ssm": seeds_ssm,
    "mamba": seeds_mamba,
}
