"""What torch's own tools need from a subclass of a torch.nn layer (lstmkit.nn's LSTM, GRU, RNN and their cells).

torch_twin(module)          the same layer as its torch.nn class, sharing every parameter: what
                            torch.jit.script compiles and dynamic quantization converts
fx_aware(module, ...)       forward, or one call_module node while torch.fx traces (as for torch.nn's)
quantize_dynamic(model)     torch.ao.quantization.quantize_dynamic, seeing lstmkit's layers too
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch


def torch_class(cls: type) -> type:
    """The torch.nn class an lstmkit class extends: torch.nn.LSTM for lstmkit.nn.LSTM (Module for others)."""
    return next(c for c in cls.__mro__ if c.__module__.startswith("torch.nn.modules."))


def torch_twin(module):
    """`module` as an instance of its torch.nn class: a shallow copy, so the very same parameters, flags and
    hooks, but torch's own type. TorchScript compiles torch.nn.LSTM's forward only for that exact class (its
    overloads are looked up by class name and source lines); dynamic quantization converts only that type."""
    if torch.nn.utils.parametrize.is_parametrized(module):
        raise ValueError(
            f"{type(module).__name__}: torch.jit.script and quantization take this layer as its torch.nn class, "
            "which a parametrized module cannot be; remove the parametrizations first "
            "(torch.nn.utils.parametrize.remove_parametrizations)"
        )
    twin = copy.copy(module)
    twin.__class__ = torch_class(type(module))
    return twin


def fx_aware(module, forward: Callable, input, hx):
    """forward(input[, hx]); while torch.fx traces, one call_module node instead, as torch.fx records
    torch.nn's own layers (its Tracer keeps modules defined under torch.nn whole and traces into every
    other forward, where torch.nn.LSTM's checks of the input's shape cannot run on a Proxy)."""
    args = (input,) if hx is None else (input, hx)
    for value in (input, *(hx if isinstance(hx, tuple) else (hx,))):
        if isinstance(value, torch.fx.Proxy) and value.tracer.root is not module:  # a root is traced into
            tracer = value.tracer
            return tracer.create_proxy("call_module", tracer.path_of_module(module), args, {})
    return forward(*args)


def quantize_dynamic(model, qconfig_spec=None, dtype=torch.qint8, mapping=None, inplace=False):
    """`torch.ao.quantization.quantize_dynamic` (same arguments), quantizing lstmkit's layers as torch.nn's.

    Torch's picks modules by exact type, so it silently leaves subclasses of torch.nn.LSTM float. Here each
    lstmkit class found in `model` joins its torch.nn class in `qconfig_spec` (None: torch's default set,
    Linear and the five RNN layers, for qint8 and float16) and in `mapping` (None: torch's default dynamic
    mapping), and is converted through its `torch_twin`: the result equals torch's for torch.nn layers."""
    from torch.ao import quantization  # deprecated by torch, so loaded only when asked for

    mapping = dict(quantization.get_default_dynamic_quant_module_mappings() if mapping is None else mapping)
    found = {torch.nn.utils.parametrize.type_before_parametrizations(m) for m in model.modules()}
    ours = {cls for cls in found if cls.__module__.startswith("lstmkit.") and torch_class(cls) in mapping}
    for cls in ours:
        mapping.setdefault(cls, FromTwin(mapping[torch_class(cls)]))
    if qconfig_spec is None and dtype in (torch.qint8, torch.float16):
        nn = torch.nn
        qconfig_spec = {nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.RNNCell, nn.GRUCell}  # torch's default
    if isinstance(qconfig_spec, set):
        qconfig_spec = qconfig_spec | {cls for cls in ours if torch_class(cls) in qconfig_spec}
    elif isinstance(qconfig_spec, dict):
        added = {cls: qconfig_spec[torch_class(cls)] for cls in ours if torch_class(cls) in qconfig_spec}
        qconfig_spec = {**added, **qconfig_spec}  # the caller's own entries win
    return quantization.quantize_dynamic(model, qconfig_spec, dtype, mapping, inplace)


class FromTwin:
    """A quantized class's `from_float` for an lstmkit layer: it converts the layer's torch.nn twin."""

    def __init__(self, quantized: type) -> None:
        self.quantized = quantized

    def from_float(self, module):
        return self.quantized.from_float(torch_twin(module))
