"""lstmkit.nn layers == torch.nn layers: forward (fast path), trace (readable path), gradients, state dicts."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import lstmkit.nn as lnn
from tests.helpers import assert_close

OURS = {"lstm": lnn.LSTM, "gru": lnn.GRU, "rnn": lnn.RNN}
PEERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
F64 = torch.float64


def flat_states(state):
    return list(state) if isinstance(state, tuple) else [state]


def make_input(T, B, I, batch_first, packed, unbatched, seed):
    g = torch.Generator().manual_seed(seed)
    if unbatched:
        x = torch.randn(T, I, generator=g, dtype=F64, requires_grad=True)
        return x, x
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(*shape, generator=g, dtype=F64, requires_grad=True)
    if not packed:
        return x, x
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    return x, pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)


def run_and_grad(module, call, x, inp, hx, seed):
    out, state = call(inp, hx)[:2]
    if isinstance(out, PackedSequence):
        out = pad_packed_sequence(out, batch_first=module.batch_first)[0]
    g = torch.Generator().manual_seed(seed + 1)
    loss = (out * torch.randn(out.shape, generator=g, dtype=F64)).sum()
    for s in flat_states(state):
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=F64)).sum()
    leaves = [x, *(h for h in flat_states(hx) if h is not None)] if hx is not None else [x]
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, leaves + params)
    return out, flat_states(state), grads


def check_config(kind, *, layers, bidirectional, batch_first, proj, packed, unbatched, bias, seed, T=6, B=3, I=4, H=5):
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias, dtype=F64)
    if kind == "lstm" and proj:
        kwargs["proj_size"] = 2
    torch.manual_seed(seed)
    peer = PEERS[kind](I, H, **kwargs)
    ours = OURS[kind](I, H, **kwargs)
    ours.load_state_dict(peer.state_dict(), strict=True)
    D = 2 if bidirectional else 1
    hx = None
    if seed % 2:  # half the configurations pass an initial state
        g = torch.Generator().manual_seed(seed + 7)
        batch = () if unbatched else (B,)
        h_width = kwargs.get("proj_size", H)
        h0 = torch.randn(layers * D, *batch, h_width, generator=g, dtype=F64, requires_grad=True)
        hx = (
            (h0, torch.randn(layers * D, *batch, H, generator=g, dtype=F64, requires_grad=True))
            if kind == "lstm"
            else h0
        )

    results = {}
    for name, module, call in [("torch.nn", peer, peer), ("forward", ours, ours), ("trace", ours, ours.trace)]:
        x, inp = make_input(T, B, I, batch_first, packed, unbatched, seed)
        results[name] = run_and_grad(module, call, x, inp, hx, seed)
    ref_out, ref_states, ref_grads = results["torch.nn"]
    for name in ("forward", "trace"):
        out, states, grads = results[name]
        assert_close(out, ref_out, f"{name} output", atol=1e-10)
        for k, (s, r) in enumerate(zip(states, ref_states, strict=True)):
            assert_close(s, r, f"{name} state[{k}]", atol=1e-10)
        for k, (g, r) in enumerate(zip(grads, ref_grads, strict=True)):
            assert_close(g, r, f"{name} gradient[{k}]", atol=1e-10)


CONFIGS = [
    dict(layers=1, bidirectional=False, batch_first=False, proj=False, packed=False, unbatched=False, bias=True),
    dict(layers=2, bidirectional=True, batch_first=True, proj=False, packed=False, unbatched=False, bias=True),
    dict(layers=3, bidirectional=True, batch_first=False, proj=True, packed=True, unbatched=False, bias=True),
    dict(layers=2, bidirectional=False, batch_first=True, proj=True, packed=True, unbatched=False, bias=False),
    dict(layers=2, bidirectional=True, batch_first=False, proj=True, packed=False, unbatched=True, bias=True),
    dict(layers=1, bidirectional=True, batch_first=True, proj=False, packed=False, unbatched=True, bias=False),
]


@pytest.mark.parametrize("kind", sorted(OURS))
@pytest.mark.parametrize("config", range(len(CONFIGS)))
@pytest.mark.parametrize("seed", [0, 1])
def test_equal_to_torch_nn(kind, config, seed):
    check_config(kind, **CONFIGS[config], seed=seed)


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(sorted(OURS)),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    proj=st.booleans(),
    packed=st.booleans(),
    unbatched=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 10_000),
    T=st.integers(1, 7),
    B=st.integers(1, 4),
)
def test_random_configurations_equal_torch_nn(
    kind, layers, bidirectional, batch_first, proj, packed, unbatched, bias, seed, T, B
):
    check_config(
        kind,
        layers=layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        proj=proj,
        packed=packed and not unbatched,
        unbatched=unbatched,
        bias=bias,
        seed=seed,
        T=T,
        B=B,
    )


def test_relu_rnn():
    torch.manual_seed(0)
    peer = torch.nn.RNN(3, 4, num_layers=2, nonlinearity="relu", dtype=F64)
    ours = lnn.RNN(3, 4, num_layers=2, nonlinearity="relu", dtype=F64)
    ours.load_state_dict(peer.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64)
    out, h, trace = ours.trace(x)
    ref_out, ref_h = peer(x)
    assert_close(out, ref_out, "output", atol=1e-10)
    assert_close(h, ref_h, "h_n", atol=1e-10)
    assert_close(trace.h[1], ref_out, "top layer's trace.h", atol=1e-10)
    assert_close(trace.h, torch.relu(trace.pre), "h = relu(pre)", atol=1e-10)


@pytest.mark.parametrize("kind", sorted(OURS))
def test_state_dicts_load_both_ways(kind):
    kwargs = dict(num_layers=2, bidirectional=True)
    if kind == "lstm":
        kwargs["proj_size"] = 3
    peer, ours = PEERS[kind](4, 6, **kwargs), OURS[kind](4, 6, **kwargs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in peer.state_dict().items()]
    ours.load_state_dict(peer.state_dict(), strict=True)
    fresh = PEERS[kind](4, 6, **kwargs)
    fresh.load_state_dict(ours.state_dict(), strict=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, peer.state_dict()[k]), k


@pytest.mark.parametrize("kind", sorted(OURS))
def test_same_init_as_torch_under_the_same_seed(kind):
    torch.manual_seed(3)
    peer = PEERS[kind](4, 6, num_layers=2)
    torch.manual_seed(3)
    ours = OURS[kind](4, 6, num_layers=2)
    for (k, a), (_, b) in zip(peer.state_dict().items(), ours.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_is_a_torch_nn_module_of_the_same_kind():
    assert isinstance(lnn.LSTM(2, 3), torch.nn.LSTM)
    assert isinstance(lnn.GRUCell(2, 3), torch.nn.GRUCell)
