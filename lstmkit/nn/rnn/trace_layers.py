"""The readable path of a multi-layer, maybe bidirectional recurrent layer, around `time_loop.run_direction`.

`prepare` turns any input torch accepts (batched or not, batch_first or not, PackedSequence) into one
layout, time-major (T, B, I) in the caller's batch order, with a (T, B) mask for mixed lengths; it
checks the input with the same messages as `torch.nn`. `run_stack` runs one `cells.Cell` per layer and
direction (the layer builds them: `lstm.lstm_cell`, ...); `finish` stacks the states and traces and, with
`caller_layout`, puts everything back in the caller's layout. `forward_pre_hooks` runs what `module(...)`
runs before forward, so that `trace()` sees the weights forward sees (weight_norm and spectral_norm
recompute them in a pre-hook).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit.nn.rnn.cells import Cell
from lstmkit.nn.rnn.time_loop import run_direction


class Prepared(NamedTuple):
    x: Tensor
    """(T, B, I), time-major, the caller's batch order."""
    hx: tuple[Tensor, ...]
    """Initial states, each (L·D, B, ·)."""
    mask: Tensor | None
    """(T, B) bool, True while a sequence runs; None when every sequence has length T."""
    packed: PackedSequence | None
    """The caller's packed input, to pack the output the same way."""
    batched: bool


def prepare(module, input, hx: tuple[Tensor, ...] | None, widths: tuple[int, ...], check: Callable) -> Prepared:
    """Validate like torch.nn and bring the input to (T, B, I). `widths` are the state sizes for zeros."""
    name = type(module).__name__
    D = 2 if module.bidirectional else 1
    if isinstance(input, PackedSequence):
        checked_as = (input.data, input.batch_sizes)  # what torch.nn checks, in its own layout
        x, lengths = pad_packed_sequence(input)  # (T, B, I) in the caller's order
        mask = torch.arange(x.shape[0])[:, None] < lengths[None, :]
        batched, packed = True, input
    else:
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batched, packed, mask = input.dim() == 3, None, None
        if not batched:
            input = input.unsqueeze(0 if module.batch_first else 1)
        if hx is not None:
            want = 3 if batched else 2
            if any(h.dim() != want for h in hx):
                got = ", ".join(f"{h.dim()}-D" for h in hx)
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(f"For {kind} input, hx should also be {want}-D but got ({got}) tensors")
            if not batched:
                hx = tuple(h.unsqueeze(1) for h in hx)
        checked_as = (input, None)
        x = input.transpose(0, 1) if module.batch_first else input
    if hx is None:
        shape = (module.num_layers * D, x.shape[1])
        hx = tuple(torch.zeros(*shape, w, dtype=x.dtype, device=x.device) for w in widths)
    check(checked_as[0], hx, checked_as[1])
    if x.shape[0] == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")  # torch.nn's forward's words
    check_state_dtypes(module, hx, x.dtype)
    return Prepared(x, hx, mask, packed, batched)


def check_state_dtypes(module, hx: tuple[Tensor, ...], dtype: torch.dtype) -> None:
    """Every initial state in the input's (and so the weights') dtype; torch.nn's forward fails deeper in its
    kernel (an LSTM on CPU: "get_mkldnn_dtype: unsupported data type"), so say here what is wrong."""
    for k, h in enumerate(hx):
        if h.dtype != dtype:
            raise ValueError(
                f"{type(module).__name__}.trace: hx[{k}] dtype ({h.dtype}) does not match the input and weight "
                f"dtype ({dtype}). Convert the state: h.to({dtype}), or the model: model.to({h.dtype})"
            )


def forward_pre_hooks(module, input, hx):
    """(input, hx) after the module's forward pre-hooks, run as `module(input, hx)` runs them before forward.

    `torch.nn.utils.weight_norm` and `spectral_norm` recompute the weight in such a hook, so without it
    `trace()` would read the weights of the last forward. Hooks registered with `with_kwargs=True` get no
    keyword arguments. Forward hooks (after forward) are not run: they expect forward's output, not a trace."""
    args = (input,) if hx is None else (input, hx)
    for hook_id, hook in list(module._forward_pre_hooks.items()):
        if hook_id in module._forward_pre_hooks_with_kwargs:
            result = hook(module, args, {})
            if result is not None:
                args = result[0]
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    return args[0], (args[1] if len(args) > 1 else None)


def param_suffixes(module) -> list[str]:
    """Parameter-name suffixes in h_n's order: _l0, _l0_reverse, _l1, ... (index layer·D + direction)."""
    D = 2 if module.bidirectional else 1
    return [
        f"_l{layer}" + ("_reverse" if direction else "") for layer in range(module.num_layers) for direction in range(D)
    ]


def layer_params(module, suffix: str) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(W_ih, W_hh, b_ih, b_hh) of one layer and direction; the biases are None with bias=False."""
    W_ih, W_hh = getattr(module, f"weight_ih{suffix}"), getattr(module, f"weight_hh{suffix}")
    return W_ih, W_hh, getattr(module, f"bias_ih{suffix}", None), getattr(module, f"bias_hh{suffix}", None)


def trace_hidden_state_layer(module, input, hx: Tensor | None, make_cell: Callable[..., Cell]):
    """`trace()` of a layer whose whole state is h (GRU, RNN): (output, h_n, trace).
    `make_cell(module, suffix)` builds one layer and direction's Cell (`gru.gru_cell`, `rnn.rnn_cell`)."""
    module._update_flat_weights()

    def check(x, hx_tuple, batch_sizes):
        module.check_forward_args(x, hx_tuple[0], batch_sizes)

    prep = prepare(module, input, None if hx is None else (hx,), (module.hidden_size,), check)
    cells = [make_cell(module, suffix) for suffix in param_suffixes(module)]
    output, finals, traces = run_stack(module, prep, cells)
    output, (h_n,), trace = finish(module, prep, output, finals, traces)
    return output, h_n, trace


def run_stack(module, prep: Prepared, cells: list[Cell]) -> tuple[Tensor, list, list]:
    """All layers and directions, `cells[layer·D + direction]` each; returns (top output (T, B, D··),
    final states, traces), both lists indexed layer·D + direction as in h_n."""
    D = 2 if module.bidirectional else 1
    layer_input, finals, traces = prep.x, [], []
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(D):
            k = layer * D + direction
            cell = cells[k]
            xp = cell.project(layer_input)  # (T, B, G), all steps at once
            state0 = cell.State(*(h[k] for h in prep.hx))
            final, trace = run_direction(cell.step, xp, state0, prep.mask, reverse=direction == 1)
            outputs.append(trace.h)
            finals.append(final)
            traces.append(trace)
        layer_input = torch.cat(outputs, dim=-1) if D == 2 else outputs[0]
        if module.training and module.dropout > 0 and layer < module.num_layers - 1:
            layer_input = F.dropout(layer_input, module.dropout, training=True)
    return layer_input, finals, traces


def finish(module, prep: Prepared, output: Tensor, finals: list, traces: list):
    """Output in the caller's layout, final states stacked to (L·D, B, ·), traces to (L·D, T, B, ·)."""
    states = tuple(torch.stack(field) for field in zip(*finals, strict=True))
    Trace = type(traces[0])
    trace = Trace(*(torch.stack(field) for field in zip(*traces, strict=True)))
    return caller_layout(module, prep, output, states, trace)


def caller_layout(module, prep: Prepared, output: Tensor, states: tuple, trace: NamedTuple):
    """Output (T, B, ·), states (L·D, B, ·) and trace fields (L·D, T, B, ·) in the caller's layout."""
    Trace = type(trace)
    if prep.packed is not None:
        return _repack(output, prep.packed, prep.mask), states, trace
    if module.batch_first:
        output = output.transpose(0, 1)
    if not prep.batched:
        output = output.squeeze(0 if module.batch_first else 1)
        states = tuple(s.squeeze(1) for s in states)
        trace = Trace(*(t.squeeze(2) for t in trace))
    return output, states, trace


def _repack(output: Tensor, like: PackedSequence, mask: Tensor) -> PackedSequence:
    """Pack output (T, B, ·) exactly as `like` is packed (same batch_sizes and indices)."""
    lengths = mask.sum(0)
    order = like.sorted_indices if like.sorted_indices is not None else torch.arange(output.shape[1])
    packed = pack_padded_sequence(output.index_select(1, order.to(output.device)), lengths[order], enforce_sorted=True)
    return PackedSequence(packed.data, packed.batch_sizes, like.sorted_indices, like.unsorted_indices)
