"""One model per family behind one interface, sized from a task's spec: what `train` and the CLI build.

    model = SequenceModel(ModelConfig("lstm", hidden_size=64), task.spec)
    output = model(batch.x, batch.lengths)      # (B, O) for regress/classify, (B, T, O) for tag

    input  token ids -> nn.Embedding,  vectors -> nn.Linear      (to width H)
    body   rnn | gru | lstm         lstmkit.nn.RNN/GRU/LSTM, num_layers, batch_first (packed for lengths)
           slstm | mlstm | xlstm    lstmkit.nn.xLSTMStack with blocks "s"·L, "m"·L, or `blocks`
           xlstm-large              the 7B layout's blocks (RMSNorm, mLSTM, SwiGLU) on vectors
           mamba | mamba2           lstmkit.nn.MambaStack of num_layers Mamba or Mamba-2 blocks, state size N
           transformer              lstmkit.nn.CausalTransformer: num_layers pre-norm torch.nn.TransformerEncoderLayer,
                                    num_heads, feed-forward 4·H, sinusoidal positions (a baseline for the tables)
    head   nn.Linear(H, O): at every position (tag) or at each row's last valid step (regress, classify)

A language model ("tag" task, token ids in, one logit per token out) can also stream: the same outputs
as one forward over the whole sequence, computed piece by piece with the body's state carried.

    logits, state = model.stream(x[:, :5])          # (B, 5, O)
    logits, state = model.stream(x[:, 5:], state)   # == model(x)[:, 5:]

Sizes have no upper bound in the config, so `check_fits` estimates before anything is allocated and refuses,
naming the options, what cannot fit in memory (the GPU's, or os.sysconf's physical pages): the parameters
(counted exactly on torch's meta device) at 16 bytes each for training, 4 for inference, plus one batch's
activations ≈ B · T · H · layers · ACTIVATIONS_PER_UNIT[family] · 4 bytes, a rough figure meant to refuse
the impossible (`--hidden-size 200000`, `--batch-size 10**8`), not to predict memory use.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmkit.nn import (
    GRU,
    LSTM,
    RNN,
    CausalTransformer,
    Mamba2Config,
    MambaConfig,
    MambaStack,
    TransformerState,
    xLSTMConfig,
    xLSTMStack,
)
from lstmkit.nn.lm_inputs import LMState
from lstmkit.nn.xlstm.large import LargeStack, xLSTMLargeConfig
from lstmkit.tasks.base import TaskSpec

BodyState = Tensor | tuple[Tensor, Tensor] | LMState | TransformerState
"""The recurrent state a body carries between `stream` calls (see SequenceModel.stream)."""

MODEL_NAMES = ("rnn", "gru", "lstm", "slstm", "mlstm", "xlstm", "xlstm-large", "mamba", "mamba2", "transformer")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    """One of rnn, gru, lstm, slstm, mlstm, xlstm, xlstm-large, mamba, mamba2, transformer."""
    hidden_size: int = 64
    """Width H of the recurrent state (the embedding width E for the xLSTM, Mamba and Transformer families)."""
    num_layers: int = 1
    """Stacked layers (rnn, gru, lstm, transformer) or blocks (slstm, mlstm, xlstm-large, mamba, mamba2); xlstm uses
    `blocks`."""
    blocks: str = "msm"
    """xlstm only: one letter per block, m = mLSTM, s = sLSTM."""
    num_heads: int = 4
    """Heads of the xLSTM family's cells, of Mamba-2 (head dim = 2·H / num_heads) and of the Transformer's attention
    (head dim H / num_heads); Mamba has none."""
    state_size: int = 16
    """mamba, mamba2: N, the state per channel (Mamba) or per head dimension (Mamba-2)."""
    forget_bias: float = 1.0
    """lstm only: initial forget-gate bias (keeps gradients alive over long lags)."""
    dropout: float = 0.0
    """Dropout on the body's inputs and outputs (the embedded tokens, and the features the head reads), in training
    only; 0 = none."""

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}, expected one of {', '.join(MODEL_NAMES)}")
        for field in ("hidden_size", "num_layers", "num_heads", "state_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} is {value!r}, expected a positive integer")
        if not isinstance(self.blocks, str) or not self.blocks or set(self.blocks) - set("ms"):
            raise ValueError(f"blocks is {self.blocks!r}, expected letters m (mLSTM) and s (sLSTM), e.g. msm")
        bias = self.forget_bias
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
            raise ValueError(f"forget_bias is {bias!r}, expected a finite number")
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"dropout is {p!r}, expected a number in [0, 1)")
        if self.name == "mamba2" and (2 * self.hidden_size) % self.num_heads:
            raise ValueError(
                f"num_heads {self.num_heads} does not divide mamba2's inner width {2 * self.hidden_size} "
                "(2 · hidden_size)"
            )
        if self.name == "transformer" and self.hidden_size % self.num_heads:
            raise ValueError(
                f"num_heads {self.num_heads} does not divide the transformer's hidden_size {self.hidden_size}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class SequenceModel(nn.Module):
    def __init__(self, config: ModelConfig, spec: TaskSpec) -> None:
        super().__init__()
        self.config, self.spec = config, spec
        H, L = config.hidden_size, config.num_layers
        self.encoder = nn.Embedding(spec.vocab_size, H) if spec.vocab_size else nn.Linear(spec.input_size, H)
        if config.name in ("rnn", "gru", "lstm"):
            kinds = {"rnn": RNN, "gru": GRU}
            extra = {"forget_bias": config.forget_bias} if config.name == "lstm" else {}
            self.body = kinds.get(config.name, LSTM)(H, H, num_layers=L, batch_first=True, **extra)
        elif config.name == "xlstm-large":
            self.body = LargeStack(
                xLSTMLargeConfig(vocab_size=1, embedding_dim=H, num_heads=config.num_heads, num_blocks=L)
            )
        elif config.name in ("mamba", "mamba2"):
            self.body = MambaStack(state_space_config(config))
        elif config.name == "transformer":
            self.body = CausalTransformer(H, L, config.num_heads)
        else:
            blocks = {"slstm": "s" * L, "mlstm": "m" * L}.get(config.name, config.blocks)
            stack = xLSTMConfig(
                vocab_size=1, embedding_dim=H, blocks=blocks, mlstm_heads=config.num_heads, slstm_heads=config.num_heads
            )
            self.body = xLSTMStack(stack)
        if isinstance(self.body, (xLSTMStack, LargeStack)):
            self.body.reset_parameters()  # each block for its place in the stack (forget-bias schedule, depth)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(H, spec.num_outputs)

    def features(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T) or (B, T, I) -> (B, T, H), the body's output at every position (dropout on its input and output)."""
        h = self.dropout(self.encoder(x))
        if not isinstance(self.body, nn.RNNBase):
            return self.dropout(self.body(h, lengths=lengths)[0])
        if lengths is None:
            return self.dropout(self.body(h)[0])
        packed = pack_padded_sequence(h, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        return self.dropout(pad_packed_sequence(self.body(packed)[0], batch_first=True, total_length=h.shape[1])[0])

    def stream(self, x: Tensor, state: BodyState | None = None) -> tuple[Tensor, BodyState]:
        """x (B, T) or (B, T, I) without padding, state -> (output (B, T, O), state): "tag" tasks only.

        Running a sequence in pieces with the state carried gives the same outputs as one `forward` over
        the whole of it. `state` is whatever the body carries (None: a fresh start):
            rnn, gru                           h (L, B, H)
            lstm                               (h, c), each (L, B, H)
            slstm, mlstm, xlstm, xlstm-large,  LMState, one state per block, bottom to top
            mamba, mamba2
            transformer                        TransformerState: each layer's attention inputs so far, and the count
        """
        if self.spec.kind != "tag":
            raise ValueError(f'stream needs a "tag" task (one output per position), got kind {self.spec.kind!r}')
        h, state = self.body(self.dropout(self.encoder(x)), state)  # (B, T, H)
        return self.head(self.dropout(h)), state

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h = self.features(x, lengths)
        if self.spec.kind == "tag":
            return self.head(h)
        B, T, _ = h.shape
        last = torch.full((B,), T - 1, device=h.device) if lengths is None else (lengths.to(h.device) - 1).clamp(min=0)
        return self.head(h[torch.arange(B, device=h.device), last])


def state_space_config(config: ModelConfig) -> MambaConfig | Mamba2Config:
    """The MambaStack's configuration for a "mamba" or "mamba2" ModelConfig (vocab_size unused: 1)."""
    H, L, N = config.hidden_size, config.num_layers, config.state_size
    if config.name == "mamba":
        return MambaConfig(vocab_size=1, embedding_dim=H, num_layers=L, state_size=N)
    return Mamba2Config(vocab_size=1, embedding_dim=H, num_layers=L, state_size=N, head_dim=2 * H // config.num_heads)


build_model = SequenceModel
"""The same class under the name earlier releases used; new code calls `SequenceModel(config, spec)`."""


# ---- sizes, estimated before anything is allocated ---------------------------------------------------------------

ACTIVATIONS_PER_UNIT = {"rnn": 4, "gru": 12, "lstm": 12, "slstm": 24, "mlstm": 24, "xlstm": 24, "xlstm-large": 24}
ACTIVATIONS_PER_UNIT |= {"mamba": 24, "mamba2": 24}  # mamba's torch scan adds 2·N more: its (B, T, 2H, N) states
ACTIVATIONS_PER_UNIT |= {"transformer": 16}  # plus the attention weights, B · heads · T² per layer (check_fits)
"""Floats one layer keeps for backward per sequence position and unit of H (gates, cell, hidden, their
nonlinearities), roughly: the estimate is meant to refuse sizes that cannot fit, not to predict memory use."""
TRAINING_BYTES_PER_PARAMETER = 16
"""float32 weights, gradients and AdamW's two moments."""


def parameter_count(config: ModelConfig, spec: TaskSpec) -> int:
    """The model's parameter count without allocating it: built on torch's meta device with one and two layers
    (or blocks "m", "mm", "s") and extrapolated, which is exact since every layer past the first is the same."""

    def count(**change) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in SequenceModel(replace(config, **change), spec).parameters())

    if config.name == "xlstm":
        one_m, two_m, one_s = count(blocks="m"), count(blocks="mm"), count(blocks="s")
        per_m = two_m - one_m
        base = one_m - per_m
        return base + config.blocks.count("m") * per_m + config.blocks.count("s") * (one_s - base)
    one, two = count(num_layers=1), count(num_layers=2)
    return one + (config.num_layers - 1) * (two - one)


def memory_bytes(device: str = "cpu") -> int:
    """The memory a model and its batches must fit in: the GPU's, or this machine's physical memory."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(
    config: ModelConfig, spec: TaskSpec, batch_size: int, length: int, training: bool = True, device: str = "cpu"
) -> None:
    """ValueError naming the options at fault when the model, or one batch of `batch_size` rows of `length` steps,
    cannot fit in memory (estimates: `parameter_count`, ACTIVATIONS_PER_UNIT); checked before anything is built."""
    available = memory_bytes(device)
    sizes = f"hidden_size {config.hidden_size}, " + (
        f"blocks {config.blocks!r}" if config.name == "xlstm" else f"num_layers {config.num_layers}"
    )
    parameters = parameter_count(config, spec)
    weights = parameters * (TRAINING_BYTES_PER_PARAMETER if training else 4)
    if weights > available:
        what = "to train (weights, gradients, AdamW's moments)" if training else "for the weights"
        raise ValueError(
            f"{sizes} make a {config.name} of {parameters:,} parameters: about {_size(weights)} "
            f"{what}, more than the {_size(available)} of memory here; choose smaller sizes"
        )
    layers = len(config.blocks) if config.name == "xlstm" else config.num_layers
    per_unit = ACTIVATIONS_PER_UNIT[config.name] + (2 * config.state_size if config.name == "mamba" else 0)
    per_unit = per_unit if training else 2
    activations = batch_size * length * (config.hidden_size * layers * per_unit * 4 + 8 * (spec.input_size or 1))
    if config.name == "transformer":
        activations += batch_size * config.num_heads * length**2 * layers * 4 * (2 if training else 1)
    if weights + activations > available:
        raise ValueError(
            f"batch_size {batch_size} with sequences of {length:,} steps and {sizes} needs about "
            f"{_size(activations)} for one batch, more than the {_size(available - weights)} of memory "
            "left beside the model; choose a smaller batch_size"
        )


def _size(count: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,} bytes"
