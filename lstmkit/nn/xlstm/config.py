"""The configuration of `xLSTMLM`: one flat, frozen dataclass, checked when it is made.

The stack is a string of block letters, bottom to top: "m" an mLSTM block, "s" an sLSTM block. The
paper's xLSTM[a:b] names the ratio of mLSTM to sLSTM blocks: xLSTM[1:0] is "mmmm", xLSTM[0:1] is
"ssss", and xLSTM[7:1] with 8 blocks is e.g. "mmmsmmmm" (the sLSTM position is free).

Defaults follow the xLSTM authors' package: mLSTM up-projection 2, sLSTM feed-forward 1.3, both
rounded up to a multiple of 64; causal convolutions of 4 taps; q, k, v in blocks of 4 features;
4 heads; GELU in the feed-forward.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOCK_LETTERS = {"m": "mLSTM block", "s": "sLSTM block"}
ACTIVATIONS = ("gelu", "relu", "relu^2", "sigmoid", "swish", "selu")


def round_up(size: float, multiple: int) -> int:
    """⌊(size + multiple − 1) / multiple⌋ · multiple, the xLSTM authors' and transformers' rounding: the next
    multiple, except that an excess under 1 over a multiple rounds down to it (2.667 · 768 = 2048.3 -> 2048)."""
    return int((size + multiple - 1) // multiple * multiple)


@dataclass(frozen=True)
class xLSTMConfig:
    vocab_size: int
    """Number of tokens."""
    embedding_dim: int = 128
    """Width E of the residual stream."""
    blocks: str = "msm"
    """One letter per block, bottom to top: m = mLSTM block, s = sLSTM block."""
    mlstm_heads: int = 4
    """Heads of each mLSTM layer; must divide the inner width."""
    slstm_heads: int = 4
    """Heads of each sLSTM layer; must divide E."""
    mlstm_proj_factor: float = 2.0
    """mLSTM inner width = this · E, rounded up to `round_up_to`."""
    ffn_proj_factor: float = 1.3
    """sLSTM block feed-forward width = this · E, rounded up to `round_up_to`."""
    round_up_to: int = 64
    """Inner widths are rounded up to a multiple of this."""
    mlstm_conv_kernel: int = 4
    """Taps of the mLSTM's causal convolution (at least 1)."""
    slstm_conv_kernel: int = 4
    """Taps of the sLSTM's causal convolution; 0 = no convolution."""
    qkv_blocksize: int = 4
    """The mLSTM's q, k, v maps are block-diagonal with blocks of this many features."""
    ffn_activation: str = "gelu"
    """Activation of the gated feed-forward: gelu, relu, relu^2, sigmoid, swish, selu."""
    bias: bool = False
    """Biases in the linear maps of the blocks (the gates always have one)."""
    final_norm: bool = True
    """LayerNorm after the last block."""
    tie_weights: bool = False
    """Share the embedding matrix with the output head."""
    dropout: float = 0.0
    """Dropout after each block's layer and feed-forward."""
    chunk_size: int = 64
    """Chunk length of the mLSTM's chunkwise form (a speed knob; results do not depend on it)."""

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.blocks, str) or not self.blocks:
            problems.append(f"blocks is {self.blocks!r}, expected a non-empty string of letters m and s")
        else:
            for position, letter in enumerate(self.blocks):
                if letter not in BLOCK_LETTERS:
                    problems.append(f"blocks[{position}] is {letter!r}, expected one of m (mLSTM), s (sLSTM)")
        for name in (
            "vocab_size",
            "embedding_dim",
            "mlstm_heads",
            "slstm_heads",
            "round_up_to",
            "qkv_blocksize",
            "mlstm_conv_kernel",
            "chunk_size",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} is {getattr(self, name)!r}, expected a positive integer")
        if problems:
            raise ValueError("; ".join(problems))
        if self.slstm_conv_kernel < 0:
            problems.append(f"slstm_conv_kernel is {self.slstm_conv_kernel}, expected 0 (none) or more")
        if "m" in self.blocks and self.mlstm_inner_size % self.mlstm_heads:
            problems.append(
                f"mlstm_heads {self.mlstm_heads} does not divide the mLSTM inner width "
                f"{self.mlstm_inner_size} (= {self.mlstm_proj_factor} · {self.embedding_dim} "
                f"rounded up to {self.round_up_to})"
            )
        if "m" in self.blocks and self.mlstm_inner_size % self.qkv_blocksize:
            problems.append(
                f"qkv_blocksize {self.qkv_blocksize} does not divide the mLSTM inner width {self.mlstm_inner_size}"
            )
        if "s" in self.blocks and self.embedding_dim % self.slstm_heads:
            problems.append(f"slstm_heads {self.slstm_heads} does not divide embedding_dim {self.embedding_dim}")
        if self.ffn_activation not in ACTIVATIONS:
            problems.append(f"ffn_activation is {self.ffn_activation!r}, expected one of {', '.join(ACTIVATIONS)}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout is {self.dropout}, expected 0 <= dropout < 1")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def mlstm_inner_size(self) -> int:
        return round_up(self.mlstm_proj_factor * self.embedding_dim, self.round_up_to)

    @property
    def ffn_inner_size(self) -> int:
        return round_up(self.ffn_proj_factor * self.embedding_dim, self.round_up_to)
