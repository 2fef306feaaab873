"""The sLSTM's fast Python loop: the forward without graph recording, and its own reverse loop for backward.

The equations are those of `lstmkit.nn.slstm.cell`. The loop works head-major, (NH, B, 4·DH) per step, so the
recurrent product of all heads and gates is one `baddbmm` that also adds x̃_t + b. Backward runs its own
reverse time loop over the saved gate values (as `lstmkit.reference.slstm.backward` does, vectorized over
batch and heads) instead of letting autograd replay T small graphs, and computes dR for all steps in one
matrix product at the end. Used where the C++ loops (`cpp_loop`) are not: another device or dtype, or no
compiler.

Shapes: B batch, T time, NH heads, DH head size, H = NH·DH.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit.nn.slstm.layout import flat, gate_major, head_major, heads


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


class sLSTMFunction(torch.autograd.Function):
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
