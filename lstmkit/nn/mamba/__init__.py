"""Mamba in PyTorch (issue 18, in progress): the selective scan's forms, one signature.

y, state = selective_scan_recurrent(x, delta, A, B, C, D=None, z=None, state=None, *, reset=None, valid=None)
y, state = selective_scan_step(x_t, delta_t, A, B_t, C_t, D, z_t, state, *, reset=None, valid=None)

x, Δ, z (B, T, D); A (D, N); B, C (B, T, N); the state `MambaState(h)` (B, D, N). The recurrent form is the
definition; the parallel forms, the layers and the models come next.
"""

from lstmkit.nn.mamba.recurrent import MambaState, selective_scan_recurrent, selective_scan_step

__all__ = ["MambaState", "selective_scan_recurrent", "selective_scan_step"]
