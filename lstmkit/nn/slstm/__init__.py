"""sLSTM in PyTorch (xLSTM paper section 2.2): the cell as written, and the fast loops tested equal to it.

cell.py         sLSTMState, slstm_step, slstm_loop: the equations, step by step (autograd records them)
fast.py         slstm, sLSTMCell: checked once, then the C++ loops or the Python loop
python_loop.py  the fast loop in Python, with its own backward
cpp_loop.py     the same loops in C++ (csrc/slstm.cpp), compiled on first use
layout.py       gate-major and head-major views shared by both loops
"""

from lstmkit.nn.slstm.cell import check_values, slstm_loop, slstm_step, sLSTMState, zero_state
from lstmkit.nn.slstm.fast import slstm, sLSTMCell

__all__ = ["check_values", "sLSTMCell", "sLSTMState", "slstm", "slstm_loop", "slstm_step", "zero_state"]
