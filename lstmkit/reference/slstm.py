"""The sLSTM cell (xLSTM paper, Beck et al. 2024, section 2.2), NumPy float64, unbatched, traced.

Input: the gate pre-activations from the input, x̃_t = W x_t (4H,) in gate order i, f, z, o — the
input projection belongs to the block, as in the xLSTM authors' cell. Memory mixing: the recurrent
weights R are block-diagonal, one DH×DH block per head and gate (H = NH·DH).

    ĩ, f̃, z̃, õ = x̃_t + R h_{t-1} + b                       pre-activations (4H,)
    m_t = max(log σ(f̃) + m_{t-1}, ĩ)                          stabilizer (paper eq. 15)
    i = exp(ĩ - m_t)    f = exp(log σ(f̃) + m_{t-1} - m_t)     stabilized exponential input, sigmoid forget
    z = tanh(z̃)         o = σ(õ)
    c_t = f ⊙ c_{t-1} + i ⊙ z                                 cell
    n_t = f ⊙ n_{t-1} + i                                     normalizer
    h_t = o ⊙ c_t / n_t

The stabilizer rescales c and n by the same factor exp(-m_t), so h does not depend on it. A unit whose
normalizer is still 0 has an empty memory: its stabilizer restarts at the input gate, m_t = ĩ (as if
m_{t-1} = -∞; the xLSTM authors' vanilla cell does the same when the whole state is zero).

Shapes: NH heads, DH head size, H = NH·DH, T steps. Gate blocks are gate-major: x̃[g·H + head·DH + j].

For the walkthrough and exercises, `sLSTMCellParams` adds the input weights W (4H, I), and the seeds'
layout `sLSTMConcatParams` writes the cell like their LSTM: four matrices W_i, W_f, W_z, W_o acting on
[h_{t-1}, x_t], whose h columns are R (block-diagonal, one block per head). `run_cell` runs raw inputs
x_t through x̃_t = W x_t. `step` and `run` take a rounding (hand mode rounds every intermediate to 0.1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference.activations import dsigmoid_from_output, dtanh_from_output, sigmoid, tanh
from lstmkit.reference.checks import as_array, as_sequence, run_inputs, step_inputs
from lstmkit.reference.rounding import Rounding, exact


class sLSTMState(NamedTuple):
    h: np.ndarray
    c: np.ndarray
    n: np.ndarray
    m: np.ndarray


class sLSTMParams(NamedTuple):
    R: np.ndarray
    """(NH, 4, DH, DH): R[head, gate] maps that head's h_{t-1} to that gate's pre-activation (out, in)."""
    b: np.ndarray
    """(4H,) gate-major, order i, f, z, o."""

    @property
    def num_heads(self) -> int:
        return self.R.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.R.shape[0] * self.R.shape[2]

    @classmethod
    def random(cls, hidden_size: int, num_heads: int, seed: int = 0, forget_bias: float = 0.0):
        """R ~ U(-1/√DH, 1/√DH), b ~ U(-1/√DH, 1/√DH) with the forget block set to `forget_bias`."""
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        rng = np.random.default_rng(seed)
        DH = hidden_size // num_heads
        k = 1.0 / np.sqrt(DH)
        b = rng.uniform(-k, k, 4 * hidden_size)
        b[hidden_size : 2 * hidden_size] = forget_bias
        return cls(R=rng.uniform(-k, k, (num_heads, 4, DH, DH)), b=b)

    def checked(self) -> sLSTMParams:
        if np.ndim(self.R) != 4 or np.shape(self.R)[1] != 4 or np.shape(self.R)[2] != np.shape(self.R)[3]:
            raise ValueError(f"R has shape {np.shape(self.R)}, expected (num_heads, 4, head_dim, head_dim)")
        NH, _, DH, _ = np.shape(self.R)
        return sLSTMParams(R=as_array("R", self.R, (NH, 4, DH, DH)), b=as_array("b", self.b, (4 * NH * DH,), "4·H"))


def recurrent(R: np.ndarray, h: np.ndarray) -> np.ndarray:
    """R h with R block-diagonal per head and gate: (NH, 4, DH, DH) × (H,) -> (4H,) gate-major."""
    NH, _, DH, _ = R.shape
    per_head = np.einsum("ngij,nj->gni", R, h.reshape(NH, DH))  # (4, NH, DH)
    return per_head.reshape(-1)


class sLSTMStep(NamedTuple):
    """Every intermediate of one step."""

    x: np.ndarray
    """x̃_t, the input's gate pre-activations (4H,)."""
    h_prev: np.ndarray
    c_prev: np.ndarray
    n_prev: np.ndarray
    m_prev: np.ndarray
    rh: np.ndarray
    """R h_{t-1} (4H,): the memory mixing."""
    pre_i: np.ndarray
    pre_f: np.ndarray
    pre_z: np.ndarray
    pre_o: np.ndarray
    log_f: np.ndarray
    """log σ(f̃)."""
    restart: np.ndarray
    """True where n_{t-1} = 0 (empty memory): m_t = ĩ."""
    m: np.ndarray
    i: np.ndarray
    f: np.ndarray
    z: np.ndarray
    o: np.ndarray
    c: np.ndarray
    n: np.ndarray
    c_over_n: np.ndarray
    """c_t / n_t, the normalized memory."""
    h: np.ndarray


def log_sigmoid(a: np.ndarray) -> np.ndarray:
    """log σ(a) = -log(1 + e^{-a}), without overflow."""
    return -np.logaddexp(0.0, -a)


def step(p: sLSTMParams, x: np.ndarray, state: sLSTMState, rounding: Rounding = exact) -> sLSTMStep:
    """One step; `rounding` is applied to each computed intermediate (hand mode rounds to 0.1).

    The parameters, x̃ (4H,) and the state's h, c, n, m (H,) are checked as `run` checks them (shapes, finite)."""
    p = p.checked()
    H = p.hidden_size
    x, state = step_inputs(x, state, rounding, sLSTMState, width=4 * H, hidden_size=H, meaning="4·hidden_size")
    return _step(p, x, state, rounding)


def _step(p: sLSTMParams, x: np.ndarray, state: sLSTMState, rounding: Rounding) -> sLSTMStep:
    r = rounding
    rh = recurrent(p.R, state.h)
    pre_i, pre_f, pre_z, pre_o = (r(a) for a in np.split(x + rh + p.b, 4))
    log_f = r(log_sigmoid(pre_f))
    restart = state.n == 0
    m = r(np.where(restart, pre_i, np.maximum(log_f + state.m, pre_i)))
    i = r(np.exp(pre_i - m))
    f = r(np.where(restart, 0.0, np.exp(log_f + state.m - m)))  # 0 · (empty memory) either way
    z, o = r(tanh(pre_z)), r(sigmoid(pre_o))
    c = r(f * state.c + i * z)
    n = r(f * state.n + i)
    c_over_n = r(c / n)
    h = r(o * c_over_n)
    return sLSTMStep(
        x=x,
        h_prev=state.h,
        c_prev=state.c,
        n_prev=state.n,
        m_prev=state.m,
        rh=rh,
        pre_i=pre_i,
        pre_f=pre_f,
        pre_z=pre_z,
        pre_o=pre_o,
        log_f=log_f,
        restart=restart,
        m=m,
        i=i,
        f=f,
        z=z,
        o=o,
        c=c,
        n=n,
        c_over_n=c_over_n,
        h=h,
    )


def zero_state(hidden_size: int) -> sLSTMState:
    zeros = np.zeros(hidden_size)
    return sLSTMState(zeros, zeros.copy(), zeros.copy(), zeros.copy())


def run(p: sLSTMParams, xs, state0: sLSTMState | None = None, rounding: Rounding = exact) -> list[sLSTMStep]:
    """Run over xs (T, 4H) from state0 (zeros by default); returns the T step traces."""
    p = p.checked()
    H = p.hidden_size
    meaning = "time steps, 4·hidden_size"
    xs, state = run_inputs(xs, state0, rounding, sLSTMState, width=4 * H, hidden_size=H, meaning=meaning, suffix="")
    steps = []
    for x in xs:
        s = _step(p, x, state, rounding)
        steps.append(s)
        state = sLSTMState(s.h, s.c, s.n, s.m)
    return steps


class sLSTMCellParams(NamedTuple):
    """The cell with its input weights, as the walkthrough shows it: x̃_t = W x_t, then `step`."""

    W: np.ndarray
    """(4H, I) input weights, gate-major (i, f, z, o)."""
    cell: sLSTMParams

    @property
    def input_size(self) -> int:
        return self.W.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    @property
    def num_heads(self) -> int:
        return self.cell.num_heads


class sLSTMConcatParams(NamedTuple):
    """The seeds' layout: four matrices acting on [h_{t-1}, x_t], each (H, H + I), and four biases (H,)."""

    W_i: np.ndarray
    W_f: np.ndarray
    W_z: np.ndarray
    W_o: np.ndarray
    b_i: np.ndarray
    b_f: np.ndarray
    b_z: np.ndarray
    b_o: np.ndarray


GATES = ("i", "f", "z", "o")


def from_concat(q: sLSTMConcatParams, input_size: int, num_heads: int = 1) -> sLSTMCellParams:
    """Seeds' layout -> (W, R, b). The h columns must be block-diagonal: memory mixing stays inside a head."""
    H = np.shape(q.W_i)[0]
    if num_heads < 1 or H % num_heads:
        raise ValueError(f"num_heads is {num_heads}, expected a positive divisor of hidden_size {H}")
    DH = H // num_heads
    W = {g: as_array(f"W_{g}", getattr(q, f"W_{g}"), (H, H + input_size), "hidden, hidden + input") for g in GATES}
    b = np.concatenate([as_array(f"b_{g}", getattr(q, f"b_{g}"), (H,), "hidden") for g in GATES])
    R = np.zeros((num_heads, 4, DH, DH))
    for k, g in enumerate(GATES):
        for head in range(num_heads):
            rows = slice(head * DH, (head + 1) * DH)
            R[head, k] = W[g][rows, rows]
            outside = W[g][rows, :H].copy()
            outside[:, rows] = 0.0
            if outside.any():
                j, col = np.argwhere(outside)[0]
                raise ValueError(
                    f"W_{g}[{head * DH + j}, {col}] is {outside[j, col]:g}, expected 0: with {num_heads} head(s) "
                    f"the h columns are block-diagonal (memory mixing stays inside a head)"
                )
    W_x = np.concatenate([W[g][:, H:] for g in GATES])
    return sLSTMCellParams(W=W_x, cell=sLSTMParams(R=R, b=b))


def to_concat(p: sLSTMCellParams) -> sLSTMConcatParams:
    """(W, R, b) -> seeds' layout, the block-diagonal R written out as the h columns."""
    NH, _, DH, _ = p.cell.R.shape
    H = NH * DH
    matrices, biases = {}, dict(zip(GATES, np.split(p.cell.b, 4), strict=True))
    for k, (g, W_x) in enumerate(zip(GATES, np.split(p.W, 4), strict=True)):
        R_g = np.zeros((H, H))
        for head in range(NH):
            rows = slice(head * DH, (head + 1) * DH)
            R_g[rows, rows] = p.cell.R[head, k]
        matrices[g] = np.concatenate([R_g, W_x], axis=1)
    return sLSTMConcatParams(**{f"W_{g}": matrices[g] for g in GATES}, **{f"b_{g}": biases[g] for g in GATES})


def run_cell(p: sLSTMCellParams, xs, state0: sLSTMState | None = None, rounding: Rounding = exact) -> list[sLSTMStep]:
    """Run raw inputs xs (T, I): x̃_t = W x_t (exact: small integers stay exact), then `run`."""
    xs = as_sequence("inputs", xs, p.input_size)
    return run(p.cell, xs @ p.W.T, state0, rounding)


class sLSTMGrads(NamedTuple):
    params: sLSTMParams
    xs: np.ndarray
    """∂L/∂x̃_t (T, 4H)."""
    state0: sLSTMState


def backward(p: sLSTMParams, steps: list[sLSTMStep], dhs, dstate: sLSTMState | None = None) -> sLSTMGrads:
    """Backpropagation through time (exact, including the stabilizer's path through max).

    do = dh ⊙ c/n   dc += dh ⊙ o/n   dn += -dh ⊙ o c/n²
    df = dc ⊙ c_{t-1} + dn ⊙ n_{t-1}   di = dc ⊙ z + dn   dz = dc ⊙ i
    dĩ = di ⊙ i   dlog_f = df ⊙ f   dm_{t-1} = df ⊙ f   dm_t -= di ⊙ i + df ⊙ f
    m_t = max(log_f + m_{t-1}, ĩ): dm_t flows to the larger argument (to ĩ on a restart)
    df̃ = dlog_f ⊙ σ(-f̃)   dz̃ = dz ⊙ (1 - z²)   dõ = do ⊙ o(1 - o)
    dR[head, gate] += da[gate, head] h_{t-1}[head]ᵀ   dh_{t-1} = Rᵀ da
    """
    H, NH = p.hidden_size, p.num_heads
    DH = H // NH
    dhs = as_array("dhs", dhs, (len(steps), H), "time steps, hidden_size")
    dR, db = np.zeros_like(p.R), np.zeros_like(p.b)
    dxs = np.zeros((len(steps), 4 * H))
    zero = np.zeros(H)
    dh_next, dc_next, dn_next, dm_next = (zero,) * 4 if dstate is None else (np.asarray(a, float) for a in dstate)
    for t in reversed(range(len(steps))):
        s = steps[t]
        dh = dhs[t] + dh_next
        do = dh * s.c / s.n
        dc = dc_next + dh * s.o / s.n
        dn = dn_next - dh * s.o * s.c / s.n**2
        df = dc * s.c_prev + dn * s.n_prev
        di = dc * s.z + dn
        dz = dc * s.i
        dpre_i = di * s.i
        dlog_f = df * s.f
        dm_prev = df * s.f
        dm = dm_next - di * s.i - df * s.f
        via_forget = ~s.restart & (s.log_f + s.m_prev > s.pre_i)
        dlog_f = dlog_f + np.where(via_forget, dm, 0.0)
        dm_prev = dm_prev + np.where(via_forget, dm, 0.0)
        dpre_i = dpre_i + np.where(via_forget, 0.0, dm)
        dpre_f = dlog_f * sigmoid(-s.pre_f)
        da = np.concatenate([dpre_i, dpre_f, dz * dtanh_from_output(s.z), do * dsigmoid_from_output(s.o)])
        dxs[t] = da
        db += da
        da_heads = da.reshape(4, NH, DH)
        dR += np.einsum("gni,nj->ngij", da_heads, s.h_prev.reshape(NH, DH))
        dh_next = np.einsum("ngij,gni->nj", p.R, da_heads).reshape(-1)
        dc_next, dn_next, dm_next = dc * s.f, dn * s.f, dm_prev
    return sLSTMGrads(sLSTMParams(dR, db), dxs, sLSTMState(dh_next, dc_next, dn_next, dm_next))
