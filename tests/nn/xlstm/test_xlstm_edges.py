"""The xLSTM's Python API at the edges: non-finite inputs refused by one check with one message everywhere,
and an empty batch or zero time steps giving empty outputs and the state unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit.nn import mLSTMLayer, sLSTMLayer, xLSTMConfig, xLSTMLarge, xLSTMLargeConfig, xLSTMLM
from lstmkit.nn.mlstm import empty_state, mlstm_chunkwise, mlstm_parallel, mlstm_recurrent, mlstm_step, mLSTMState
from lstmkit.nn.slstm import slstm, slstm_step, sLSTMCell, sLSTMState

MLSTM_FORMS = {"recurrent": mlstm_recurrent, "parallel": mlstm_parallel, "chunkwise": mlstm_chunkwise}


def mlstm_inputs(B=2, NH=2, T=5, D=4):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, NH, T, D, generator=g) for _ in range(3))
    i, f = torch.randn(B, NH, T, generator=g), torch.randn(B, NH, T, generator=g)
    return [q, k, v, i, f]


def mlstm_state(B=2, NH=2, D=4):
    return mLSTMState(torch.randn(B, NH, D, D), torch.rand(B, NH, D), torch.zeros(B, NH))


BAD_MLSTM = [  # (which input, index, value, message)
    ("q", (0, 1, 2, 3), math.nan, r"q contains NaN at index \(0, 1, 2, 3\)"),
    ("k", (1, 0, 4, 0), math.inf, r"k contains \+inf at index \(1, 0, 4, 0\)"),
    ("v", (0, 0, 0, 1), -math.inf, r"v contains -inf at index \(0, 0, 0, 1\)"),
    ("i", (0, 1, 3), math.inf, r"i contains \+inf at index \(0, 1, 3\), expected finite values"),
    ("i", (0, 1, 3), -math.inf, r"i contains -inf at index \(0, 1, 3\)"),
    ("f", (1, 1, 0), math.inf, r"f contains \+inf at index \(1, 1, 0\), expected finite values or -inf"),
    ("f", (1, 1, 0), math.nan, r"f contains NaN"),
    ("state.C", (0, 0, 1, 2), math.nan, r"state.C contains NaN at index \(0, 0, 1, 2\)"),
    ("state.n", (1, 1, 3), math.inf, r"state.n contains \+inf"),
    ("state.m", (1, 0), math.inf, r"state.m contains \+inf at index \(1, 0\)"),
    ("state.m", (1, 0), math.nan, r"state.m contains NaN"),
]


def planted(name, index, value):
    inputs, state = mlstm_inputs(), mlstm_state()
    if name.startswith("state."):
        getattr(state, name[6:])[index] = value
    else:
        inputs["qkvif".index(name)][index] = value
    return inputs, state


@pytest.mark.parametrize("form", MLSTM_FORMS)
@pytest.mark.parametrize(("name", "index", "value", "message"), BAD_MLSTM)
def test_mlstm_forms_refuse_non_finite_inputs(form, name, index, value, message):
    inputs, state = planted(name, index, value)
    with pytest.raises(ValueError, match=message):
        MLSTM_FORMS[form](*inputs, state)


@pytest.mark.parametrize(
    ("name", "index", "value", "message"),
    [
        ("q", (0, 1, 3), math.nan, r"q contains NaN at index \(0, 1, 3\)"),
        ("i", (1, 0), math.inf, r"i contains \+inf at index \(1, 0\)"),
        ("f", (1, 0), math.nan, r"f contains NaN at index \(1, 0\)"),
        ("state.m", (1, 0), math.inf, r"state.m contains \+inf at index \(1, 0\)"),
        ("state.C", (0, 0, 1, 2), math.nan, r"state.C contains NaN at index \(0, 0, 1, 2\)"),
    ],
)
def test_mlstm_step_refuses_non_finite_inputs(name, index, value, message):
    step_inputs, state = [x[:, :, 0].clone() for x in mlstm_inputs()], mlstm_state()
    target = getattr(state, name[6:]) if name.startswith("state.") else step_inputs["qkvif".index(name)]
    target[index] = value
    with pytest.raises(ValueError, match=message):
        mlstm_step(*step_inputs, state)


def test_legitimate_minus_inf_values_pass():
    """f̃ = -inf (forget everything) and m = -inf (the empty state) are accepted, and give finite results."""
    q, k, v, i, f = mlstm_inputs()
    f[0, 1, 2] = -math.inf
    for form in MLSTM_FORMS.values():
        h, state = form(q, k, v, i, f, empty_state(q, v))
        assert torch.isfinite(h).all() and torch.isfinite(state.m).all()


def slstm_inputs(B=2, T=3, H=8):
    cell = sLSTMCell(H, 2)
    with torch.no_grad():
        cell.R.normal_(0, 0.1)
    x = torch.randn(B, T, 4 * H, generator=torch.Generator().manual_seed(0))
    state = sLSTMState(*(torch.rand(B, H) for _ in range(4)))
    return cell, x, state


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("x", math.nan, r"x contains NaN at index \(1, 2, 5\)"),
        ("x", math.inf, r"x contains \+inf at index \(1, 2, 5\)"),
        ("x", -math.inf, r"x contains -inf at index \(1, 2, 5\)"),
        ("c", math.nan, r"state.c contains NaN at index \(1, 5\)"),
        ("n", math.inf, r"state.n contains \+inf"),
        ("m", -math.inf, r"state.m contains -inf"),
        ("h", math.nan, r"state.h contains NaN"),
    ],
)
def test_slstm_refuses_non_finite_inputs(where, value, message):
    cell, x, state = slstm_inputs()
    if where == "x":
        x[1, 2, 5] = value
    else:
        getattr(state, where)[1, 5] = value
    with pytest.raises(ValueError, match=message):
        slstm(x, cell.R, cell.b, state)
    with pytest.raises(ValueError, match=message):
        cell(x, state)
    with pytest.raises(ValueError, match=message.replace(r", 2, 5", ", 5")):
        slstm_step(x[:, 2], cell.R, cell.b, state)


def test_layers_refuse_a_non_finite_state():
    layer = sLSTMLayer(8, 2)
    x = torch.randn(2, 3, 8)
    _, state = layer(x)
    state.cell.c[0, 1] = math.nan
    with pytest.raises(ValueError, match=r"state.c contains NaN at index \(0, 1\)"):
        layer(x, state)
    mlayer = mLSTMLayer(8, 16, 2)
    _, mstate = mlayer(x)
    mstate.cell.m[1, 0] = math.inf
    with pytest.raises(ValueError, match=r"state.m contains \+inf at index \(1, 0\)"):
        mlayer(x, mstate)


SHAPES = [(0, 5), (2, 0), (0, 0)]


def same_state(a, b) -> bool:
    """Two (nested) states hold the same tensors (None where a part is absent)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(("B", "T"), SHAPES)
@pytest.mark.parametrize("form", MLSTM_FORMS)
def test_mlstm_forms_empty(form, B, T):
    q, k, v, i, f = mlstm_inputs(B=B, T=T, D=4)
    v = v[..., :3]
    state = mLSTMState(torch.randn(B, 2, 4, 3), torch.rand(B, 2, 4), torch.zeros(B, 2))
    h, final = MLSTM_FORMS[form](q, k, v, i, f, state)
    assert h.shape == (B, 2, T, 3)
    if T == 0:
        assert same_state(final, state)
    assert all(s.shape == t.shape for s, t in zip(final, state, strict=True))


def test_steps_with_an_empty_batch():
    h, state = mlstm_step(*(x[:, :, 0] for x in mlstm_inputs(B=0)), mlstm_state(B=0))
    assert h.shape == (0, 2, 4) and state.C.shape == (0, 2, 4, 4)
    cell, x, _ = slstm_inputs(B=0)
    h, state = slstm_step(x[:, 0], cell.R, cell.b, sLSTMState(*(torch.zeros(0, 8) for _ in range(4))))
    assert h.shape == (0, 8) and state.c.shape == (0, 8)


def run_twice(model, make_input, B, T):
    """The model on an input of (B, T), once fresh and once with a state from a previous call of batch B."""
    out, _ = model(make_input(B, T))
    _, state = model(make_input(B, 3))
    out_again, after = model(make_input(B, T), state)
    return out, out_again, state, after


def tokens(B, T):
    return torch.zeros(B, T, dtype=torch.long)


def vectors(B, T):
    return torch.randn(B, T, 8)


def small_lm():
    return xLSTMLM(xLSTMConfig(vocab_size=11, embedding_dim=8, blocks="ms", slstm_heads=2, mlstm_heads=2))


def small_large():
    return xLSTMLarge(xLSTMLargeConfig(vocab_size=11, embedding_dim=8, num_heads=2, num_blocks=1))


MODELS = {  # name: (make the model, make an input of (B, T), width of the output)
    "sLSTMCell": (lambda: sLSTMCell(8, 2), lambda B, T: torch.randn(B, T, 32), 8),
    "sLSTMLayer": (lambda: sLSTMLayer(8, 2), vectors, 8),
    "mLSTMLayer": (lambda: mLSTMLayer(8, 16, 2), vectors, 8),
    "xLSTMLM": (small_lm, tokens, 11),
    "xLSTMLarge": (small_large, tokens, 11),
}


@pytest.mark.parametrize(("B", "T"), SHAPES)
@pytest.mark.parametrize("name", MODELS)
def test_models_empty(name, B, T):
    make, make_input, width = MODELS[name]
    torch.manual_seed(0)
    model = make()
    out, out_again, state, after = run_twice(model, make_input, B, T)
    assert out.shape == (B, T, width) and out_again.shape == (B, T, width)
    if T == 0:
        assert same_state(after, state), "T = 0 must leave the state unchanged"
    if B > 0:  # and the model carries on as if the empty call had not happened
        x = make_input(B, 2)
        assert torch.equal(model(x, after)[0], model(x, state)[0])
