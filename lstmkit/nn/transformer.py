"""CausalTransformer: a small decoder-only Transformer body on vectors, built from torch.nn.TransformerEncoderLayer.

    h = x + PE(P + t)                                          t = 0 … T-1, P = positions seen before
    each layer (pre-norm):  a = LN_1(h)
                            h ← h + MHA(q = a_t, k = v = a_{≤t})     causal: position t sees positions ≤ t
                            h ← h + W_2 GELU(W_1 LN_2(h) + b_1) + b_2
    y = LN(h)

    PE(p, 2i) = sin(p · ω_i),  PE(p, 2i+1) = cos(p · ω_i),  ω_i = 10000^(-2i/E)     (Vaswani et al. 2017, §3.5)

    body = CausalTransformer(embedding_dim=64, num_layers=2, num_heads=4)
    y, state = body(x)                          # x (B, T, E) -> y (B, T, E)
    y, state = body(x_next, state)              # carry on: == body(cat(x, x_next))[0][:, T:]

The positional scheme is sinusoidal and absolute, added to the input: it is defined at every position, so a model
trained on short sequences can be run on longer ones (a learned table would have no entries past the training
length). It does not make the model generalise in length: Delétang et al. (2023, "Neural Networks and the Chomsky
Hierarchy") found that no positional encoding they tried lets a Transformer generalise to longer inputs, and this
baseline is expected to fail there too; that is the point of its row in the formal-language table.

Streaming: the state keeps, per layer, LN_1 of that layer's input at every position seen (B, P, E); the layer's
keys and values are its in-projections of these, recomputed at every call. A call on T new positions costs
O(T · (P + T) · E) for the attention and O((P + T) · E²) for the projections: a whole sequence of N positions is
O(N² · E), the same N positions streamed one at a time O(N² · E²) in all. Every call's outputs equal one forward over
everything seen (float64: to rounding), and the positions continue from `state.seen`.

`lengths` (right padding) is checked and needs nothing else: attention is causal, so positions ≥ lengths[b] cannot
change the outputs at valid positions. The state returned keeps all T positions, padding included (`stream` takes
no padding). With dropout > 0 in training mode the outputs are random and pieces differ from the whole.
"""

# B batch, T new positions, P positions seen before this call, E width, L layers

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from lstmkit.nn.lm_inputs import check_masks
from lstmkit.nn.state_check import check_state_tensors

BASE = 10000.0
"""The sinusoids' base (Vaswani et al.): wavelengths run from 2π to 2π · 10000."""


class TransformerState(NamedTuple):
    context: tuple[Tensor, ...]
    """One tensor per layer, bottom to top: LN_1 of that layer's input at every position seen, (B, P, E)."""
    seen: int
    """P, the positions seen so far: the next call's first position is P (its PE continues from there)."""


def sinusoidal_positions(start: int, steps: int, width: int, like: Tensor) -> Tensor:
    """PE(p) for p = start … start + steps - 1 as the module docstring writes it: (steps, width) in like's dtype and
    on its device. Computed in float64 (float32 on MPS, which has no float64), so that p · ω stays exact to rounding at
    large p; an odd width keeps the last sine."""
    work = torch.float32 if like.device.type == "mps" else torch.float64
    p = torch.arange(start, start + steps, device=like.device).to(work)  # (T,)
    two_i = torch.arange(0, width, 2, device=like.device).to(work)  # (⌈E/2⌉,)
    omega = torch.pow(torch.tensor(BASE, dtype=work, device=like.device), -two_i / width)
    angle = p[:, None] * omega[None, :]  # (T, ⌈E/2⌉)
    pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)[:, :width]  # (T, E): sin, cos, sin, …
    return pe.to(like.dtype)


def future_mask(seen: int, steps: int, device) -> Tensor:
    """(T, P + T) bool, True where key position j lies after query position P + i (torch's MHA: True = not seen)."""
    query = torch.arange(seen, seen + steps, device=device)
    key = torch.arange(seen + steps, device=device)
    return key[None, :] > query[:, None]


def run_layer(layer: nn.TransformerEncoderLayer, h: Tensor, past: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """One pre-norm layer through its own modules, as TransformerEncoderLayer.forward (norm_first=True) computes it,
    but with queries at the T new positions and keys and values at all P + T: -> (h (B, T, E), a (B, P + T, E))."""
    a = torch.cat([past, layer.norm1(h)], dim=1)  # (B, P + T, E)
    query = a[:, past.shape[1] :]  # (B, T, E)
    attended = layer.self_attn(query, a, a, attn_mask=mask, need_weights=False)[0]
    h = h + layer.dropout1(attended)
    mixed = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(h)))))
    h = h + layer.dropout2(mixed)
    return h, a


class CausalTransformer(nn.Module):
    """forward(x (B, T, E), state=None, *, lengths=None) -> (y (B, T, E), TransformerState); see the module docstring.

    embedding_dim  E, divisible by num_heads
    num_layers     L pre-norm TransformerEncoderLayers (GELU, batch_first)
    num_heads      attention heads, each of width E / num_heads
    ff_factor      the feed-forward width is ff_factor · E
    dropout        torch's dropout in attention and feed-forward (0: none)
    max_positions  None (no limit), or a limit on the positions one stream may reach (state.seen + T): a guard on
                   the state's memory and the attention's cost, not on the encoding, which is defined everywhere
    """

    def __init__(
        self,
        embedding_dim: int,
        num_layers: int,
        num_heads: int,
        ff_factor: int = 4,
        dropout: float = 0.0,
        max_positions: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        sizes = dict(embedding_dim=embedding_dim, num_layers=num_layers, num_heads=num_heads, ff_factor=ff_factor)
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} is {value!r}, expected a positive integer")
        if embedding_dim % num_heads:
            raise ValueError(f"num_heads {num_heads} does not divide embedding_dim {embedding_dim}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout is {dropout!r}, expected a number in [0, 1)")
        bad_limit = isinstance(max_positions, bool) or not isinstance(max_positions, int) or max_positions < 1
        if max_positions is not None and bad_limit:
            raise ValueError(f"max_positions is {max_positions!r}, expected None or a positive integer")
        self.embedding_dim, self.num_heads, self.max_positions = embedding_dim, num_heads, max_positions
        E = embedding_dim
        layer = dict(dim_feedforward=ff_factor * E, dropout=dropout, activation="gelu", batch_first=True)
        layer |= dict(norm_first=True, device=device, dtype=dtype)
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(E, num_heads, **layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(E, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        """torch's own initialisation, as the layers are built: attention in-projection Xavier-uniform with zero
        bias, its out-projection and both feed-forward linears nn.Linear's default (Kaiming-uniform, a = √5; bias
        U(±1/√fan_in)) except the out-projection's bias, 0; every LayerNorm weight 1, bias 0."""
        for layer in self.layers:
            attention = layer.self_attn
            nn.init.xavier_uniform_(attention.in_proj_weight)
            nn.init.zeros_(attention.in_proj_bias)
            attention.out_proj.reset_parameters()
            nn.init.zeros_(attention.out_proj.bias)
            for module in (layer.linear1, layer.linear2, layer.norm1, layer.norm2):
                module.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self, x: Tensor, state: TransformerState | None = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor, TransformerState]:
        self.check_inputs(x, state, lengths)
        B, T, E = x.shape
        P = 0 if state is None else state.seen
        if self.max_positions is not None and P + T > self.max_positions:
            raise ValueError(f"positions {P} + {T} new reach past max_positions {self.max_positions}")
        context = (x.new_zeros(B, 0, E),) * len(self.layers) if state is None else state.context
        h = x + sinusoidal_positions(P, T, E, x)  # (B, T, E)
        if B == 0 or T == 0:  # nothing to attend: torch's attention refuses empty batches
            return self.norm(h), TransformerState(tuple(context), P)
        mask = future_mask(P, T, x.device)
        seen = []
        for layer, past in zip(self.layers, context, strict=True):
            h, a = run_layer(layer, h, past, mask)
            seen.append(a)
        return self.norm(h), TransformerState(tuple(seen), P + T)

    def check_inputs(self, x: object, state: object, lengths: object) -> None:
        """x (B, T, E) a floating tensor; lengths as lm_inputs.check_masks; state a TransformerState of this model
        for this batch and dtype. One ValueError otherwise."""
        E = self.embedding_dim
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != E or not x.dtype.is_floating_point:
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else f"a {type(x).__name__}"
            raise ValueError(f"x is {got}, expected a floating tensor of shape (B, T, {E})")
        B, T, _ = x.shape
        check_masks(lengths, None, B, T)
        if state is None:
            return
        if not isinstance(state, TransformerState):
            raise ValueError(
                f"state is a {type(state).__name__}, expected the TransformerState a previous call returned"
            )
        P = state.seen
        if isinstance(P, bool) or not isinstance(P, int) or P < 0 or len(state.context) != len(self.layers):
            raise ValueError(
                f"state has seen {P!r} and {len(state.context)} layers, expected a count ≥ 0 and {len(self.layers)} "
                "layers: it comes from a model with a different configuration"
            )
        shapes = {f"context[{index}]": (B, P, E) for index in range(len(self.layers))}
        check_state_tensors("state.", state.context, shapes, like=x)
