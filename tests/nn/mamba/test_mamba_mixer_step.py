"""The Mamba mixer's one-token C++ step (`lstmkit.nn.mamba.mixer_step`) == the mixer's Python path (float64): the
output, the convolution state and the SSM state, with and without biases, any kernel size and batch; where it
applies and where not; a failed build falls back."""

from __future__ import annotations

import re

import pytest
import torch

from lstmkit.nn.mamba import mixer_step
from lstmkit.nn.mamba.config import MambaConfig
from lstmkit.nn.mamba.mixer import MambaMixer
from tests.helpers import assert_close, peak

pytestmark = pytest.mark.skipif(mixer_step.extension() is None, reason="the C++ step could not be built here")


def mixer(dtype=torch.float64, **kw) -> MambaMixer:
    torch.manual_seed(0)
    layer = MambaMixer(MambaConfig(vocab_size=1, embedding_dim=12, state_size=5, **kw), dtype=dtype)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


def started(layer: MambaMixer, batch: int):
    """A state after a few tokens, and the next token."""
    g = torch.Generator().manual_seed(1)
    prefix = torch.randn(batch, 6, 12, generator=g, dtype=layer.A_log.dtype)
    with torch.no_grad():
        _, state = layer(prefix)
    return torch.randn(batch, 1, 12, generator=g, dtype=layer.A_log.dtype), state


@pytest.mark.parametrize("kw", [{}, {"bias": True}, {"conv_bias": False}, {"conv_kernel": 1}, {"conv_kernel": 2}])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_cpp_step_is_the_python_path(kw, batch):
    layer = mixer(**kw)
    u, state = started(layer, batch)
    expected, expected_state = layer(u, state)  # gradients wanted: the Python path
    assert expected.requires_grad
    with torch.no_grad():
        assert mixer_step.cpp_step_usable(layer, u)
        out, conv, ssm = mixer_step.mixer_step(layer, u, state)
    assert_close(out, expected.detach(), "out", atol=1e-12 * peak(expected))
    assert_close(conv, expected_state.conv.detach(), "conv state", atol=1e-12 * peak(expected_state.conv))
    assert_close(ssm.h, expected_state.ssm.h.detach(), "h", atol=1e-12 * peak(expected_state.ssm.h))


def test_float32_is_close():
    layer = mixer(torch.float32)
    u, state = started(layer, 2)
    expected, _ = layer(u, state)
    with torch.no_grad():
        out, _ = layer(u, state)  # the C++ step
    assert_close(out, expected.detach(), atol=1e-5 * peak(expected))


def test_where_it_applies():
    layer = mixer()
    u, _ = started(layer, 2)
    assert not mixer_step.cpp_step_usable(layer, u)  # gradients wanted
    with torch.no_grad():
        assert mixer_step.cpp_step_usable(layer, u)
        hook = layer.dt_proj.register_forward_hook(lambda *_: None)  # hooks must see the parts called
        assert not mixer_step.cpp_step_usable(layer, u)
        hook.remove()
        assert mixer_step.cpp_step_usable(layer, u)
        assert not mixer_step.cpp_step_usable(layer.to(torch.bfloat16), u.bfloat16())


def test_a_failed_build_warns_once_and_falls_back(monkeypatch):
    def no_compiler(*args):
        raise RuntimeError("Error building extension\nc++: error: no such compiler")

    layer = mixer()
    u, state = started(layer, 2)
    expected, _ = layer(u, state)
    monkeypatch.setattr(mixer_step, "compile_once", no_compiler)
    mixer_step.extension.cache_clear()
    try:
        with (
            torch.no_grad(),
            pytest.warns(RuntimeWarning, match=re.escape("could not build the Mamba mixer's C++ step")),
        ):
            out, _ = layer(u, state)
        assert_close(out, expected.detach(), atol=1e-12 * peak(expected))
    finally:
        mixer_step.extension.cache_clear()
