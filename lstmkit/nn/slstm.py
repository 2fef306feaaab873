"""sLSTM in PyTorch: a fast layer with its own backward, and the plain autograd loop it is tested against.

The cell (xLSTM paper section 2.2; `lstmkit.reference.slstm` is the definition):

    ĩ, f̃, z̃, õ = x̃_t + R h_{t-1} + b        x̃ = the input's gate pre-activations (B, T, 4H), gate-major
    m_t = max(log σ(f̃) + m_{t-1}, ĩ)        (m_t = ĩ where n_{t-1} = 0: an empty memory restarts it)
    i = exp(ĩ - m_t)   f = exp(log σ(f̃) + m_{t-1} - m_t)   z = tanh(z̃)   o = σ(õ)
    c_t = f c_{t-1} + i z    n_t = f n_{t-1} + i    h_t = o c_t / n_t

R is block-diagonal: one DH×DH matrix per head and gate, `R[head, gate, out, in]` (NH, 4, DH, DH).

Packed documents and padding, two optional bool masks (B, T), the same in every function here:

    reset[b, t]         a new document starts at t: the state entering step t is the zero state
                        (h = c = n = m = 0), so R h_{t-1} = 0 and the restart rule gives m_t = ĩ, f = 0
    valid[b, t] false   padding: state_t = state_{t-1} (h, c, n, m untouched) and the output is h_{t-1};
                        a reset at a padded position is ignored

Speed (CPU): at the sizes sLSTMs run at (B·H = 512 elements a step) the time goes into dispatching ~30
tiny kernels per step, not into arithmetic. So on CPU tensors of float32/float64 `slstm` runs both time
loops in C++ (`lstmkit.nn.slstm_cpp`, source `csrc/slstm.cpp`, compiled on first use into torch's
extension cache, ~7 s once): a forward step is one `bmm` for all heads and gates, three vectorized ATen
calls for the exponentials and the logarithm of all elements, and plain loops for the rest; a backward
step is the reverse loop of `_sLSTMFunction.backward` below as one plain loop and one `bmm`. Measured
at B=4, T=256, H=128, 4 heads, float32, interleaved with the xLSTM authors' vanilla sLSTM in one process
(15 rounds, 1 or 2 threads): forward ≈ 7× theirs and 3.5× this file's Python loop; forward+backward
≈ 18× theirs (ratio of the fastest runs; their backward alternates between ~125 and ~260 ms, so the
ratio of medians reads 29×) and 4.5× the Python loop. At B=8, H=512 the C++ loops are 1.2× (forward)
and 1.3× (forward+backward) the Python loop: the matrix products dominate there. `torch.compile` of
the step was measured and not taken: the Python time loop and its per-call guards stay, so the forward
ran 13.9 ms against 14.5 ms eager (C++: ~3.5 ms), after 16 s of compiling.
Elsewhere (another device or dtype, or when the build fails: one warning naming why) the Python loop
here runs. It works head-major, (NH, B, 4·DH) per step, so the recurrent product of all heads and gates
is one `baddbmm` that also adds x̃_t + b; its backward is a custom `autograd.Function` that runs its own
reverse time loop over saved gate values instead of letting autograd replay T small graphs, and
computes dR for all steps in one matrix product at the end. Both are tested equal to `slstm_loop` in
float64 (tests/test_slstm_fast.py).

Shapes: B batch, T time, NH heads, DH head size, H = NH·DH.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import slstm_cpp
from lstmkit.nn.finite import check_finite
from lstmkit.nn.slstm_layout import flat, gate_major, head_major, heads


class sLSTMState(NamedTuple):
    h: Tensor
    c: Tensor
    n: Tensor
    m: Tensor
    """Each (B, H)."""


def zero_state(batch: int, hidden_size: int, like: Tensor) -> sLSTMState:
    zeros = like.new_zeros(batch, hidden_size)
    return sLSTMState(zeros, zeros, zeros, zeros)


def slstm_step(
    x_t: Tensor, R: Tensor, b: Tensor, state: sLSTMState, *, reset: Tensor | None = None, valid: Tensor | None = None
) -> tuple[Tensor, sLSTMState]:
    """One step, the equations as written (autograd records it): x̃_t (B, 4H) -> h_t (B, H), new state.
    For generation one token at a time, and the body of the slow loop the fast layer is tested against.
    reset, valid: bool (B,), this step's column of the masks (module docstring). Values: `check_values`."""
    B = x_t.shape[0]
    check_values(x_t, state)
    reset = _check_mask("reset", reset, (B,), "(B,)", x_t.device)
    valid = _check_mask("valid", valid, (B,), "(B,)", x_t.device)
    return _step(x_t, R, b, state, reset, valid)


def _step(x_t: Tensor, R: Tensor, b: Tensor, state: sLSTMState, reset: Tensor | None, valid: Tensor | None):
    """`slstm_step` on checked inputs (the loop checks x, the state and the masks once, not at every step)."""
    NH, _, DH, _ = R.shape
    state_in = state
    if reset is not None:  # a new document: it starts from the zero state
        state = sLSTMState(*(torch.where(reset[:, None], 0.0, s) for s in state))
    h, c, n, m = state
    rh = torch.einsum("ngoi,bni->bgno", R, h.view(h.shape[0], NH, DH)).reshape(h.shape[0], 4 * NH * DH)
    pre_i, pre_f, pre_z, pre_o = (x_t + rh + b).chunk(4, dim=-1)
    log_f = F.logsigmoid(pre_f)
    restart = n == 0
    m_new = torch.where(restart, pre_i, torch.maximum(log_f + m, pre_i))
    i = torch.exp(pre_i - m_new)
    f = torch.where(restart, 0.0, torch.exp(log_f + m - m_new))
    c = f * c + i * torch.tanh(pre_z)
    n = f * n + i
    h = torch.sigmoid(pre_o) * c / n
    new = sLSTMState(h, c, n, m_new)
    if valid is not None:  # padding: the state passes through untouched (a reset there is ignored)
        new = sLSTMState(*(torch.where(valid[:, None], s_new, s_in) for s_new, s_in in zip(new, state_in, strict=True)))
    return new.h, new


def slstm_loop(
    x: Tensor, R: Tensor, b: Tensor, state: sLSTMState, *, reset: Tensor | None = None, valid: Tensor | None = None
) -> tuple[Tensor, sLSTMState]:
    """The slow, obvious implementation: `slstm_step` over time, autograd records everything.
    reset, valid: bool (B, T) masks (module docstring)."""
    B, T = x.shape[:2]
    check_values(x, state)
    reset = _check_mask("reset", reset, (B, T), "(B, T)", x.device)
    valid = _check_mask("valid", valid, (B, T), "(B, T)", x.device)
    hs = []
    for t, x_t in enumerate(x.unbind(1)):
        reset_t = None if reset is None else reset[:, t]
        valid_t = None if valid is None else valid[:, t]
        h, state = _step(x_t, R, b, state, reset_t, valid_t)
        hs.append(h)
    return torch.stack(hs, dim=1), state


def check_values(x: Tensor, state: sLSTMState) -> None:
    """x̃ and every state tensor finite (`lstmkit.nn.finite`): ±inf in a gate has no stabilized form (ĩ = +inf makes
    i = e^{inf - inf}), and the sLSTM's own states (zero or returned by a call) are always finite."""
    check_finite("x", x)
    for name, tensor in zip(sLSTMState._fields, state, strict=True):
        check_finite(f"state.{name}", tensor)


def _check_mask(name: str, mask: Tensor | None, shape: tuple, dims: str, device: torch.device) -> Tensor | None:
    """A mask is None or a bool tensor of the given shape; returns it on the input's device."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} is a {type(mask).__name__}, expected a torch.bool tensor of shape {dims} = {shape}")
    if mask.dtype != torch.bool or tuple(mask.shape) != shape:
        raise ValueError(f"{name} is {tuple(mask.shape)} {mask.dtype}, expected torch.bool of shape {dims} = {shape}")
    return mask.to(device)


class _MaskPlan(NamedTuple):
    """Which steps of the fast loop need which mask, decided once on the CPU, so that absent masks cost
    nothing and sparse ones cost a `where` only at the steps they touch."""

    reset: Tensor | None
    """(T, 1, B, 1) head-major `reset & valid`, or None when no step resets."""
    valid: Tensor | None
    """(T, 1, B, 1) head-major, or None when no step is padding."""
    reset_at: list[bool]
    """Some row resets at step t."""
    pad_at: list[bool]
    """Some row is padding at step t."""
    restart_at: list[bool]
    """Some row may enter step t with an empty memory (n = 0), so the restart rule must be tested."""


def _mask_plan(reset: Tensor | None, valid: Tensor | None, n0: Tensor, T: int) -> _MaskPlan:
    if reset is None and valid is None:  # only the first step can see an empty memory (n > 0 after a step)
        return _MaskPlan(None, None, [False] * T, [False] * T, [bool((n0 == 0).any())] + [False] * (T - 1))
    valid_bt = valid if valid is not None else torch.ones(n0.shape[0], T, dtype=torch.bool, device=n0.device)
    reset_bt = valid_bt & reset if reset is not None else torch.zeros_like(valid_bt)  # padding wins over reset
    first = valid_bt & (valid_bt.cumsum(1) == 1)  # each row's first real token, which may still see n = n0 = 0
    flags = torch.cat([reset_bt.any(0), (~valid_bt).any(0), first.any(0), (n0 == 0).any()[None]]).tolist()  # 1 sync
    reset_at, pad_at, first_at, n0_empty = flags[:T], flags[T : 2 * T], flags[2 * T : 3 * T], flags[3 * T]
    restart_at = [r or (n0_empty and f) for r, f in zip(reset_at, first_at, strict=True)]
    return _MaskPlan(
        reset_bt.t()[:, None, :, None] if any(reset_at) else None,
        valid_bt.t()[:, None, :, None] if any(pad_at) else None,
        reset_at,
        pad_at,
        restart_at,
    )


class _sLSTMFunction(torch.autograd.Function):
    """Forward: the time loop without graph recording. Backward: the reverse loop of
    `lstmkit.reference.slstm.backward`, vectorized over batch and heads. Masks act only at the steps
    `_mask_plan` marks."""

    @staticmethod
    def forward(ctx, x, R, b, h0, c0, n0, m0, reset: Tensor | None = None, valid: Tensor | None = None):
        NH, _, DH, _ = R.shape
        Rcat = R.permute(0, 3, 1, 2).reshape(NH, DH, 4 * DH)  # (NH, in, gate·out)
        xr = head_major(x + b, NH)  # (T, NH, B, 4DH)
        h, c, n, m = (heads(s, NH) for s in (h0, c0, n0, m0))
        plan = _mask_plan(reset, valid, n0, x.shape[1])
        saved = {k: [] for k in ("h", "i", "f", "z", "o", "c", "n", "sig_neg_f", "via_forget")}
        for t, xr_t in enumerate(xr.unbind(0)):
            state_in = (h, c, n, m)
            if plan.reset_at[t]:  # a new document: the state entering step t is the zero state
                h, c, n, m = (torch.where(plan.reset[t], 0.0, s) for s in state_in)
            pre_i, pre_f, pre_z, pre_o = torch.baddbmm(xr_t, h, Rcat).chunk(4, dim=-1)
            log_f = F.logsigmoid(pre_f)
            from_forget = log_f + m
            via_forget = from_forget > pre_i
            if plan.restart_at[t]:  # an empty memory (n = 0): the first step, a reset, a row's first real token
                restart = n == 0
                via_forget = via_forget & ~restart
                m_new = torch.where(restart, pre_i, torch.maximum(from_forget, pre_i))
                f = torch.where(restart, 0.0, torch.exp(from_forget - m_new))
            else:
                m_new = torch.maximum(from_forget, pre_i)
                f = torch.exp(from_forget - m_new)
            i = torch.exp(pre_i - m_new)
            z, o = torch.tanh(pre_z), torch.sigmoid(pre_o)
            c = torch.addcmul(f * c, i, z)
            n = f * n + i
            h = o * c / n
            m = m_new
            if plan.pad_at[t]:  # padding: the state passes through untouched, the output repeats h_{t-1}
                new = (h, c, n, m)
                h, c, n, m = (torch.where(plan.valid[t], a, a_in) for a, a_in in zip(new, state_in, strict=True))
            for key, value in (("h", h), ("i", i), ("f", f), ("z", z), ("o", o), ("c", c), ("n", n)):
                saved[key].append(value)
            saved["via_forget"].append(via_forget)
            saved["sig_neg_f"].append(torch.sigmoid(-pre_f))
        stacked = {k: torch.stack(v) for k, v in saved.items()}  # (T, NH, B, DH) each
        hs = stacked.pop("h")  # h_1 .. h_T
        h_prev = torch.cat([heads(h0, NH)[None], hs[:-1]])  # h_0 .. h_{T-1}, what R multiplied
        if plan.reset is not None:
            h_prev = torch.where(plan.reset, 0.0, h_prev)
        ctx.save_for_backward(Rcat, c0, n0, h_prev, *stacked.values())
        ctx.keys, ctx.NH, ctx.plan = ["h_prev", *stacked], NH, plan
        out = hs.permute(2, 0, 1, 3).reshape(x.shape[0], x.shape[1], -1)  # (B, T, H)
        return out, flat(h), flat(c), flat(n), flat(m)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, dh_T, dc_T, dn_T, dm_T):
        Rcat, c0, n0, *tensors = ctx.saved_tensors
        s = dict(zip(ctx.keys, tensors, strict=True))
        NH, plan = ctx.NH, ctx.plan
        T = s["i"].shape[0]
        d_out = _head_major_out(d_out, NH)  # (T, NH, B, DH)
        dh, dc, dn, dm = (heads(g, NH) for g in (dh_T, dc_T, dn_T, dm_T))
        c_prev_all = torch.cat([heads(c0, NH)[None], s["c"][:-1]])
        n_prev_all = torch.cat([heads(n0, NH)[None], s["n"][:-1]])
        da_all = []
        for t in reversed(range(T)):
            i, f, z, o, c, n = (s[k][t] for k in ("i", "f", "z", "o", "c", "n"))
            dh = dh + d_out[t]
            d_state = (dh, dc, dn, dm)  # the gradient of the state after step t (and of its output)
            c_over_n = c / n
            do = dh * c_over_n
            dc = dc + dh * o / n
            dn = dn - dh * o * c_over_n / n
            df = dc * c_prev_all[t] + dn * n_prev_all[t]
            di = dc * z + dn
            dpre_i = di * i
            df_f = df * f
            dm = dm - dpre_i - df_f
            via = s["via_forget"][t]
            dm_route = torch.where(via, dm, 0.0)
            dlog_f = df_f + dm_route
            dpre_i = dpre_i + (dm - dm_route)
            da = torch.cat([dpre_i, dlog_f * s["sig_neg_f"][t], dc * i * (1 - z * z), do * o * (1 - o)], dim=-1)
            if plan.pad_at[t]:  # padded rows computed nothing (their saved values may even be 0/0)
                da = torch.where(plan.valid[t], da, 0.0)
            da_all.append(da)
            dh = torch.bmm(da, Rcat.transpose(1, 2))
            dc, dn, dm = dc * f, dn * f, df_f + dm_route
            if plan.reset_at[t]:  # the previous state was replaced by zeros; dc, dn, dm are 0 already (f = 0, m = ĩ)
                dh = torch.where(plan.reset[t], 0.0, dh)
            if plan.pad_at[t]:  # padded rows hand the gradient of the state after t straight to the one before
                d_new = (dh, dc, dn, dm)
                dh, dc, dn, dm = (torch.where(plan.valid[t], g, g_in) for g, g_in in zip(d_new, d_state, strict=True))
        da_all = torch.stack(da_all[::-1])  # (T, NH, B, 4DH)
        dRcat = torch.einsum("tnbi,tnbk->nik", s["h_prev"], da_all)  # (NH, in, gate·out)
        DH = Rcat.shape[1]
        dR = dRcat.view(NH, DH, 4, DH).permute(0, 2, 3, 1)
        dx = gate_major(da_all, NH)
        return dx, dR, dx.sum((0, 1)), flat(dh), flat(dc), flat(dn), flat(dm), None, None


def _head_major_out(d_out: Tensor, NH: int) -> Tensor:
    """(B, T, H) -> (T, NH, B, DH)."""
    B, T, H = d_out.shape
    return d_out.view(B, T, NH, H // NH).permute(1, 2, 0, 3)


def slstm(
    x: Tensor,
    R: Tensor,
    b: Tensor,
    state: sLSTMState | None = None,
    *,
    reset: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, sLSTMState]:
    """The fast sLSTM over a sequence: x̃ (B, T, 4H) -> h (B, T, H) and the final state.
    reset, valid: optional bool (B, T) masks for packed documents and padding (module docstring).
    Values must be finite (`check_values`); B = 0 or T = 0 give an empty h and the state unchanged.
    Runs the C++ loops on CPU float32/float64 tensors, the Python loop otherwise (module docstring)."""
    if R.dim() != 4 or R.shape[1] != 4 or R.shape[2] != R.shape[3]:
        raise ValueError(f"R has shape {tuple(R.shape)}, expected (num_heads, 4, head_dim, head_dim)")
    NH, _, DH, _ = R.shape
    H = NH * DH
    if x.dim() != 3 or x.shape[-1] != 4 * H:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, T, {4 * H}) (4·hidden_size gate pre-activations)")
    if tuple(b.shape) != (4 * H,):
        raise ValueError(f"b has shape {tuple(b.shape)}, expected ({4 * H},)")
    if state is None:
        state = zero_state(x.shape[0], H, x)
    for name, s in zip("hcnm", state, strict=True):
        if tuple(s.shape) != (x.shape[0], H) or s.dtype != x.dtype:
            raise ValueError(f"state.{name} is {tuple(s.shape)} {s.dtype}, expected ({x.shape[0]}, {H}) {x.dtype}")
    check_values(x, state)
    reset = _check_mask("reset", reset, tuple(x.shape[:2]), "(B, T)", x.device)
    valid = _check_mask("valid", valid, tuple(x.shape[:2]), "(B, T)", x.device)
    if x.shape[0] == 0 or x.shape[1] == 0:  # no rows or no steps: an empty output, the state unchanged
        return x.new_zeros(x.shape[0], x.shape[1], H), sLSTMState(*state)
    if slstm_cpp.usable(x, R, b, *state):
        out, *final = slstm_cpp.slstm_cpp(x, R, b, *state, reset, valid)
    else:
        out, *final = _sLSTMFunction.apply(x, R, b, *state, reset, valid)
    return out, sLSTMState(*final)


class sLSTMCell(nn.Module):
    """The sLSTM recurrence with its parameters R and b: forward(x̃ (B, T, 4H), state=None) -> (h (B, T, H), state);
    optional bool (B, T) masks `reset` (a new document starts) and `valid` (false: padding), as in `slstm`.

    The input projections and the causal convolution feeding i and f belong to `lstmkit.nn.sLSTMLayer`.
    """

    def __init__(self, hidden_size: int, num_heads: int = 4, device=None, dtype=None) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.hidden_size, self.num_heads = hidden_size, num_heads
        DH = hidden_size // num_heads
        self.R = nn.Parameter(torch.empty(num_heads, 4, DH, DH, device=device, dtype=dtype))
        self.b = nn.Parameter(torch.empty(4 * hidden_size, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """R = 0 (the xLSTM authors' default recurrent init); b = 0 except the forget gate, whose bias
        rises linearly from 3 to 6 across units (the authors' "small_init" option; inside an xLSTM block
        `sLSTMLayer.reset_parameters` sets their default per-block power-law schedule instead)."""
        H = self.hidden_size
        with torch.no_grad():
            self.R.zero_()
            self.b.zero_()
            self.b[H : 2 * H] = torch.linspace(3.0, 6.0, H)

    def forward(
        self, x: Tensor, state: sLSTMState | None = None, *, reset: Tensor | None = None, valid: Tensor | None = None
    ) -> tuple[Tensor, sLSTMState]:
        return slstm(x, self.R, self.b, state, reset=reset, valid=valid)
