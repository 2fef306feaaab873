"""xLSTMLM: token embedding, a stack of mLSTM and sLSTM blocks, final norm, output head.

    from lstmkit.nn import xLSTMConfig, xLSTMLM
    model = xLSTMLM(xLSTMConfig(vocab_size=256, embedding_dim=128, blocks="msm"))
    logits, state = model(tokens)                     # tokens (B, T) -> logits (B, T, V)
    logits, state = model(next_tokens, state)         # carry on: same logits as one long call
    out = model.generate(prompt, max_new_tokens=100, temperature=0.8, top_k=40, seed=0)

No context length: any T, any number of calls (B = 0 or T = 0: empty logits, the state unchanged).
`lengths` (right padding) and `reset` (document starts) are described in `lstmkit.nn.lm_inputs`.
"""

from __future__ import annotations

from torch import Tensor, nn

from lstmkit.nn.generate import generate
from lstmkit.nn.lm_inputs import LMState, check_token_ids, run_blocks
from lstmkit.nn.parts.init import small_init_std
from lstmkit.nn.parts.norms import LayerNorm
from lstmkit.nn.xlstm.blocks import mLSTMBlock, sLSTMBlock
from lstmkit.nn.xlstm.config import xLSTMConfig
from lstmkit.nn.xlstm.lm_step import fast_step_usable, lm_step

BLOCK_TYPES = {"m": mLSTMBlock, "s": sLSTMBlock}


class xLSTMStack(nn.Module):
    """The blocks and the final norm, on vectors: forward(x (B, T, E), state=None, *, lengths=None, reset=None)
    -> (y (B, T, E), LMState). `config.vocab_size` is not used (the xLSTM authors' `xLSTMBlockStack`)."""

    def __init__(self, config: xLSTMConfig, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(config, xLSTMConfig):
            raise TypeError(f"config is a {type(config).__name__}, expected an xLSTMConfig")
        self.config = config
        self.blocks = nn.ModuleList(
            BLOCK_TYPES[letter](config, index, device, dtype) for index, letter in enumerate(config.blocks)
        )
        E = config.embedding_dim
        self.norm = LayerNorm(E, device=device, dtype=dtype) if config.final_norm else nn.Identity()

    def reset_parameters(self) -> None:
        for block in self.blocks:
            block.reset_parameters()
        if isinstance(self.norm, LayerNorm):
            self.norm.reset_parameters()

    def forward(
        self,
        x: Tensor,
        state: LMState | None = None,
        *,
        lengths: Tensor | None = None,
        reset: Tensor | None = None,
    ) -> tuple[Tensor, LMState]:
        if x.dim() != 3 or x.shape[-1] != self.config.embedding_dim:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, T, {self.config.embedding_dim})")
        x, state = run_blocks(self.blocks, x, state, lengths, reset)
        return self.norm(x), state


class xLSTMLM(nn.Module):
    """forward(tokens (B, T), state=None, *, lengths=None, reset=None) -> (logits (B, T, V), LMState)."""

    def __init__(self, config: xLSTMConfig, device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(config, xLSTMConfig):
            raise TypeError(f"config is a {type(config).__name__}, expected an xLSTMConfig")
        self.config = config
        E = config.embedding_dim
        self.embedding = nn.Embedding(config.vocab_size, E, device=device, dtype=dtype)
        self.stack = xLSTMStack(config, device, dtype)
        self.head = nn.Linear(E, config.vocab_size, bias=False, device=device, dtype=dtype)
        if config.tie_weights:
            self.head.weight = self.embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The xLSTM authors' initialisation (their `xLSTMLMModel.reset_parameters`), E = embedding_dim:

        embedding, head (when not tied): N(0, 2/(5E)) ("small init", Nguyen & Salazar 2019)
        every block: see `mLSTMLayer.reset_parameters`, `sLSTMLayer.reset_parameters` and
        `FeedForward.reset_parameters` (small init for maps into a block, Wang init N(0, (2/L/√E)²) for
        maps out of it with L blocks, mLSTM forget bias linspace(3, 6), sLSTM forget bias power law per block)
        norms: weight 1.
        """
        small = small_init_std(self.config.embedding_dim)
        nn.init.normal_(self.embedding.weight, 0.0, small)
        if not self.config.tie_weights:
            nn.init.normal_(self.head.weight, 0.0, small)
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
        if fast_step_usable(self, tokens, lengths, reset):  # one token in one C++ call (`lm_step`)
            step = lm_step(self, tokens, state)  # None: the state or a value is refused, the slow path says why
            if step is not None:
                return step
        x, state = self.stack(self.embedding(tokens), state, lengths=lengths, reset=reset)
        return self.head(x), state

    generate = generate
