"""lstmkit: LSTM and xLSTM in Python, from the hand-worked example to trained models.

Start at `lstmkit.reference.lstm.step`: the LSTM step, written as the equations read.
"""

__version__ = "0.1.0"
