"""Traces: every gate of every step equals the NumPy reference (float64); cells; forget_bias; bad input."""

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit.nn as lnn
from lstmkit.reference import gru, lstm, rnn
from tests.helpers import assert_close

F64 = torch.float64
REFERENCE = {
    "lstm": (lstm, lnn.LSTM, ["i", "f", "g", "o", "c", "h"]),
    "gru": (gru, lnn.GRU, ["r", "z", "n", "h"]),
    "rnn": (rnn, lnn.RNN, ["pre", "h"]),
}


@pytest.mark.parametrize("kind", sorted(REFERENCE))
def test_trace_equals_the_reference_every_step(kind):
    cell, Layer, fields = REFERENCE[kind]
    torch.manual_seed(0)
    layer = Layer(3, 4, dtype=F64)
    x = torch.randn(6, 2, 3, dtype=F64)
    with torch.no_grad():
        _, _, trace = layer.trace(x)
    params = cell.from_torch(layer.state_dict())
    for b in range(2):
        steps = cell.run(params, x[:, b].numpy())
        for field in fields:
            ours = getattr(trace, field)[0, :, b].numpy()  # layer 0, all steps, batch element b
            ref = np.array([getattr(s, field) for s in steps])
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-13, err_msg=f"{kind}.{field}, batch {b}")


def test_trace_fields_and_shapes():
    layer = lnn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, batch_first=True)
    out, (_, c), trace = layer.trace(torch.randn(4, 7, 3))
    assert list(trace._fields) == ["i", "f", "g", "o", "c", "h"]
    assert trace.f.shape == (4, 7, 4, 5) and trace.h.shape == (4, 7, 4, 2)
    torch.testing.assert_close(trace.h[2], out[..., :2].transpose(0, 1))  # layer 1, forward direction
    torch.testing.assert_close(trace.h[3, 0], out[:, 0, 2:])  # layer 1, reverse direction, ends at t = 0
    torch.testing.assert_close(trace.c[:, -1][[0, 2]], c[[0, 2]])  # forward directions end at the last step
    _, _, unbatched = layer.trace(torch.randn(7, 3))
    assert unbatched.i.shape == (4, 7, 5)


@pytest.mark.parametrize("kind", sorted(REFERENCE))
def test_packed_trace_equals_each_sequence_alone(kind):
    """Packed input, two layers, both directions, a random initial state: every field of sequence b's trace
    is the unpacked trace of that sequence alone for its first L_b steps, and exactly zero past its end."""
    _, Layer, fields = REFERENCE[kind]
    torch.manual_seed(2)
    layer = Layer(3, 4, num_layers=2, bidirectional=True, dtype=F64)
    lengths = [5, 2, 3, 1]
    x = torch.randn(5, len(lengths), 3, dtype=F64)
    hx = tuple(torch.randn(4, len(lengths), 4, dtype=F64) for _ in range(2 if kind == "lstm" else 1))
    packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
    with torch.no_grad():
        _, _, trace = layer.trace(packed, hx if kind == "lstm" else hx[0])
        for b, L in enumerate(lengths):
            row_hx = tuple(h[:, b : b + 1] for h in hx)
            _, _, alone = layer.trace(x[:L, b : b + 1], row_hx if kind == "lstm" else row_hx[0])
            for field in fields:
                ours = getattr(trace, field)[:, :, b]  # (layers·directions, T, ·)
                assert_close(ours[:, :L], getattr(alone, field)[:, :, 0], f"{kind}.{field}, sequence {b}", atol=1e-13)
                past = ours[:, L:]
                assert torch.equal(past, torch.zeros_like(past)), f"{kind}.{field}, sequence {b}: nonzero past its end"


@pytest.mark.parametrize(
    ("Cell", "Peer", "n_state"),
    [(lnn.LSTMCell, torch.nn.LSTMCell, 2), (lnn.GRUCell, torch.nn.GRUCell, 1), (lnn.RNNCell, torch.nn.RNNCell, 1)],
)
@pytest.mark.parametrize("batched", [True, False])
def test_cells_trace_equals_forward_and_torch(Cell, Peer, n_state, batched):
    torch.manual_seed(1)
    peer = Peer(3, 4, dtype=F64)
    cell = Cell(3, 4, dtype=F64)
    cell.load_state_dict(peer.state_dict(), strict=True)
    x = torch.randn(*((2,) if batched else ()), 3, dtype=F64)
    hx = tuple(torch.randn(*x.shape[:-1], 4, dtype=F64) for _ in range(n_state))
    hx = hx if n_state == 2 else hx[0]
    expected = peer(x, hx)
    got, trace = cell.trace(x, hx)
    for a, b in zip(got if n_state == 2 else (got,), expected if n_state == 2 else (expected,), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(trace.h, got[0] if n_state == 2 else got, rtol=0, atol=0)


def test_forget_bias():
    layer = lnn.LSTM(3, 4, num_layers=2, bidirectional=True, forget_bias=2.0)
    for name, b in layer.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(b[4:8] == 2.0), name
        if name.startswith("bias_hh"):
            assert torch.all(b[4:8] == 0.0), name
    _, _, trace = layer.trace(torch.zeros(1, 1, 3))
    # zero input and state: the first layer's forget gates (both directions) are exactly σ(2)
    torch.testing.assert_close(trace.f[:2], torch.full_like(trace.f[:2], torch.sigmoid(torch.tensor(2.0)).item()))
    layer.reset_parameters()
    assert torch.all(layer.bias_ih_l1_reverse[4:8] == 2.0)  # re-initialising keeps it
    cell = lnn.LSTMCell(3, 4, forget_bias=1.0)
    assert torch.all(cell.bias_ih[4:8] == 1.0) and torch.all(cell.bias_hh[4:8] == 0.0)
    with pytest.raises(ValueError, match="forget_bias needs bias=True"):
        lnn.LSTM(3, 4, bias=False, forget_bias=1.0)


BAD = [
    (lambda: lnn.LSTM(3, 4).trace(torch.randn(2, 2, 2, 3)), ValueError, "Expected input to be 2D or 3D, got 4D"),
    (
        lambda: lnn.LSTM(3, 4).trace(torch.randn(5, 2, 7)),
        RuntimeError,
        "input.size\\(-1\\) must be equal to input_size. Expected 3, got 7",
    ),
    (
        lambda: lnn.GRU(3, 4).trace(torch.randn(5, 2, 3, dtype=F64)),
        ValueError,
        "input dtype \\(torch.float64\\) does not match weight dtype \\(torch.float32\\)",
    ),
    (
        lambda: lnn.LSTMCell(3, 4).trace(torch.randn(2, 3, dtype=F64)),
        ValueError,
        "input dtype \\(torch.float64\\) does not match weight dtype \\(torch.float32\\)",
    ),
    (
        lambda: lnn.LSTM(3, 4).trace(torch.randn(5, 2, 3), (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4))),
        RuntimeError,
        "Expected hidden\\[0\\] size \\(1, 2, 4\\), got \\[1, 3, 4\\]",
    ),
    (
        lambda: lnn.RNN(3, 4).trace(torch.randn(5, 3), torch.zeros(1, 2, 4)),
        RuntimeError,
        "For unbatched 2-D input, hx should also be 2-D",
    ),
    (lambda: lnn.LSTM(3, 4, proj_size=4), ValueError, "proj_size has to be smaller than hidden_size"),
    (lambda: lnn.LSTMCell(3, 4).trace(torch.randn(2, 5)), RuntimeError, "input has shape \\(2, 5\\), expected last"),
    (
        lambda: lnn.GRUCell(3, 4).trace(torch.randn(2, 3), torch.zeros(3, 4)),
        RuntimeError,
        "hx\\[0\\] has shape \\(3, 4\\), expected \\(2, 4\\)",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD)
def test_bad_input_names_what_is_wrong(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_state_dict():
    layer = lnn.LSTM(3, 4)
    state = torch.nn.LSTM(3, 5).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch for weight_ih_l0: copying a param with shape"):
        layer.load_state_dict(state)
    del state["bias_hh_l0"]
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "bias_hh_l0"'):
        layer.load_state_dict(state)
