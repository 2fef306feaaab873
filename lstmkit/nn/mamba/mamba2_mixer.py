"""The Mamba-2 mixer (Dao & Gu 2024, fig. 6), streaming with its state.

    z, xBC, δ = split(W_in u)                    z and x of width I, B and C of G·N each, δ of H
    x, B, C   = split(SiLU(conv(xBC)))           one causal depthwise convolution over x ‖ B ‖ C
    Δ         = clamp(softplus(δ + b_dt), dt_limit)      (B, T, H), one step size per head
    A         = -exp(A_log)                       (H,), one negative scalar per head
    y         = SSD(x, Δ, A, B, C) + D ⊙ x        H heads of head_dim P, groups of heads share B and C
    out       = W_out GatedRMSNorm(y, z)          RMSNorm per group of (y ⊙ SiLU(z))

One token (generation) takes the scan's step without re-checking what the mixer computed (`scan.ssd_step`).
The state is (convolution state, SSDState): the last K-1 inputs of the convolution (B, K-1, I + 2GN)
and h (B, H, P, N); a fresh one is all zeros, which is also what a document reset gives.

Parameter names are those of Hugging Face's `Mamba2Mixer` (and mamba_ssm's), so checkpoints map one to one
(`lstmkit.nn.compat.mamba_hf`); the convolution's weight is (I + 2GN, K) here, (I + 2GN, 1, K) there.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn.lm_inputs import valid_mask
from lstmkit.nn.mamba.config import Mamba2Config
from lstmkit.nn.mamba.mixer import initial_delta, inverse_softplus
from lstmkit.nn.mamba.scan import ssd_scan, ssd_step
from lstmkit.nn.mamba.ssd_recurrent import SSDState
from lstmkit.nn.parts.causal_conv import CausalConv1d
from lstmkit.nn.parts.norms import GatedRMSNorm
from lstmkit.nn.state_check import check_state_tensors


class Mamba2LayerState(NamedTuple):
    conv: Tensor
    """The last K-1 inputs of the convolution (B, K-1, I + 2GN)."""
    ssm: SSDState
    """The SSD state h (B, H, P, N)."""


class Mamba2Mixer(nn.Module):
    """forward(u (B, T, E), state=None, *, reset=None, lengths=None) -> (out (B, T, E), Mamba2LayerState)."""

    def __init__(self, config: Mamba2Config, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.config = config
        E, I, H = config.embedding_dim, config.inner_size, config.num_heads
        self.in_proj = nn.Linear(E, I + config.conv_size + H, bias=config.bias, **kw)  # [z | x B C | δ]
        self.conv1d = CausalConv1d(config.conv_size, config.conv_kernel, bias=config.conv_bias, **kw)
        self.dt_bias = nn.Parameter(torch.empty(H, **kw))
        self.A_log = nn.Parameter(torch.empty(H, **kw))
        self.D = nn.Parameter(torch.empty(H, **kw))
        self.norm = GatedRMSNorm(I, I // config.num_groups, eps=config.norm_eps, **kw)
        self.out_proj = nn.Linear(I, E, bias=config.bias, **kw)
        self.reset_parameters()

    def reset_parameters(self, num_layers: int = 1) -> None:
        """mamba_ssm's initialisation (its `Mamba2.__init__` and `_init_weights`):

        -A ~ U(A_init_range) per head, stored as A_log; D = 1; norm weight 1
        Δ's bias b_dt = softplus⁻¹(Δ₀), Δ₀ log-uniform in [dt_min, dt_max], at least dt_init_floor
        in_proj, out_proj: torch's default U(±1/√fan_in), then out_proj / √num_layers; biases 0; conv: U(±1/√K)
        (Hugging Face's Mamba-2 starts A at -(1, 2, …, H) instead; its checkpoints load either way.)
        """
        c = self.config
        low, high = c.A_init_range
        with torch.no_grad():
            self.A_log.copy_(torch.empty(c.num_heads, dtype=torch.float64).uniform_(low, high).log())
            self.D.fill_(1.0)
            self.dt_bias.copy_(inverse_softplus(initial_delta(c, c.num_heads)))
        for linear in (self.in_proj, self.out_proj):
            linear.reset_parameters()
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        with torch.no_grad():
            self.out_proj.weight.div_(math.sqrt(num_layers))
        self.conv1d.reset_parameters()
        self.norm.reset_parameters()

    def empty_state(self, batch: int, like: Tensor) -> Mamba2LayerState:
        c = self.config
        ssm = SSDState.zeros(batch, c.num_heads, c.head_dim, c.state_size, like=like)
        return Mamba2LayerState(self.conv1d.empty_state(batch, like), ssm)

    def check_state(self, state: object, batch: int, like: Tensor, where: str = "Mamba-2 mixer") -> None:
        if not isinstance(state, Mamba2LayerState) or not isinstance(state.ssm, SSDState):
            raise ValueError(f"{where} state is a {type(state).__name__}, expected a Mamba2LayerState(conv, ssm)")
        self.conv1d.check_state(state.conv, batch, like, where)
        c = self.config
        shapes = {"h": (batch, c.num_heads, c.head_dim, c.state_size)}
        check_state_tensors(f"{where} state.ssm.", state.ssm, shapes, like=like)

    def delta(self, dt: Tensor) -> Tensor:
        """Δ (B, T, H) = clamp(softplus(δ + b_dt), dt_limit)."""
        low, high = self.config.dt_limit
        delta = F.softplus(dt + self.dt_bias)
        return delta if (low, high) == (0.0, math.inf) else delta.clamp(low, high)

    def forward(
        self,
        u: Tensor,
        state: Mamba2LayerState | None = None,
        *,
        reset: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, Mamba2LayerState]:
        c = self.config
        batch, T, _ = u.shape
        if state is None:
            state = self.empty_state(batch, u)
        else:
            self.check_state(state, batch, u)
        I, GN, H = c.inner_size, c.num_groups * c.state_size, c.num_heads
        z, xBC, dt = self.in_proj(u).split([I, c.conv_size, H], dim=-1)
        xBC, conv_state = self.conv1d(xBC, state.conv, reset=reset, lengths=lengths)
        x, B, C = F.silu(xBC).split([I, GN, GN], dim=-1)
        heads = (batch, T, H, c.head_dim)
        groups = (batch, T, c.num_groups, c.state_size)
        A = self.A_log.exp().neg()
        valid = valid_mask(lengths, T, u.device)
        scan = ssd_step if T == 1 else functools.partial(ssd_scan, form=c.scan, chunk_size=c.chunk_size)
        y, ssm = scan(
            x.reshape(heads),
            self.delta(dt),
            A,
            B.reshape(groups),
            C.reshape(groups),
            self.D,
            None,
            state.ssm,
            reset=reset,
            valid=valid,
        )
        return self.out_proj(self.norm(y.reshape(batch, T, I), z)), Mamba2LayerState(conv_state, ssm)
