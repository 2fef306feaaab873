"""xLSTMLarge: the layout of the xLSTM authors' 7B model (Beck et al. 2025, "xLSTM 7B"), at any size.

    block:  x ← x + mLSTM(RMSNorm(x));   x ← x + SwiGLU(RMSNorm(x))
    mLSTM:  q, k = W_q x, W_k x (width qk_dim_factor · E)   v = W_v x (width v_dim_factor · E)
            ĩ, f̃ = cap(W_i x + b_i), cap(W_f x + b_f)       cap(a) = c · tanh(a / c), c = gate_soft_cap
            h̃ = mLSTM(q, k, v, ĩ, f̃);   y = W_out (σ(W_o x) ⊙ HeadNorm(h̃))        sigmoid output gate
    SwiGLU: y = W_down (SiLU(W_g x) ⊙ W_u x)
    head:   logits = cap(W_head RMSNorm(x)) with c = output_logit_soft_cap

No convolutions, no block-diagonal maps, no learnable skip: every map is one dense matrix product.
The state is one mLSTMState per block; a fresh one is the empty memory (m = -inf).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lstmkit.nn.finite import check_finite, check_finite_or_neg_inf
from lstmkit.nn.generate import generate
from lstmkit.nn.lm_inputs import LMState, check_state, check_token_ids, run_blocks, valid_mask
from lstmkit.nn.mlstm.state import mLSTMState
from lstmkit.nn.parts.init import small_init_std, wang_init_std
from lstmkit.nn.parts.norms import HeadNorm, RMSNorm
from lstmkit.nn.state_check import check_state_tensors
from lstmkit.nn.xlstm.blocks import FeedForward
from lstmkit.nn.xlstm.config import round_up
from lstmkit.nn.xlstm.large_step import decode_step, fast_step_usable
from lstmkit.nn.xlstm.mlstm_layer import run_mlstm


@dataclass(frozen=True)
class xLSTMLargeConfig:
    vocab_size: int
    """Number of tokens."""
    embedding_dim: int = 512
    """Width E of the residual stream (4096 in xLSTM 7B)."""
    num_heads: int = 4
    """mLSTM heads (8 in xLSTM 7B); must divide the q/k and v widths."""
    num_blocks: int = 6
    """Number of blocks (32 in xLSTM 7B)."""
    qk_dim_factor: float = 0.5
    """q and k width = this · E."""
    v_dim_factor: float = 1.0
    """v width = this · E."""
    ffn_proj_factor: float = 2.6667
    """SwiGLU width = this · E, rounded up to `ffn_round_up_to`."""
    ffn_round_up_to: int = 64
    """The SwiGLU width is rounded up to a multiple of this."""
    gate_soft_cap: float | None = 15.0
    """ĩ and f̃ are soft-capped to (-c, c); None: no cap."""
    output_logit_soft_cap: float | None = 30.0
    """Logits are soft-capped to (-c, c); None: no cap."""
    norm_eps: float = 1e-6
    """Epsilon of the RMS and head norms."""
    eps: float = 1e-6
    """Epsilon of the mLSTM's denominator."""
    use_bias: bool = False
    """Biases in the linear maps (the gates always have one)."""
    add_out_norm: bool = True
    """RMSNorm before the head."""
    chunk_size: int = 64
    """Chunk length of the mLSTM's chunkwise form (speed only)."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("vocab_size", "embedding_dim", "num_heads", "num_blocks", "ffn_round_up_to", "chunk_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} is {getattr(self, name)!r}, expected a positive integer")
        if not problems:
            for name, width in (("q/k width", self.qk_dim), ("v width", self.v_dim)):
                if width < self.num_heads or width % self.num_heads:
                    problems.append(f"num_heads {self.num_heads} does not divide the {name} {width}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def qk_dim(self) -> int:
        return int(self.embedding_dim * self.qk_dim_factor)

    @property
    def v_dim(self) -> int:
        return int(self.embedding_dim * self.v_dim_factor)

    @property
    def ffn_inner_size(self) -> int:
        return round_up(self.embedding_dim * self.ffn_proj_factor, self.ffn_round_up_to)


def soft_cap(x: Tensor, cap: float | None) -> Tensor:
    """cap · tanh(x / cap): ≈ x for |x| ≪ cap, never beyond ±cap (x itself when cap is None)."""
    return x if cap is None else cap * torch.tanh(x / cap)


CAP_PIECE = 2**18
"""Elements per piece of the in-place soft cap: 512 KiB in bfloat16, inside a core's L2 cache; a power of two, so
every piece but the last fills whole vectors and the element-wise results are those of one pass over the tensor."""


def soft_cap_logits(logits: Tensor, cap: float | None) -> Tensor:
    """`soft_cap` of the head's fresh output; without autograd in place, the same operations in the same order (the
    same numbers), sparing two (B, T, V) tensors: at T = 256, V = 50304 in bfloat16 half the cap's time. Done in
    cache-sized pieces, each read from memory once for its three operations instead of three times (measured
    63 -> 45 ms for (256, 50304) bfloat16 at 1 thread)."""
    if cap is None or logits.requires_grad:
        return soft_cap(logits, cap)
    if not logits.is_contiguous():
        return logits.div_(cap).tanh_().mul_(cap)
    for piece in logits.view(-1).split(CAP_PIECE):
        piece.div_(cap).tanh_().mul_(cap)
    return logits


class LargeMLSTMLayer(nn.Module):
    """The 7B model's mLSTM layer: forward(x (B, T, E), state, reset, valid) -> (y, mLSTMState)."""

    def __init__(self, config: xLSTMLargeConfig, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        E, bias, kw = config.embedding_dim, config.use_bias, {"device": device, "dtype": dtype}
        self.q = nn.Linear(E, config.qk_dim, bias=bias, **kw)
        self.k = nn.Linear(E, config.qk_dim, bias=bias, **kw)
        self.v = nn.Linear(E, config.v_dim, bias=bias, **kw)
        self.ogate = nn.Linear(E, config.v_dim, bias=bias, **kw)
        self.igate = nn.Linear(E, config.num_heads, **kw)
        self.fgate = nn.Linear(E, config.num_heads, **kw)
        self.outnorm = HeadNorm(config.v_dim, config.num_heads, eps=config.norm_eps, bias=bias, **kw)
        self.out_proj = nn.Linear(config.v_dim, E, bias=bias, **kw)

    def state_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """C (B, NH, DK, DV), n (B, NH, DK), m (B, NH)."""
        NH = self.config.num_heads
        DK, DV = self.config.qk_dim // NH, self.config.v_dim // NH
        return {"C": (batch, NH, DK, DV), "n": (batch, NH, DK), "m": (batch, NH)}

    def empty_state(self, batch: int, like: Tensor) -> mLSTMState:
        """The empty memory: C = 0, n = 0, m = -inf (`mLSTMState.empty`)."""
        NH = self.config.num_heads
        return mLSTMState.empty(batch, NH, self.config.qk_dim // NH, self.config.v_dim // NH, like=like)

    def check_state(self, state: object, batch: int, like: Tensor, where: str) -> None:
        if not isinstance(state, mLSTMState):
            raise ValueError(f"{where} state is a {type(state).__name__}, expected an mLSTMState(C, n, m)")
        check_state_tensors(f"{where} state.", state, self.state_shapes(batch), like)

    def forward(
        self, x: Tensor, state: mLSTMState | None, reset: Tensor | None, lengths: Tensor | None
    ) -> tuple[Tensor, mLSTMState]:
        B, T, _ = x.shape
        c = self.config
        state = self.empty_state(B, x) if state is None else state
        q, k, v = self.q(x), self.k(x), self.v(x)
        i, f = soft_cap(self.igate(x), c.gate_soft_cap), soft_cap(self.fgate(x), c.gate_soft_cap)  # (B, T, NH)
        valid = valid_mask(lengths, T, x.device)
        h, state = run_mlstm(
            q, k, v, i, f, state, num_heads=c.num_heads, eps=c.eps, chunk_size=c.chunk_size, reset=reset, valid=valid
        )  # (B, T, v_dim)
        return self.out_proj(torch.sigmoid(self.ogate(x)) * self.outnorm(h)), state


def check_state_values(state: LMState) -> None:
    """A caller's state as the Python path's `check_values` wants it: C and n finite, m finite or -inf (an empty
    memory). The C++ step does not look; `decode_in_place` skips this for the state its loop made itself."""
    for b, block in enumerate(state.blocks):
        check_finite(f"block {b} state.C", block.C)
        check_finite(f"block {b} state.n", block.n)
        check_finite_or_neg_inf(f"block {b} state.m", block.m)


class LargeBlock(nn.Module):
    def __init__(self, config: xLSTMLargeConfig, device=None, dtype=None) -> None:
        super().__init__()
        E, kw = config.embedding_dim, {"device": device, "dtype": dtype}
        self.norm = RMSNorm(E, config.norm_eps, config.use_bias, **kw)
        self.layer = LargeMLSTMLayer(config, **kw)
        self.ffn_norm = RMSNorm(E, config.norm_eps, config.use_bias, **kw)
        self.ffn = FeedForward(E, config.ffn_inner_size, activation="swish", bias=config.use_bias, **kw)
        self.config = config

    def reset_parameters(self) -> None:
        """This block's part of `xLSTMLarge.reset_parameters` (E = embedding_dim, L = num_blocks)."""
        E, L = self.config.embedding_dim, self.config.num_blocks
        small, wang = small_init_std(E), wang_init_std(E, L)
        layer = self.layer
        for linear in (layer.q, layer.k, layer.v, layer.ogate, layer.out_proj):
            nn.init.normal_(linear.weight, 0.0, wang if linear is layer.out_proj else small)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        nn.init.zeros_(layer.igate.weight)
        nn.init.constant_(layer.igate.bias, -10.0)
        nn.init.zeros_(layer.fgate.weight)
        with torch.no_grad():
            layer.fgate.bias.copy_(torch.linspace(3.0, 6.0, self.config.num_heads))
        self.ffn.reset_parameters(L)
        for norm in (self.norm, self.ffn_norm, layer.outnorm):
            norm.reset_parameters()

    def forward(
        self,
        x: Tensor,
        state: mLSTMState | None = None,
        *,
        reset: Tensor | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, mLSTMState]:
        y, state = self.layer(self.norm(x), state, reset, lengths)
        x = x + y
        return x + self.ffn(self.ffn_norm(x)), state


class xLSTMLarge(nn.Module):
    """forward(tokens (B, T), state=None, *, lengths=None, reset=None) -> (logits (B, T, V), LMState).

    One token without gradients (generation) runs through `large_step.decode_step`, one C++ call; `slow_forward`
    is the Python path, the reference it is tested equal to. A prompt runs through the chunkwise form; `prefill`
    gives its last position's logits only (what `generate` needs of it)."""

    def __init__(self, config: xLSTMLargeConfig, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(config, xLSTMLargeConfig):
            raise TypeError(f"config is a {type(config).__name__}, expected an xLSTMLargeConfig")
        self.config = config
        E, kw = config.embedding_dim, {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(config.vocab_size, E, **kw)
        self.blocks = nn.ModuleList(LargeBlock(config, **kw) for _ in range(config.num_blocks))
        self.norm = RMSNorm(E, config.norm_eps, config.use_bias, **kw) if config.add_out_norm else nn.Identity()
        self.head = nn.Linear(E, config.vocab_size, bias=False, **kw)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """E = embedding_dim, L = num_blocks (the authors' package leaves this to its training code; we use
        their small-model scheme plus the 7B paper's negative input-gate bias):

        embedding, head, q, k, v, ogate, SwiGLU up: N(0, 2/(5E))     out_proj, SwiGLU down: N(0, (2/L/√E)²)
        igate: weight 0, bias -10 (the 7B paper: keeps early exponential input gates small)
        fgate: weight 0, bias linspace(3, 6) over heads              norms: 1; biases: 0.
        """
        small = small_init_std(self.config.embedding_dim)
        nn.init.normal_(self.embedding.weight, 0.0, small)
        nn.init.normal_(self.head.weight, 0.0, small)
        for block in self.blocks:
            block.reset_parameters()
        if isinstance(self.norm, RMSNorm):
            self.norm.reset_parameters()

    def forward(
        self,
        tokens: Tensor,
        state: LMState | None = None,
        *,
        lengths: Tensor | None = None,
        reset: Tensor | None = None,
    ) -> tuple[Tensor, LMState]:
        tokens = check_token_ids(tokens, self.config.vocab_size)
        if fast_step_usable(self, tokens, lengths, reset):  # one token of generation: the C++ step (large_step)
            if state is not None:
                check_state(state, self.blocks, tokens.shape[0], self.embedding.weight)
                check_state_values(state)
            return decode_step(self, tokens, state)
        return self.slow_forward(tokens, state, lengths=lengths, reset=reset)

    @torch.no_grad()
    def decode_in_place(self, tokens: Tensor, state: LMState) -> tuple[Tensor, LMState]:
        """`forward` of one token (B, 1) without gradients that may overwrite `state` with the new state and return
        it: for a decoding loop that owns its state (`generate`). Fresh tensors each token cost page faults,
        measured at 10 % of a 356M model's step; updating in place also keeps each memory row in the cache between
        its read and its write. Where the C++ step does not apply (or the state's tensors are not contiguous) this is
        `forward`, which leaves the state alone."""
        tokens = check_token_ids(tokens, self.config.vocab_size)
        if state is None or not fast_step_usable(self, tokens, None, None):
            return self.forward(tokens, state)
        check_state(state, self.blocks, tokens.shape[0], self.embedding.weight)
        writable = all(t.is_contiguous() for block in state.blocks for t in block)
        return decode_step(self, tokens, state, out=state if writable else None)

    def slow_forward(
        self,
        tokens: Tensor,
        state: LMState | None = None,
        *,
        lengths: Tensor | None = None,
        reset: Tensor | None = None,
    ) -> tuple[Tensor, LMState]:
        """`forward` through the Python layers always (the reference of the C++ decode step)."""
        tokens = check_token_ids(tokens, self.config.vocab_size)
        x, state = run_blocks(self.blocks, self.embedding(tokens), state, lengths, reset)  # (B, T, E)
        return soft_cap_logits(self.head(self.norm(x)), self.config.output_logit_soft_cap), state

    def prefill(self, tokens: Tensor, state: LMState | None = None) -> tuple[Tensor, LMState]:
        """`forward` that returns only the last position's logits (B, 1, V), equal to forward(...)[0][:, -1:], and the
        state: the prompt step of `generate`, which samples from that row alone. The blocks run over every position;
        only the head and its soft cap are spared at the others: measured 222 -> 157 ms for a 124M model's
        256-token prompt (V = 50304, bfloat16, 1 thread)."""
        tokens = check_token_ids(tokens, self.config.vocab_size)
        if fast_step_usable(self, tokens, None, None):  # a one-token prompt: the C++ step, as in `forward`
            return self.forward(tokens, state)
        x, state = run_blocks(self.blocks, self.embedding(tokens), state, None, None)  # (B, T, E)
        return soft_cap_logits(self.head(self.norm(x[:, -1:])), self.config.output_logit_soft_cap), state

    generate = generate


class LargeStack(nn.Module):
    """xLSTMLarge's blocks and final RMSNorm on vectors, as xLSTMStack:
    forward(x (B, T, E), state=None, *, lengths=None, reset=None) -> (out (B, T, E), LMState)."""

    def __init__(self, config: xLSTMLargeConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(LargeBlock(config) for _ in range(config.num_blocks))
        self.norm = RMSNorm(config.embedding_dim, config.norm_eps)

    def reset_parameters(self) -> None:
        """Every block as `xLSTMLarge.reset_parameters` does it (this stack's depth), the norm 1."""
        for block in self.blocks:
            block.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self,
        x: Tensor,
        state: LMState | None = None,
        *,
        lengths: Tensor | None = None,
        reset: Tensor | None = None,
    ) -> tuple[Tensor, LMState]:
        x, state = run_blocks(self.blocks, x, state, lengths, reset)
        return self.norm(x), state
