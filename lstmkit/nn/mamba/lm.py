"""MambaLM and Mamba2LM: token embedding, a stack of residual mixer blocks, final RMSNorm, output head.

    block:  x ← x + Mixer(RMSNorm(x))            Mixer = MambaMixer or Mamba2Mixer

    from lstmkit.nn import MambaConfig, MambaLM
    model = MambaLM(MambaConfig(vocab_size=256, embedding_dim=128, num_layers=2))
    logits, state = model(tokens)                     # tokens (B, T) -> logits (B, T, V)
    logits, state = model(next_tokens, state)         # carry on: same logits as one long call
    out = model.generate(prompt, max_new_tokens=100, temperature=0.8, top_k=40, seed=0)

The same interface as `xLSTMLM`: any T, any number of calls; `lengths` (right padding) and `reset` (document
starts) as in `lstmkit.nn.lm_inputs`; the state is an LMState of one (conv, ssm) state per block.
"""

from __future__ import annotations

from torch import Tensor, nn

from lstmkit.nn.generate import generate
from lstmkit.nn.lm_inputs import LMState, check_token_ids, run_blocks
from lstmkit.nn.mamba.config import Mamba2Config, MambaConfig
from lstmkit.nn.mamba.mamba2_mixer import Mamba2Mixer
from lstmkit.nn.mamba.mixer import MambaMixer
from lstmkit.nn.parts.norms import RMSNorm

MIXERS = {MambaConfig: MambaMixer, Mamba2Config: Mamba2Mixer}


class MambaBlock(nn.Module):
    """x ← x + layer(norm(x)): forward(x, state=None, *, reset=None, lengths=None) -> (x, state)."""

    def __init__(self, config: MambaConfig | Mamba2Config, device=None, dtype=None) -> None:
        super().__init__()
        self.num_layers = config.num_layers
        self.norm = RMSNorm(config.embedding_dim, eps=config.norm_eps, device=device, dtype=dtype)
        self.layer = MIXERS[type(config)](config, device, dtype)

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.layer.reset_parameters(self.num_layers)

    def forward(self, x: Tensor, state=None, *, reset: Tensor | None = None, lengths: Tensor | None = None):
        y, state = self.layer(self.norm(x), state, reset=reset, lengths=lengths)
        return x + y, state


class MambaStack(nn.Module):
    """The blocks and the final norm, on vectors: forward(x (B, T, E), state=None, *, lengths=None, reset=None)
    -> (y (B, T, E), LMState). For a MambaConfig or a Mamba2Config; `config.vocab_size` is not used."""

    def __init__(self, config: MambaConfig | Mamba2Config, device=None, dtype=None) -> None:
        super().__init__()
        if type(config) not in MIXERS:
            raise TypeError(f"config is a {type(config).__name__}, expected a MambaConfig or a Mamba2Config")
        self.config = config
        self.blocks = nn.ModuleList(MambaBlock(config, device, dtype) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.embedding_dim, eps=config.norm_eps, device=device, dtype=dtype)
        self.reset_parameters()  # the out-projections scaled for this depth

    def reset_parameters(self) -> None:
        for block in self.blocks:
            block.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self, x: Tensor, state: LMState | None = None, *, lengths: Tensor | None = None, reset: Tensor | None = None
    ) -> tuple[Tensor, LMState]:
        if x.dim() != 3 or x.shape[-1] != self.config.embedding_dim:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, T, {self.config.embedding_dim})")
        x, state = run_blocks(self.blocks, x, state, lengths, reset)
        return self.norm(x), state


class MambaLM(nn.Module):
    """forward(tokens (B, T), state=None, *, lengths=None, reset=None) -> (logits (B, T, V), LMState)."""

    config_class = MambaConfig

    def __init__(self, config: MambaConfig, device=None, dtype=None) -> None:
        super().__init__()
        if type(config) is not self.config_class:
            raise TypeError(f"config is a {type(config).__name__}, expected a {self.config_class.__name__}")
        self.config = config
        E = config.embedding_dim
        self.embedding = nn.Embedding(config.vocab_size, E, device=device, dtype=dtype)
        self.stack = MambaStack(config, device, dtype)
        self.head = nn.Linear(E, config.vocab_size, bias=False, device=device, dtype=dtype)
        if config.tie_weights:
            self.head.weight = self.embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation (mamba_ssm's `MambaLMHeadModel`): embedding (and an untied head)
        N(0, 0.02²); each block as `MambaMixer.reset_parameters` (or `Mamba2Mixer`'s) with the model's depth;
        norms 1."""
        nn.init.normal_(self.embedding.weight, 0.0, 0.02)
        if not self.config.tie_weights:
            nn.init.normal_(self.head.weight, 0.0, 0.02)
        self.stack.reset_parameters()

    def forward(
        self,
        tokens: Tensor,
        state: LMState | None = None,
        *,
        lengths: Tensor | None = None,
        reset: Tensor | None = None,
    ) -> tuple[Tensor, LMState]:
        tokens = check_token_ids(tokens, self.config.vocab_size)
        x, state = self.stack(self.embedding(tokens), state, lengths=lengths, reset=reset)
        return self.head(x), state

    generate = generate


class Mamba2LM(MambaLM):
    """forward(tokens (B, T), state=None, *, lengths=None, reset=None) -> (logits (B, T, V), LMState)."""

    config_class = Mamba2Config
