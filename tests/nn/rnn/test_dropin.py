"""lstmkit's RNN layers where torch's own tools take torch.nn's: TorchScript, torch.fx, dynamic quantization,
and torch's refusal of proj_size for RNN and GRU. Each compares against the torch.nn class on the same weights."""

import copy
import warnings

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit.nn.rnn.dropin import torch_class

F64 = torch.float64
PAIRS = [(lnn.LSTM, torch.nn.LSTM), (lnn.GRU, torch.nn.GRU), (lnn.RNN, torch.nn.RNN)]
CELL_PAIRS = [(lnn.LSTMCell, torch.nn.LSTMCell), (lnn.GRUCell, torch.nn.GRUCell), (lnn.RNNCell, torch.nn.RNNCell)]
ALL_PAIRS = PAIRS + CELL_PAIRS


def twins(Ours, Theirs, *args, **kwargs):
    """(ours, torch's), the same configuration and weights."""
    torch.manual_seed(0)
    ours = Ours(*args, **kwargs)
    theirs = Theirs(*args, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def flat(result) -> list[torch.Tensor]:
    """Every tensor in a (nested) output, in order."""
    if isinstance(result, torch.Tensor):
        return [result]
    return [t for item in result for t in flat(item)]


def assert_equal_outputs(a, b, what):
    for k, (x, y) in enumerate(zip(flat(a), flat(b), strict=True)):
        assert x.shape == y.shape, f"{what}[{k}]: shape {tuple(x.shape)} != {tuple(y.shape)}"
        assert torch.equal(x, y), f"{what}[{k}]: max abs diff {float((x - y).abs().max()):.3e}"


class Holder(torch.nn.Module):
    """A model with a layer that returns (output, state) or (h, c) inside, as users script and trace them."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.head = torch.nn.Linear(layer.hidden_size, 2)

    def forward(self, x):
        return self.head(self.layer(x)[0])


class CellHolder(Holder):
    """The same around a cell that returns h alone (GRUCell, RNNCell)."""

    def forward(self, x):
        return self.head(self.layer(x))


def model_pair(Ours, Theirs):
    """Holder(ours), Holder(torch's), the same weights throughout."""
    ours, theirs = twins(Ours, Theirs, 4, 6)
    Model = CellHolder if isinstance(ours, (torch.nn.GRUCell, torch.nn.RNNCell)) else Holder
    model, peer = Model(ours), Model(theirs)
    peer.head.load_state_dict(model.head.state_dict())
    return model, peer


def inputs_for(layer) -> torch.Tensor:
    cell = isinstance(layer, torch.nn.RNNCellBase)
    return torch.randn(3, layer.input_size) if cell else torch.randn(5, 3, layer.input_size)


@pytest.fixture(autouse=True)
def quiet():
    """torch.jit.script and torch.ao.quantization warn that they are deprecated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("Ours, Theirs", ALL_PAIRS, ids=[p[0].__name__ for p in ALL_PAIRS])
def test_torch_jit_script_inside_a_model(Ours, Theirs):
    model, peer = model_pair(Ours, Theirs)
    ours = model.layer
    x = inputs_for(ours)
    expected = model(x)
    scripted = torch.jit.script(model)
    assert_equal_outputs(scripted(x), torch.jit.script(peer)(x), "scripted model against torch.nn's")
    assert_equal_outputs(scripted(x), expected, "scripted model against eager")
    # torch's scripting put the torch.nn twin in the model, on the very same parameters
    assert type(model.layer) is Theirs
    assert all(a is b for a, b in zip(model.layer.parameters(), ours.parameters(), strict=True))


@pytest.mark.parametrize("Ours, Theirs", ALL_PAIRS, ids=[p[0].__name__ for p in ALL_PAIRS])
def test_torch_jit_script_alone(Ours, Theirs):
    """A scripted torch.nn.LSTM has forward's overloads but no `forward` to call alone; the cells have one."""
    ours, theirs = twins(Ours, Theirs, 4, 6)
    scripted, peer = torch.jit.script(ours), torch.jit.script(theirs)
    assert type(scripted) is type(peer)
    assert scripted.original_name == peer.original_name == Theirs.__name__
    if Ours in (lnn.LSTMCell, lnn.GRUCell, lnn.RNNCell):
        x = inputs_for(ours)
        assert_equal_outputs(scripted(x), peer(x), "scripted cell")


@pytest.mark.parametrize("Ours, Theirs", ALL_PAIRS, ids=[p[0].__name__ for p in ALL_PAIRS])
def test_torch_fx_keeps_the_layer_whole(Ours, Theirs):
    model, peer = model_pair(Ours, Theirs)
    x = inputs_for(model.layer)
    graph, peer_graph = torch.fx.symbolic_trace(model), torch.fx.symbolic_trace(peer)
    assert graph.code == peer_graph.code
    assert [n.target for n in graph.graph.nodes if n.op == "call_module"] == ["layer", "head"]
    assert isinstance(graph.layer, Ours)  # the GraphModule keeps our layer, trace() included
    assert_equal_outputs(graph(x), model(x), "fx graph against eager")
    assert_equal_outputs(graph(x), peer_graph(x), "fx graph against torch.nn's")


def quantizable(Layer, Cell):
    torch.manual_seed(0)
    return torch.nn.ModuleDict({"rnn": Layer(4, 6, num_layers=2), "cell": Cell(4, 6), "head": torch.nn.Linear(6, 2)})


def as_torch(cls: type) -> type:
    """lstmkit's class as the torch.nn class it extends; any other class as it is."""
    return torch_class(cls) if cls.__module__.startswith("lstmkit.") else cls


def run_all(model, x_seq, x_step, x_head):
    return [model["rnn"](x_seq), model["cell"](x_step), model["head"](x_head)]


@pytest.mark.parametrize("dtype", [torch.qint8, torch.float16])
@pytest.mark.parametrize(
    "Layer, Peer, Cell, PeerCell",
    [
        (lnn.LSTM, torch.nn.LSTM, lnn.LSTMCell, torch.nn.LSTMCell),
        (lnn.GRU, torch.nn.GRU, lnn.GRUCell, torch.nn.GRUCell),
        (lnn.RNN, torch.nn.RNN, lnn.RNNCell, torch.nn.RNNCell),
    ],
    ids=["lstm", "gru", "rnn"],
)
def test_quantize_dynamic_as_torch_does(dtype, Layer, Peer, Cell, PeerCell):
    """lnn.quantize_dynamic(model) == torch's quantize_dynamic of the same model built from torch.nn classes:
    the same quantized types (torch.nn.RNN has none: it stays float) and bit-equal outputs."""
    ours, peer = quantizable(Layer, Cell), quantizable(Peer, PeerCell)
    peer.load_state_dict(ours.state_dict())
    args = torch.randn(5, 3, 4), torch.randn(3, 4), torch.randn(3, 6)
    quantization = torch.ao.quantization
    qconfig = quantization.default_dynamic_qconfig if dtype == torch.qint8 else quantization.float16_dynamic_qconfig
    for spec in (None, {Peer, PeerCell}, {Peer: qconfig, PeerCell: qconfig}):
        expected = quantization.quantize_dynamic(peer, spec, dtype=dtype)
        quantized = lnn.quantize_dynamic(ours, spec, dtype=dtype)
        assert [as_torch(type(m)) for m in quantized.values()] == [type(m) for m in expected.values()], spec
        assert type(quantized["cell"]) is type(expected["cell"]) is not PeerCell
        assert_equal_outputs(run_all(quantized, *args), run_all(expected, *args), f"quantized with {spec}")
    assert isinstance(ours["rnn"], Layer) and isinstance(ours["cell"], Cell), "a copy unless inplace=True"


@pytest.mark.parametrize("Layer", [lnn.GRU, lnn.RNN])
@pytest.mark.parametrize("proj_size", [0, 5])
def test_proj_size_is_refused_as_torch_refuses_it(Layer, proj_size):
    """PyTorch's own test_projections_errors_on_gru_and_rnn, with lstmkit's classes."""
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not RNN or GRU"):
        getattr(torch.nn, Layer.__name__)(input_size=10, hidden_size=20, proj_size=proj_size)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not RNN or GRU"):
        Layer(input_size=10, hidden_size=20, proj_size=proj_size)


def test_scripting_a_copy_keeps_the_model():
    """The workaround when the model must keep lstmkit's layer: script a deep copy."""
    model = Holder(lnn.LSTM(4, 6))
    x = inputs_for(model.layer)
    scripted = torch.jit.script(copy.deepcopy(model))
    assert isinstance(model.layer, lnn.LSTM)
    assert_equal_outputs(scripted(x), model(x), "scripted copy")


def test_a_parametrized_layer_is_refused_with_what_to_do():
    """torch.nn.LSTM with a parametrization fails to script and to quantize too (deep in TorchScript, or an
    AssertionError); lstmkit's says why in one line."""
    layer = torch.nn.utils.parametrizations.weight_norm(lnn.LSTM(4, 6), "weight_hh_l0")
    for tool in (lambda: torch.jit.script(Holder(layer)), lambda: lnn.quantize_dynamic(Holder(layer))):
        with pytest.raises(ValueError, match="remove the parametrizations first"):
            tool()
