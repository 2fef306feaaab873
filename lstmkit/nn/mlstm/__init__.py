"""mLSTM in three forms with one signature and one result (see each module's docstring):

h, state = mlstm_recurrent(q, k, v, i, f, state=None, eps=1e-6)   the definition, O(T)
h, state = mlstm_parallel(q, k, v, i, f, state=None, eps=1e-6)    O(T²), all steps at once
h, state = mlstm_chunkwise(q, k, v, i, f, state=None, eps=1e-6, chunk_size=64)   O(T·L)
"""

from lstmkit.nn.mlstm.chunkwise import mlstm_chunkwise
from lstmkit.nn.mlstm.parallel import mlstm_parallel
from lstmkit.nn.mlstm.recurrent import mlstm_recurrent, mlstm_step
from lstmkit.nn.mlstm.state import mLSTMState

__all__ = ["mLSTMState", "mlstm_chunkwise", "mlstm_parallel", "mlstm_recurrent", "mlstm_step"]
