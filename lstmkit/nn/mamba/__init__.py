"""Mamba and Mamba-2 in PyTorch (Gu & Dao 2023; Dao & Gu 2024): scans, mixers, language models.

y, state = selective_scan(x, delta, A, B, C, D, z, state, reset=None, valid=None, form="auto")   (scan.py)
y, state = ssd_scan(x, delta, A, B, C, D, z, state, reset=None, valid=None, form="auto")

Mamba's selective scan: x, Δ, z (B, T, D); A (D, N); B, C (B, T, N); state `MambaState(h)` (B, D, N).
    recurrent.py   the definition, one step at a time (and the step, for generation)
    parallel.py    an associative scan in torch with its own backward
    cpp_scan.py    a fused C++ loop, forward and backward (CPU)
Mamba-2's SSD: x, z (B, T, H, P); Δ (B, T, H); A (H,); B, C (B, T, G, N); state `SSDState(h)` (B, H, P, N).
    ssd_recurrent.py, ssd_chunkwise.py
The models: config.py (MambaConfig, Mamba2Config), mixer.py, mamba2_mixer.py, lm.py (MambaLM, Mamba2LM).
"""

from lstmkit.nn.mamba.config import Mamba2Config, MambaConfig
from lstmkit.nn.mamba.lm import Mamba2LM, MambaBlock, MambaLM, MambaStack
from lstmkit.nn.mamba.parallel import selective_scan_parallel
from lstmkit.nn.mamba.recurrent import MambaState, selective_scan_recurrent, selective_scan_step
from lstmkit.nn.mamba.scan import selective_scan, ssd_scan
from lstmkit.nn.mamba.ssd_chunkwise import ssd_chunkwise
from lstmkit.nn.mamba.ssd_recurrent import SSDState, ssd_recurrent, ssd_step

__all__ = [
    "Mamba2Config",
    "Mamba2LM",
    "MambaBlock",
    "MambaConfig",
    "MambaLM",
    "MambaStack",
    "MambaState",
    "SSDState",
    "selective_scan",
    "selective_scan_parallel",
    "selective_scan_recurrent",
    "selective_scan_step",
    "ssd_chunkwise",
    "ssd_recurrent",
    "ssd_scan",
    "ssd_step",
]
