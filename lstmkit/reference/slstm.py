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
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.reference.activations import dsigmoid_from_output, dtanh_from_output, sigmoid, tanh
from lstmkit.reference.checks import as_array, as_sequence


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
    h: np.ndarray


def log_sigmoid(a: np.ndarray) -> np.ndarray:
    """log σ(a) = -log(1 + e^{-a}), without overflow."""
    return -np.logaddexp(0.0, -a)


def step(p: sLSTMParams, x: np.ndarray, state: sLSTMState) -> sLSTMStep:
    rh = recurrent(p.R, state.h)
    pre_i, pre_f, pre_z, pre_o = np.split(x + rh + p.b, 4)
    log_f = log_sigmoid(pre_f)
    restart = state.n == 0
    m = np.where(restart, pre_i, np.maximum(log_f + state.m, pre_i))
    i = np.exp(pre_i - m)
    f = np.where(restart, 0.0, np.exp(log_f + state.m - m))  # 0 · (empty memory) either way
    z, o = tanh(pre_z), sigmoid(pre_o)
    c = f * state.c + i * z
    n = f * state.n + i
    h = o * c / n
    return sLSTMStep(
        x=x, h_prev=state.h, c_prev=state.c, n_prev=state.n, m_prev=state.m, rh=rh,
        pre_i=pre_i, pre_f=pre_f, pre_z=pre_z, pre_o=pre_o, log_f=log_f, restart=restart,
        m=m, i=i, f=f, z=z, o=o, c=c, n=n, h=h,
    )  # fmt: skip


def zero_state(hidden_size: int) -> sLSTMState:
    zeros = np.zeros(hidden_size)
    return sLSTMState(zeros, zeros.copy(), zeros.copy(), zeros.copy())


def run(p: sLSTMParams, xs, state0: sLSTMState | None = None) -> list[sLSTMStep]:
    """Run over xs (T, 4H) from state0 (zeros by default); returns the T step traces."""
    p = p.checked()
    H = p.hidden_size
    xs = as_sequence("inputs", xs, 4 * H, "time steps, 4·hidden_size")
    state = (
        zero_state(H) if state0 is None else sLSTMState(*(as_array(k, v, (H,)) for k, v in state0._asdict().items()))
    )
    steps = []
    for x in xs:
        s = step(p, x, state)
        steps.append(s)
        state = sLSTMState(s.h, s.c, s.n, s.m)
    return steps


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
