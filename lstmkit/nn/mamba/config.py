"""The configurations of `MambaLM` and `Mamba2LM`: flat, frozen dataclasses, checked when they are made.

Mamba (Gu & Dao 2023): each block is x ← x + MambaMixer(RMSNorm(x)), the mixer of inner width
I = expand · E with a diagonal state of N per channel (A is (I, N)). Mamba-2 (Dao & Gu 2024): the mixer's
A is one scalar per head, H = I / head_dim heads of head_dim channels sharing B and C within G groups.

Defaults follow the authors' `mamba_ssm` (and Hugging Face's `MambaConfig`/`Mamba2Config`, which read the same
checkpoints) but at the small widths lstmkit's tasks train: conv of 4 taps, expand 2, Δ initialised in
[0.001, 0.1], tied embeddings for Mamba, untied for Mamba-2 (as the public checkpoints have them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MambaConfig:
    vocab_size: int
    """Number of tokens."""
    embedding_dim: int = 128
    """Width E of the residual stream (Hugging Face's hidden_size, mamba_ssm's d_model)."""
    num_layers: int = 2
    """Residual blocks."""
    state_size: int = 16
    """N: the state per channel."""
    expand: int = 2
    """Inner width I = expand · E."""
    conv_kernel: int = 4
    """Taps of the causal depthwise convolution."""
    dt_rank: int | None = None
    """Width of Δ's low-rank projection; None: ⌈E / 16⌉ (the authors' "auto")."""
    dt_min: float = 0.001
    """Δ at initialisation is log-uniform in [dt_min, dt_max] ..."""
    dt_max: float = 0.1
    """... (the upper end)."""
    dt_init_floor: float = 1e-4
    """... and at least this."""
    bias: bool = False
    """Biases in in_proj and out_proj."""
    conv_bias: bool = True
    """A bias in the convolution."""
    norm_eps: float = 1e-5
    """ε of the RMSNorms."""
    tie_weights: bool = True
    """Share the embedding matrix with the output head."""
    scan: str = "auto"
    """The scan's form: auto, recurrent, parallel or cpp (a speed knob; results do not depend on it)."""

    def __post_init__(self) -> None:
        _check_common(self)
        if self.dt_rank is not None:
            _positive_int(self, "dt_rank")
        if self.scan not in ("auto", "recurrent", "parallel", "cpp"):
            raise ValueError(f"scan is {self.scan!r}, expected one of auto, recurrent, parallel, cpp")

    @property
    def inner_size(self) -> int:
        return self.expand * self.embedding_dim

    @property
    def rank(self) -> int:
        """Δ's rank: `dt_rank`, or ⌈E / 16⌉."""
        return math.ceil(self.embedding_dim / 16) if self.dt_rank is None else self.dt_rank


@dataclass(frozen=True)
class Mamba2Config:
    vocab_size: int
    """Number of tokens."""
    embedding_dim: int = 128
    """Width E of the residual stream."""
    num_layers: int = 2
    """Residual blocks."""
    state_size: int = 64
    """N: the state per head is head_dim × N."""
    expand: int = 2
    """Inner width I = expand · E, split into I / head_dim heads."""
    head_dim: int = 64
    """P: channels per head; must divide the inner width."""
    num_groups: int = 1
    """G: heads share B and C within a group; must divide the number of heads."""
    conv_kernel: int = 4
    """Taps of the causal depthwise convolution over x, B and C."""
    chunk_size: int = 64
    """Chunk length of the chunkwise form (a speed knob; results do not depend on it)."""
    dt_min: float = 0.001
    """Δ at initialisation is log-uniform in [dt_min, dt_max] ..."""
    dt_max: float = 0.1
    """... (the upper end)."""
    dt_init_floor: float = 1e-4
    """... and at least this."""
    dt_limit: tuple[float, float] = (0.0, math.inf)
    """Δ is clamped to this range after the softplus (mamba_ssm's dt_limit)."""
    A_init_range: tuple[float, float] = (1.0, 16.0)
    """−A at initialisation is uniform in this range, one value per head."""
    bias: bool = False
    """Biases in in_proj and out_proj."""
    conv_bias: bool = True
    """A bias in the convolution."""
    norm_eps: float = 1e-5
    """ε of the RMSNorms (the block's and the gated one before out_proj)."""
    tie_weights: bool = False
    """Share the embedding matrix with the output head."""
    scan: str = "auto"
    """The scan's form: auto, recurrent or chunkwise (a speed knob; results do not depend on it)."""

    def __post_init__(self) -> None:
        _check_common(self)
        for name in ("head_dim", "num_groups", "chunk_size"):
            _positive_int(self, name)
        if self.inner_size % self.head_dim:
            raise ValueError(
                f"head_dim {self.head_dim} does not divide the inner width {self.inner_size} (expand · embedding_dim)"
            )
        if self.num_heads % self.num_groups:
            raise ValueError(f"num_groups {self.num_groups} does not divide the {self.num_heads} heads")
        low, high = _pair(self, "dt_limit")
        if not 0 <= low < high:
            raise ValueError(f"dt_limit is {self.dt_limit!r}, expected 0 ≤ low < high")
        low, high = _pair(self, "A_init_range")
        if not 0 < low <= high < math.inf:
            raise ValueError(f"A_init_range is {self.A_init_range!r}, expected 0 < low ≤ high, finite")
        if self.scan not in ("auto", "recurrent", "chunkwise"):
            raise ValueError(f"scan is {self.scan!r}, expected one of auto, recurrent, chunkwise")

    @property
    def inner_size(self) -> int:
        return self.expand * self.embedding_dim

    @property
    def num_heads(self) -> int:
        return self.inner_size // self.head_dim

    @property
    def conv_size(self) -> int:
        """Channels of the convolution: x, B and C side by side, I + 2·G·N."""
        return self.inner_size + 2 * self.num_groups * self.state_size


def _check_common(config) -> None:
    if isinstance(config.vocab_size, bool) or not isinstance(config.vocab_size, int) or config.vocab_size < 1:
        raise ValueError(f"vocab_size is {config.vocab_size!r}, expected a positive integer")
    for name in ("embedding_dim", "num_layers", "state_size", "expand", "conv_kernel"):
        _positive_int(config, name)
    for name in ("dt_min", "dt_max", "dt_init_floor", "norm_eps"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ValueError(f"{name} is {value!r}, expected a finite number > 0")
    if config.dt_min > config.dt_max:
        raise ValueError(f"dt_min {config.dt_min} is above dt_max {config.dt_max}")
    for name in ("bias", "conv_bias", "tie_weights"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} is {getattr(config, name)!r}, expected True or False")


def _positive_int(config, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} is {value!r}, expected a positive integer")


def _pair(config, name: str) -> tuple[float, float]:
    value = getattr(config, name)
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) for v in value)
    if not ok:
        raise ValueError(f"{name} is {value!r}, expected a pair of numbers (low, high)")
    return float(value[0]), float(value[1])
