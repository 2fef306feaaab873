"""PyTorch layers. Drop-in `torch.nn.LSTM/GRU/RNN` (and cells) whose `trace()` shows every gate.

from lstmkit.nn import LSTM
lstm = LSTM(128, 256, num_layers=2, batch_first=True, forget_bias=1.0)
y, (h, c) = lstm(x)                       # PyTorch's fused kernel
y, (h, c), trace = lstm.trace(x)          # every gate of every step; trace.f is (2, T, B, 256)
quantized = quantize_dynamic(model)       # torch.ao.quantization.quantize_dynamic, seeing lstmkit's layers

xLSTM: `mLSTMLayer`, `sLSTMLayer` and their residual blocks; `xLSTMLM` (blocks from a string such as
"msm") and `xLSTMLarge` (the 7B model's layout); Mamba: `MambaLM` and `Mamba2LM`; all streaming:
forward(tokens, state) -> (logits, state).

rnn/     LSTM, GRU, RNN and their cells (torch.nn's kernels, a readable trace, a fast LSTM trace)
slstm/   the sLSTM recurrence: the cell as written, its Python and C++ loops
mlstm/   the mLSTM recurrence: state, recurrent, parallel and chunkwise forms
xlstm/   the xLSTM layers, blocks, configuration and language models
mamba/   Mamba and Mamba-2: the selective scan's and SSD's forms, the mixers, configuration and language models
parts/   what the layers share: causal convolution, head-wise maps, norms, initialisations
compat/  checkpoints of the xLSTM authors' models and of Hugging Face's, imported and exported
masks.py finite.py state_check.py   the checks every streaming layer shares (masks, values, states)
lm_inputs.py generate.py            what the language models accept; sampling from them
"""

from lstmkit.nn.generate import generate, stream_tokens
from lstmkit.nn.lm_inputs import LMState
from lstmkit.nn.mamba.config import Mamba2Config, MambaConfig
from lstmkit.nn.mamba.lm import Mamba2LM, MambaLM, MambaStack
from lstmkit.nn.rnn.cells import GRUTrace, LSTMTrace, RNNTrace
from lstmkit.nn.rnn.dropin import quantize_dynamic
from lstmkit.nn.rnn.gru import GRU, GRUCell
from lstmkit.nn.rnn.lstm import LSTM, LSTMCell
from lstmkit.nn.rnn.rnn import RNN, RNNCell
from lstmkit.nn.transformer import CausalTransformer, TransformerState
from lstmkit.nn.xlstm.blocks import FeedForward, mLSTMBlock, sLSTMBlock
from lstmkit.nn.xlstm.config import xLSTMConfig
from lstmkit.nn.xlstm.large import xLSTMLarge, xLSTMLargeConfig
from lstmkit.nn.xlstm.lm import xLSTMLM, xLSTMStack
from lstmkit.nn.xlstm.mlstm_layer import mLSTMLayer, mLSTMLayerState
from lstmkit.nn.xlstm.slstm_layer import sLSTMLayer, sLSTMLayerState

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "CausalTransformer",
    "FeedForward",
    "GRUCell",
    "GRUTrace",
    "LMState",
    "LSTMCell",
    "LSTMTrace",
    "Mamba2Config",
    "Mamba2LM",
    "MambaConfig",
    "MambaLM",
    "MambaStack",
    "RNNCell",
    "RNNTrace",
    "TransformerState",
    "generate",
    "mLSTMBlock",
    "mLSTMLayer",
    "mLSTMLayerState",
    "quantize_dynamic",
    "sLSTMBlock",
    "sLSTMLayer",
    "sLSTMLayerState",
    "stream_tokens",
    "xLSTMConfig",
    "xLSTMLM",
    "xLSTMLarge",
    "xLSTMLargeConfig",
    "xLSTMStack",
]
