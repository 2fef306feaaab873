"""CausalTransformer (`lstmkit.nn.transformer`): one layer in float64 == the pre-norm attention and MLP written out in
NumPy from the layer's own weights, and == torch's TransformerEncoderLayer.forward; causal; right padding changes
nothing at valid positions; whole == pieces (pieces of 1 included) with positions continuing; the sinusoids by hand
at positions far past any training length; finite gradients; reset_parameters; one-line errors."""

import math

import numpy as np
import pytest
import torch

from lstmkit.nn.transformer import CausalTransformer, TransformerState, sinusoidal_positions
from tests.helpers import assert_close

E, NH = 6, 2  # tiny, with a head width (3) that is not a power of two


def model(num_layers: int = 2, seed: int = 0, **options) -> CausalTransformer:
    torch.manual_seed(seed)
    net = CausalTransformer(E, num_layers, NH, **options).double().eval()
    with torch.no_grad():  # torch's init zeroes the biases and sets the norms to 1: make every weight count
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def random_x(B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(B, T, E, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def layer_norm(x: np.ndarray, norm) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.eps) * weights(norm.weight) + weights(norm.bias)


def weights(p: torch.Tensor) -> np.ndarray:
    return p.detach().numpy()


def by_hand(net: CausalTransformer, x: np.ndarray) -> np.ndarray:
    """One row (T, E), one layer, every product written out: PE, LN_1, q k v per head, causal softmax, out-projection,
    residual, LN_2, GELU(erf) MLP, residual, final LN."""
    (layer,) = net.layers
    T = x.shape[0]
    pe = np.zeros((T, E))
    for p in range(T):
        for j in range(E):
            omega = 10000.0 ** (-(j - j % 2) / E)
            pe[p, j] = math.sin(p * omega) if j % 2 == 0 else math.cos(p * omega)
    h = x + pe
    a = layer_norm(h, layer.norm1)
    W, b = weights(layer.self_attn.in_proj_weight), weights(layer.self_attn.in_proj_bias)
    q, k, v = (a @ W[n * E : (n + 1) * E].T + b[n * E : (n + 1) * E] for n in range(3))
    D = E // NH
    heads = []
    for head in range(NH):
        cut = slice(head * D, (head + 1) * D)
        scores = q[:, cut] @ k[:, cut].T / math.sqrt(D)  # (T, T)
        scores = np.where(np.tril(np.ones((T, T))) > 0, scores, -np.inf)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        heads.append(attention @ v[:, cut])
    out = layer.self_attn.out_proj
    h = h + np.concatenate(heads, -1) @ weights(out.weight).T + weights(out.bias)
    z = layer_norm(h, layer.norm2) @ weights(layer.linear1.weight).T + weights(layer.linear1.bias)
    gelu = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    h = h + gelu @ weights(layer.linear2.weight).T + weights(layer.linear2.bias)
    return layer_norm(h, net.norm)


def test_one_layer_equals_the_layer_written_out_by_hand():
    net = model(num_layers=1)
    x = random_x(2, 7)
    y, state = net(x)
    expected = np.stack([by_hand(net, row) for row in x.numpy()])
    assert_close(y, expected, "y", atol=1e-12)
    assert state.seen == 7 and state.context[0].shape == (2, 7, E)


def test_equals_torchs_own_layer_forward():
    net = model(num_layers=3)
    x = random_x(3, 9)
    h = x + sinusoidal_positions(0, 9, E, x)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(9, dtype=torch.float64)
    for layer in net.layers:
        h = layer(h, src_mask=causal, is_causal=True)
    assert_close(net(x)[0], net.norm(h), "y", atol=1e-12)


def test_causal_a_later_input_leaves_earlier_outputs_unchanged():
    net = model()
    x = random_x(2, 10)
    y = net(x)[0]
    for s in (0, 4, 8):
        changed = x.clone()
        changed[:, s + 1 :] = random_x(2, 10 - s - 1, seed=s + 5)
        z = net(changed)[0]
        assert_close(z[:, : s + 1], y[:, : s + 1], f"y[:, :{s + 1}]", atol=1e-13)
        assert (z[:, s + 1 :] - y[:, s + 1 :]).abs().max() > 1e-3  # the change does reach the later outputs


def test_right_padding_changes_nothing_at_valid_positions():
    net = model()
    lengths = torch.tensor([3, 8, 0, 5])
    x = random_x(4, 8)
    padded = x.clone()
    for row, n in enumerate(lengths.tolist()):
        padded[row, n:] = 100.0 * random_x(1, 8 - n, seed=row + 7)[0]
    y = net(padded, lengths=lengths)[0]
    for row, n in enumerate(lengths.tolist()):
        alone = net(x[row : row + 1, :n])[0]
        assert_close(y[row : row + 1, :n], alone, f"row {row}", atol=1e-12)


@pytest.mark.parametrize("cuts", [[5], [1] * 12, [3, 0, 1, 4, 2, 2]])
def test_pieces_equal_the_whole(cuts):
    net = model()
    x = random_x(3, 12)
    whole, whole_state = net(x)
    state, t0 = None, 0
    for size in [*cuts, 12 - sum(cuts)]:
        y, state = net(x[:, t0 : t0 + size], state)
        assert_close(y, whole[:, t0 : t0 + size], f"y[:, {t0}:{t0 + size}]", atol=1e-12)
        t0 += size
        assert state.seen == t0
    assert_close(state.context, whole_state.context, "state.context", atol=1e-12)


def test_positions_are_defined_far_past_any_training_length():
    x = torch.zeros(1, 1, 7, dtype=torch.float64)
    for start in (0, 1000, 10**6, 10**9):
        pe = sinusoidal_positions(start, 3, 7, x)
        expected = [
            [(math.sin if j % 2 == 0 else math.cos)(p * 10000.0 ** (-(j - j % 2) / 7)) for j in range(7)]
            for p in range(start, start + 3)
        ]
        assert_close(pe, torch.tensor(expected, dtype=torch.float64), f"PE from {start}", atol=1e-12)
    assert sinusoidal_positions(10**6, 2, 7, x.float()).dtype == torch.float32
    net = model(num_layers=1)
    y, state = net(random_x(1, 2000))  # far past the formal-language table's training lengths
    assert torch.isfinite(y).all() and state.seen == 2000
    later = net(random_x(1, 3, seed=4), state)[0]
    assert torch.isfinite(later).all()


def test_gradients_are_finite_and_reach_every_parameter():
    net = model(dropout=0.1).train()
    x = random_x(2, 16).requires_grad_()
    y, _ = net(x, lengths=torch.tensor([16, 9]))
    y.square().sum().backward()
    for name, p in [("x", x), *net.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_empty_inputs_and_reset_parameters():
    net = model()
    y, state = net(random_x(0, 4))
    assert y.shape == (0, 4, E) and state.seen == 0
    y, state = net(random_x(2, 0), net(random_x(2, 3))[1])
    assert y.shape == (2, 0, E) and state.seen == 3
    net.reset_parameters()
    for layer in net.layers:
        assert layer.self_attn.in_proj_bias.abs().max() == 0 and layer.self_attn.out_proj.bias.abs().max() == 0
        assert (layer.norm1.weight == 1).all() and (layer.norm2.bias == 0).all()
        bound = math.sqrt(6 / (E + 3 * E))  # Xavier-uniform on the (3E, E) in-projection
        assert 0.5 * bound < layer.self_attn.in_proj_weight.abs().max() <= bound
    assert (net.norm.weight == 1).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda net: net(torch.zeros(2, 5, dtype=torch.float64)),
            r"x is \(2, 5\) torch.float64, expected .*\(B, T, 6\)",
        ),
        (
            lambda net: net(torch.zeros(2, 5, 4, dtype=torch.float64)),
            r"expected a floating tensor of shape \(B, T, 6\)",
        ),
        (lambda net: net(random_x(2, 5), lengths=torch.tensor([1, 9])), r"lengths range over \[1, 9\], expected"),
        (lambda net: net(random_x(2, 5), (1, 2)), r"state is a tuple, expected the TransformerState"),
        (
            lambda net: net(random_x(2, 5), TransformerState((random_x(2, 3),), 3)),
            r"state has seen 3 and 1 layers, expected a count ≥ 0 and 2 layers",
        ),
        (lambda net: net(random_x(3, 5), net(random_x(2, 3))[1]), r"state.context\[0\] is \(2, 3, 6\)"),
    ],
)
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message):
        call(model())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(num_heads=4), r"num_heads 4 does not divide embedding_dim 6"),
        (dict(num_layers=0), r"num_layers is 0, expected a positive integer"),
        (dict(dropout=1.0), r"dropout is 1.0, expected a number in \[0, 1\)"),
        (dict(max_positions=0), r"max_positions is 0, expected None or a positive integer"),
    ],
)
def test_bad_options_are_one_clear_line(options, message):
    with pytest.raises(ValueError, match=message):
        CausalTransformer(**(dict(embedding_dim=E, num_layers=1, num_heads=NH) | options))


def test_max_positions_limits_a_stream():
    net = model(max_positions=5)
    _, state = net(random_x(1, 4))
    with pytest.raises(ValueError, match=r"positions 4 \+ 2 new reach past max_positions 5"):
        net(random_x(1, 2), state)
