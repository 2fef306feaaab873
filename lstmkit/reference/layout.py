"""PyTorch's stacked parameter layout, shared by the RNN (1 block), GRU (3) and LSTM (4) cells.

Each cell's parameters are a NamedTuple (W_ih, W_hh, b_ih, b_hh) with `gates` blocks of H rows:

    W_ih (gates·H, I)   W_hh (gates·H, H)   b_ih (gates·H,)   b_hh (gates·H,)

exactly as `torch.nn.RNN/GRU/LSTM` store them under `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
`bias_hh_l0` (suffix `_l1`, `_l0_reverse`, ... for other layers and directions).
"""

from __future__ import annotations

import numpy as np

from lstmkit.reference.checks import as_array


def random_stacked(cls, gates: int, input_size: int, hidden_size: int, seed: int):
    """Draw every weight and bias from U(-1/√H, 1/√H), as PyTorch's recurrent layers do."""
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(hidden_size)
    rows = gates * hidden_size
    return cls(
        W_ih=rng.uniform(-k, k, (rows, input_size)),
        W_hh=rng.uniform(-k, k, (rows, hidden_size)),
        b_ih=rng.uniform(-k, k, rows),
        b_hh=rng.uniform(-k, k, rows),
    )


def checked_stacked(p, gates: int):
    """`p` with float64, finite arrays of consistent shapes, or ValueError naming the first bad one."""
    g = "" if gates == 1 else f"{gates}·"
    if np.ndim(p.W_ih) != 2 or np.shape(p.W_ih)[0] % gates:
        raise ValueError(f"W_ih has shape {np.shape(p.W_ih)}, expected ({g}hidden_size, input_size)")
    rows, I = np.shape(p.W_ih)
    H = rows // gates
    return type(p)(
        W_ih=as_array("W_ih", p.W_ih, (rows, I), f"{g}hidden_size, input_size"),
        W_hh=as_array("W_hh", p.W_hh, (rows, H), f"{g}hidden_size, hidden_size"),
        b_ih=as_array("b_ih", p.b_ih, (rows,), f"{g}hidden_size"),
        b_hh=as_array("b_hh", p.b_hh, (rows,), f"{g}hidden_size"),
    )


def to_torch(p, suffix: str = "_l0") -> dict[str, np.ndarray]:
    """Name the parameters as a PyTorch recurrent layer's state dict does."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return {f"{name}{suffix}": array for name, array in zip(names, (p.W_ih, p.W_hh, p.b_ih, p.b_hh), strict=True)}


def from_torch(cls, gates: int, state_dict, suffix: str = "_l0"):
    """Read one layer (and direction) of a PyTorch state dict (tensors or arrays); missing biases are zero."""
    try:
        W_ih = np.asarray(state_dict[f"weight_ih{suffix}"], dtype=np.float64)
        W_hh = np.asarray(state_dict[f"weight_hh{suffix}"], dtype=np.float64)
    except KeyError as e:
        raise ValueError(f"state dict has no {e.args[0]!r}, expected keys like 'weight_ih{suffix}'") from None
    zeros = np.zeros(W_ih.shape[0])
    b_ih = np.asarray(state_dict.get(f"bias_ih{suffix}", zeros), dtype=np.float64)
    b_hh = np.asarray(state_dict.get(f"bias_hh{suffix}", zeros), dtype=np.float64)
    return checked_stacked(cls(W_ih, W_hh, b_ih, b_hh), gates)
