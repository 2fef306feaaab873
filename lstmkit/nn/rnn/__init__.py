"""The classic recurrent layers: drop-in `torch.nn.LSTM`, `GRU`, `RNN` (and cells) whose `trace()` shows every gate.

lstm.py gru.py rnn.py   the layers and cells: forward is PyTorch's own kernel, trace() the readable path
cells.py                one step of each cell, batched: the readable path's arithmetic; Cell(project, step, State)
time_loop.py            the readable path's loop over time, one layer and one direction, any cell
trace_layers.py         the readable path around it: inputs as torch takes them, layers, directions
trace_cell.py           the readable path of the single-step cells (LSTMCell, GRUCell, RNNCell)
lstm_trace_fast.py      the LSTM's fast trace: h from the fused kernel, the gates recomputed at once
cell_scan.py            the cell-state recurrence over a whole sequence, for the fast trace
dropin.py               what torch's own tools (TorchScript, FX, quantization) need from a subclass
"""

from lstmkit.nn.rnn.cells import Cell, GRUTrace, HiddenState, LSTMState, LSTMTrace, RNNTrace
from lstmkit.nn.rnn.gru import GRU, GRUCell
from lstmkit.nn.rnn.lstm import LSTM, LSTMCell
from lstmkit.nn.rnn.rnn import RNN, RNNCell

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "Cell",
    "GRUCell",
    "GRUTrace",
    "HiddenState",
    "LSTMCell",
    "LSTMState",
    "LSTMTrace",
    "RNNCell",
    "RNNTrace",
]
