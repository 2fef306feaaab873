"""PyTorch layers. Drop-in `torch.nn.LSTM/GRU/RNN` (and cells) whose `trace()` shows every gate.

from lstmkit.nn import LSTM
lstm = LSTM(128, 256, num_layers=2, batch_first=True, forget_bias=1.0)
y, (h, c) = lstm(x)                       # PyTorch's fused kernel
y, (h, c), trace = lstm.trace(x)          # the readable loop; trace.f is (2, T, B, 256)
"""

from lstmkit.nn.gru import GRU, GRUCell
from lstmkit.nn.lstm import LSTM, LSTMCell
from lstmkit.nn.rnn import RNN, RNNCell
from lstmkit.nn.steps import GRUTrace, LSTMTrace, RNNTrace

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "GRUTrace", "LSTMCell", "LSTMTrace", "RNNCell", "RNNTrace"]
