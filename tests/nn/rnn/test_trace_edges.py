"""trace() at the edges: empty batch, no steps, a state of the wrong dtype, the module's pre-hooks, torch.func
and torch.compile. Each compares against the module's own forward (or autograd) on the same input."""

import pytest
import torch

import lstmkit.nn as lnn
from tests.helpers import assert_close

F64 = torch.float64


def states_of(result):
    """forward's or trace's second item as a tuple of tensors."""
    return result if isinstance(result, tuple) else (result,)


# (class, keyword arguments): the fast LSTM path in several layouts, and the loop of GRU and RNN
LAYERS = [
    (lnn.LSTM, {}),
    (lnn.LSTM, {"num_layers": 2, "bidirectional": True}),
    (lnn.LSTM, {"proj_size": 2, "batch_first": True}),
    (lnn.GRU, {"num_layers": 2, "bidirectional": True}),
    (lnn.RNN, {"batch_first": True}),
]
IDS = ["LSTM", "LSTM-2-layers-bidirectional", "LSTM-proj-batch_first", "GRU-2-layers-bidirectional", "RNN-batch_first"]


@pytest.mark.parametrize("Layer, kwargs", LAYERS, ids=IDS)
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_empty_batch_gives_empty_fields_like_forward(Layer, kwargs, dtype):
    torch.manual_seed(0)
    layer = Layer(3, 4, dtype=dtype, **kwargs)
    x = torch.randn(0, 5, 3, dtype=dtype) if layer.batch_first else torch.randn(5, 0, 3, dtype=dtype)
    output, states, trace = layer.trace(x)
    expected_output, expected_states = layer(x)
    assert output.shape == expected_output.shape
    for got, want in zip(states_of(states), states_of(expected_states), strict=True):
        assert got.shape == want.shape
    LD = layer.num_layers * (2 if layer.bidirectional else 1)
    for name, field in trace._asdict().items():
        assert field.shape[:3] == (LD, 5, 0), f"trace.{name}: {tuple(field.shape)}"


@pytest.mark.parametrize("Layer, kwargs", LAYERS, ids=IDS)
@pytest.mark.parametrize("batched", [True, False])
def test_no_steps_raises_what_forward_raises(Layer, kwargs, batched):
    layer = Layer(3, 4, **kwargs)
    x = torch.randn(0, 3) if not batched else torch.randn(2, 0, 3) if layer.batch_first else torch.randn(0, 2, 3)
    with pytest.raises(Exception) as from_forward:
        layer(x)
    with pytest.raises(type(from_forward.value), match=str(from_forward.value)):
        layer.trace(x)


@pytest.mark.parametrize("Layer", [lnn.LSTM, lnn.GRU, lnn.RNN, lnn.LSTMCell, lnn.GRUCell, lnn.RNNCell])
def test_a_state_of_another_dtype_is_one_clear_error(Layer):
    """forward fails inside its kernel ("get_mkldnn_dtype: unsupported data type" for the LSTM); trace says what."""
    layer = Layer(3, 4)
    cell = Layer in (lnn.LSTMCell, lnn.GRUCell, lnn.RNNCell)
    x = torch.randn(2, 3) if cell else torch.randn(5, 2, 3)
    h = torch.zeros((2, 4) if cell else (1, 2, 4), dtype=F64)
    hx = (h, h) if Layer in (lnn.LSTM, lnn.LSTMCell) else h
    with pytest.raises(ValueError, match=r"hx\[0\] dtype \(torch.float64\) does not match .*torch.float32"):
        layer.trace(x, hx)


def weight(module) -> str:
    """The weight to reparametrize: one that a step from a zero state depends on (not a cell's W_hh)."""
    return "weight_hh_l0" if hasattr(module, "weight_hh_l0") else "weight_ih"


def weight_norm_hook(module):
    return torch.nn.utils.weight_norm(module, weight(module))


def spectral_norm_hook(module):
    return torch.nn.utils.spectral_norm(module, weight(module))


def weight_norm_parametrization(module):
    return torch.nn.utils.parametrizations.weight_norm(module, weight(module))


def orthogonal_parametrization(module):
    return torch.nn.utils.parametrizations.orthogonal(module, weight(module))


REPARAMETRIZATIONS = [weight_norm_hook, spectral_norm_hook, weight_norm_parametrization, orthogonal_parametrization]


@pytest.mark.parametrize("reparametrize", REPARAMETRIZATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("Layer", [lnn.LSTM, lnn.GRU, lnn.RNN, lnn.LSTMCell])
def test_trace_uses_the_weights_forward_uses_after_an_update(reparametrize, Layer):
    """weight_norm and spectral_norm (forward pre-hooks) and parametrizations recompute the weights: after an
    optimizer step, trace() must see the new ones, as forward does."""
    torch.manual_seed(0)
    layer = reparametrize(Layer(3, 4, dtype=F64))
    cell = isinstance(layer, lnn.LSTMCell)
    x = torch.randn(2, 3, dtype=F64) if cell else torch.randn(5, 2, 3, dtype=F64)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(2):
        optimizer.zero_grad()
        output = layer(x)
        output[0].square().sum().backward()
        optimizer.step()
    layer.eval()  # spectral_norm's power iteration runs only in training mode: the weight stays put
    traced = layer.trace(x)  # first: the last forward ran before the step
    expected = layer(x)
    if cell:
        for got, want in zip(traced[0], expected, strict=True):
            assert_close(got, want, "cell state", atol=1e-12)
    else:
        assert_close(traced[0], expected[0], "output", atol=1e-12)
        for got, want in zip(states_of(traced[1]), states_of(expected[1]), strict=True):
            assert_close(got, want, "final state", atol=1e-12)


def test_torch_func_grad_through_the_fast_trace():
    """torch.func needs Functions with setup_context; B·H = 2048 takes CellScan."""
    torch.manual_seed(0)
    layer = lnn.LSTM(3, 64, dtype=F64)
    x = torch.randn(4, 32, 3, dtype=F64)

    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            _, (_, c_n), trace = self.layer.trace(x)
            return (trace.c.square().sum() + trace.f.sum()) * c_n.sum()

    loss = Loss()
    params = {k: v.detach() for k, v in loss.named_parameters()}
    grads = torch.func.grad(lambda p: torch.func.functional_call(loss, p, (x,)))(params)
    expected = torch.autograd.grad(loss(x), list(loss.parameters()))
    for (name, got), want in zip(grads.items(), expected, strict=True):
        assert_close(got, want, f"d/d{name}", atol=1e-10 * max(1.0, float(want.abs().max())))


@pytest.mark.parametrize("B, H", [(2, 8), (32, 64)], ids=["chunked", "cellscan"])
def test_torch_compile_of_code_that_calls_trace_float32(B, H):
    """Under torch.compile the gates' products are left to the compiler (oneDNN has no fake-tensor form)."""
    torch.manual_seed(0)
    layer = lnn.LSTM(3, H, num_layers=2)
    x = torch.randn(4, B, 3, requires_grad=True)

    def loss(x):
        output, _, trace = layer.trace(x)
        return output.sum() + trace.c.square().sum() + trace.g.sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, backend="eager")
    got, want = compiled(x), loss(x)
    assert_close(got, want, "loss", atol=1e-5)
    (dx_got,), (dx_want,) = torch.autograd.grad(got, [x]), torch.autograd.grad(want, [x])
    assert_close(dx_got, dx_want, "d/dx", atol=1e-5)
