"""The small parts of the xLSTM blocks, each against the obvious implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmkit.nn import mLSTMLayer, sLSTMLayer
from lstmkit.nn.parts.causal_conv import CausalConv1d
from lstmkit.nn.parts.headwise_linear import HeadwiseLinear
from lstmkit.nn.parts.norms import HeadNorm, LayerNorm, RMSNorm
from tests.helpers import assert_close

F64 = torch.float64


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("K", [1, 2, 4])
def test_causal_conv_paths_agree_with_the_definition(K, bias):
    torch.manual_seed(0)
    conv = CausalConv1d(6, K, bias=bias, dtype=F64)
    x = torch.randn(3, 11, 6, dtype=F64)
    state = torch.randn(3, K - 1, 6, dtype=F64)
    x.requires_grad_(True)
    xp = torch.cat([state, x], 1)
    expected = sum(conv.weight[:, j] * xp[:, j : j + 11] for j in range(K))  # y_t = b + Σ_j w_j x_{t-K+1+j}
    expected = expected + conv.bias if bias else expected
    peer = F.conv1d(xp.transpose(1, 2), conv.weight[:, None, :], conv.bias, groups=6).transpose(1, 2)
    assert_close(peer, expected, atol=1e-12)  # torch.nn's depthwise convolution: the same definition
    y_whole, s1 = conv(x, state)
    y_taps, s2 = conv(x, state, reset=torch.zeros(3, 11, dtype=torch.bool))
    steps, s3 = [], state
    for t in range(11):
        y, s3 = conv(x[:, t : t + 1], s3)
        steps.append(y)
    for y in (y_whole, y_taps, torch.cat(steps, 1)):
        assert_close(y, expected, atol=1e-12)
    g = torch.randn_like(x)
    grads = [torch.autograd.grad((y * g).sum(), (conv.weight, x)) for y in (peer, conv(x, state)[0])]
    for ours, torchs in zip(grads[1], grads[0], strict=True):
        assert_close(ours, torchs, atol=1e-12)
    for s in (s1, s2, s3):
        assert_close(s, xp[:, 11:], atol=1e-12)


def test_causal_conv_reset_hides_the_previous_document():
    torch.manual_seed(1)
    conv = CausalConv1d(4, 3, dtype=F64)
    x = torch.randn(1, 8, 4, dtype=F64)
    reset = torch.zeros(1, 8, dtype=torch.bool)
    reset[0, 5] = True
    y, state = conv(x, torch.randn(1, 2, 4, dtype=F64), reset=reset)
    alone, alone_state = conv(x[:, 5:])
    assert_close(y[:, 5:], alone, atol=1e-12)
    assert_close(state, alone_state, atol=1e-12)
    at_last = torch.zeros(1, 8, dtype=torch.bool)
    at_last[0, 7] = True  # the last token starts a document: the carried window holds only it
    y_last, state_last = conv(x, reset=at_last)
    assert_close(state_last, torch.cat([torch.zeros(1, 1, 4, dtype=F64), x[:, 7:]], 1), atol=1e-12)
    assert y_last.shape == (1, 8, 4)


def test_norms_match_their_definitions():
    torch.manual_seed(2)
    x = torch.randn(2, 5, 12, dtype=F64)
    weight, bias = torch.randn(12, dtype=F64), torch.randn(12, dtype=F64)
    head = HeadNorm(12, 3, bias=True, dtype=F64)
    layer = LayerNorm(12, dtype=F64)
    rms = RMSNorm(12, eps=1e-6, dtype=F64)
    with torch.no_grad():
        head.weight.copy_(weight), head.bias.copy_(bias), layer.weight.copy_(weight), rms.weight.copy_(weight)
    per_head = torch.cat([F.layer_norm(part, (4,), eps=1e-5) for part in x.split(4, -1)], -1) * weight + bias
    assert_close(head(x), per_head, atol=1e-12)
    assert_close(layer(x), F.layer_norm(x, (12,), weight, None, 1e-5), atol=1e-12)
    assert_close(rms(x), x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight, atol=1e-12)


def test_headwise_linear_is_a_block_diagonal_matrix():
    torch.manual_seed(3)
    linear = HeadwiseLinear(12, 6, 3, bias=True, dtype=F64)
    dense = torch.block_diag(*linear.weight)  # (6, 12)
    x = torch.randn(4, 2, 12, dtype=F64)
    assert_close(linear(x), x @ dense.T + linear.bias, atol=1e-12)
    with pytest.raises(ValueError, match="not both divisible by num_heads 5"):
        HeadwiseLinear(12, 6, 5)


@pytest.mark.parametrize(
    "make",
    [lambda: mLSTMLayer(16, 32, num_heads=2, chunk_size=4, dtype=F64), lambda: sLSTMLayer(16, num_heads=2, dtype=F64)],
)
def test_layers_stream(make):
    torch.manual_seed(4)
    layer = make()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(2, 13, 16, dtype=F64)
    whole, final = layer(x)
    a, state = layer(x[:, :6])
    b, state = layer(x[:, 6:7], state)
    c, state = layer(x[:, 7:], state)
    assert_close(torch.cat([a, b, c], 1), whole, atol=1e-10)
    for s, f in zip(state, final, strict=True):
        for u, v in zip(s if isinstance(s, tuple) else (s,), f if isinstance(f, tuple) else (f,), strict=True):
            assert_close(u.nan_to_num(neginf=0.0), v.nan_to_num(neginf=0.0), atol=1e-10)
    with pytest.raises(ValueError, match="state is a tuple"):
        layer(x, tuple(final))


def test_generation_memory_does_not_grow():
    from lstmkit.nn import xLSTMConfig, xLSTMLM

    model = xLSTMLM(xLSTMConfig(vocab_size=11, embedding_dim=16, blocks="ms", mlstm_heads=2, slstm_heads=2))
    _, short = model(torch.randint(0, 11, (1, 3)))
    _, long = model(torch.randint(0, 11, (1, 300)))

    def size(state) -> int:
        return sum(
            t.numel()
            for block in state.blocks
            for part in block
            for t in (part if isinstance(part, tuple) else (part,))
            if t is not None
        )

    assert size(short) == size(long) > 0
