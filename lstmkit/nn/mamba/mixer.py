"""The Mamba mixer (Gu & Dao 2023, fig. 3), streaming with its state.

    x, z   = split(W_in u)                       two branches of inner width I = expand · E
    x_c    = SiLU(conv(x))                       causal depthwise convolution, K taps
    δ, B, C = split(W_x x_c)                     δ of rank R, B and C of N: the selection
    Δ      = softplus(W_dt δ + b_dt)             (B, T, I), one step size per channel
    A      = -exp(A_log)                         (I, N), negative
    y      = SSM(x_c, Δ, A, B, C) + D ⊙ x_c      the selective scan (`scan.selective_scan`)
    out    = W_out (y ⊙ SiLU(z))

One token (generation) runs through one C++ call (`mixer_step.py`) on the CPU in float32/float64 without
gradients; otherwise it takes the scan's step without re-checking what the mixer computed (`scan.selective_step`).
The state is (convolution state, MambaState): the last K-1 inputs of the convolution and h (B, I, N); a
fresh one is all zeros, which is also what a document reset gives.

Parameter names are those of Hugging Face's `MambaMixer` (and mamba_ssm's), so checkpoints map one to one
(`lstmkit.nn.compat.mamba_hf`); the convolution's weight is (I, K) here, (I, 1, K) there.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn.lm_inputs import valid_mask
from lstmkit.nn.mamba.config import MambaConfig
from lstmkit.nn.mamba.mixer_step import cpp_step_usable, mixer_step
from lstmkit.nn.mamba.recurrent import MambaState
from lstmkit.nn.mamba.scan import selective_scan, selective_step
from lstmkit.nn.parts.causal_conv import CausalConv1d
from lstmkit.nn.state_check import check_state_tensors


class MambaLayerState(NamedTuple):
    conv: Tensor
    """The last K-1 inputs of the convolution (B, K-1, I)."""
    ssm: MambaState
    """The selective scan's state h (B, I, N)."""


class MambaMixer(nn.Module):
    """forward(u (B, T, E), state=None, *, reset=None, lengths=None) -> (out (B, T, E), MambaLayerState)."""

    def __init__(self, config: MambaConfig, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.config = config
        E, I, N, R = config.embedding_dim, config.inner_size, config.state_size, config.rank
        self.in_proj = nn.Linear(E, 2 * I, bias=config.bias, **kw)  # [x | z]
        self.conv1d = CausalConv1d(I, config.conv_kernel, bias=config.conv_bias, **kw)
        self.x_proj = nn.Linear(I, R + 2 * N, bias=False, **kw)  # [δ | B | C]
        self.dt_proj = nn.Linear(R, I, bias=True, **kw)
        self.A_log = nn.Parameter(torch.empty(I, N, **kw))
        self.D = nn.Parameter(torch.empty(I, **kw))
        self.out_proj = nn.Linear(I, E, bias=config.bias, **kw)
        self.reset_parameters()

    def reset_parameters(self, num_layers: int = 1) -> None:
        """mamba_ssm's initialisation (its `Mamba.__init__` and `MambaLMHeadModel._init_weights`):

        A = -(1, 2, …, N) in every channel ("S4D real"), stored as A_log = log(1..N); D = 1
        Δ's bias b_dt = softplus⁻¹(Δ₀), Δ₀ log-uniform in [dt_min, dt_max], at least dt_init_floor, so that
            Δ starts there; W_dt ~ U(±R^-½)
        in_proj, x_proj, out_proj: torch's default U(±1/√fan_in), then out_proj / √num_layers (the
            residual stream's growth with depth, GPT-2's scheme); their biases 0; conv: U(±1/√K)
        """
        c = self.config
        N = c.state_size
        with torch.no_grad():
            A = torch.arange(1, N + 1, dtype=torch.float64).expand(c.inner_size, N)
            self.A_log.copy_(A.log())
            self.D.fill_(1.0)
            self.dt_proj.bias.copy_(inverse_softplus(initial_delta(c, c.inner_size)))
        nn.init.uniform_(self.dt_proj.weight, -(c.rank**-0.5), c.rank**-0.5)
        for linear in (self.in_proj, self.x_proj, self.out_proj):
            linear.reset_parameters()
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        with torch.no_grad():
            self.out_proj.weight.div_(math.sqrt(num_layers))
        self.conv1d.reset_parameters()

    def empty_state(self, batch: int, like: Tensor) -> MambaLayerState:
        ssm = MambaState.zeros(batch, self.config.inner_size, self.config.state_size, like=like)
        return MambaLayerState(self.conv1d.empty_state(batch, like), ssm)

    def check_state(self, state: object, batch: int, like: Tensor, where: str = "Mamba mixer") -> None:
        if not isinstance(state, MambaLayerState) or not isinstance(state.ssm, MambaState):
            raise ValueError(f"{where} state is a {type(state).__name__}, expected a MambaLayerState(conv, ssm)")
        self.conv1d.check_state(state.conv, batch, like, where)
        shapes = {"h": (batch, self.config.inner_size, self.config.state_size)}
        check_state_tensors(f"{where} state.ssm.", state.ssm, shapes, like=like)

    def selection(self, x_c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Δ (B, T, I), B and C (B, T, N) from the convolved input: what the scan reads at each step."""
        R, N = self.config.rank, self.config.state_size
        dt, B, C = self.x_proj(x_c).split([R, N, N], dim=-1)
        return F.softplus(self.dt_proj(dt)), B, C

    def forward(
        self,
        u: Tensor,
        state: MambaLayerState | None = None,
        *,
        reset: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, MambaLayerState]:
        batch, T, _ = u.shape
        if state is None:
            state = self.empty_state(batch, u)
        else:
            self.check_state(state, batch, u)
        if T == 1 and reset is None and lengths is None and cpp_step_usable(self, u):
            out, conv_state, ssm = mixer_step(self, u, state)  # generation: one C++ call
            return out, MambaLayerState(conv_state, ssm)
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, T, I) each
        x_c, conv_state = self.conv1d(x, state.conv, reset=reset, lengths=lengths)
        x_c = F.silu(x_c)
        delta, B, C = self.selection(x_c)
        A = self.A_log.exp().neg()
        valid = valid_mask(lengths, T, u.device)
        scan = selective_step if T == 1 else functools.partial(selective_scan, form=self.config.scan)
        y, ssm = scan(x_c, delta, A, B, C, self.D, z, state.ssm, reset=reset, valid=valid)
        return self.out_proj(y), MambaLayerState(conv_state, ssm)


def initial_delta(config, size: int) -> Tensor:
    """Δ₀ (size,): exp(U(log dt_min, log dt_max)), at least dt_init_floor (float64)."""
    low, high = math.log(config.dt_min), math.log(config.dt_max)
    u = torch.rand(size, dtype=torch.float64)
    return torch.exp(low + u * (high - low)).clamp(min=config.dt_init_floor)


def inverse_softplus(y: Tensor) -> Tensor:
    """softplus⁻¹(y) = y + log(1 - e^{-y}) = y + log(-expm1(-y)), for y > 0 (exact for small y too)."""
    return y + torch.log(-torch.expm1(-y))
