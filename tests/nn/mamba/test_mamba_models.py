"""MambaLM and Mamba2LM: every scan form gives the same model, streaming (whole == pieces == one token at a time),
right padding, document resets (values and gradients), generation (tests/nn/lm_contract.py), the authors'
initialisation, low precision, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lstmkit.nn import Mamba2Config, Mamba2LM, MambaConfig, MambaLM
from tests.helpers import assert_close, peak
from tests.nn.lm_contract import (
    check_greedy_generation_is_argmax_of_a_full_forward,
    check_padding_and_reset_gradients_equal_each_document_alone,
    check_reset_starts_a_fresh_document,
    check_right_padding_leaves_the_state_untouched,
    check_whole_equals_pieces,
    leaves,
    states_close,
)

F64 = torch.float64
V = 29


def randomised(model):
    """Every weight moved off its init, so that D = 1, zero biases etc. cannot hide a bug."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def mamba(scan: str = "auto", **kw) -> MambaLM:
    torch.manual_seed(0)
    config = MambaConfig(vocab_size=V, embedding_dim=16, num_layers=2, state_size=4, scan=scan, **kw)
    return randomised(MambaLM(config, dtype=F64))


def mamba2(scan: str = "auto", **kw) -> Mamba2LM:
    torch.manual_seed(0)
    kw = {"state_size": 4, "head_dim": 8, "num_groups": 2, "chunk_size": 4} | kw
    config = Mamba2Config(vocab_size=V, embedding_dim=16, num_layers=2, scan=scan, **kw)
    return randomised(Mamba2LM(config, dtype=F64))


MODELS = {
    "mamba": mamba,
    "mamba-recurrent": lambda: mamba("recurrent"),
    "mamba-parallel": lambda: mamba("parallel"),
    "mamba-untied": lambda: mamba(tie_weights=False, bias=True),
    "mamba2": mamba2,
    "mamba2-recurrent": lambda: mamba2("recurrent"),
    "mamba2-one-group": lambda: mamba2(num_groups=1, dt_limit=(0.01, 2.0)),
}


def tokens(B: int, T: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["mamba", "mamba2"])
def test_every_scan_form_gives_the_same_model(family):
    x = tokens(3, 13)
    forms = ("recurrent", "parallel", "cpp", "auto") if family == "mamba" else ("recurrent", "chunkwise", "auto")
    make = mamba if family == "mamba" else mamba2
    expected, expected_state = make("recurrent")(x)
    for form in forms:
        logits, state = make(form)(x)
        assert_close(logits, expected, form, atol=1e-10 * peak(expected))
        states_close(state, expected_state)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("cuts", [(1,), (5, 6, 19), tuple(range(1, 23))])
def test_whole_equals_pieces(name, cuts):
    check_whole_equals_pieces(MODELS[name](), V, cuts)


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_right_padding_leaves_the_state_untouched(name):
    check_right_padding_leaves_the_state_untouched(MODELS[name](), V)


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_reset_starts_a_fresh_document(name):
    check_reset_starts_a_fresh_document(MODELS[name](), V)


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_padding_and_reset_gradients_equal_each_document_alone(name):
    check_padding_and_reset_gradients_equal_each_document_alone(MODELS[name](), V)


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_greedy_generation_is_argmax_of_a_full_forward(name):
    check_greedy_generation_is_argmax_of_a_full_forward(MODELS[name](), V)


def test_mamba_initialisation_follows_the_authors():
    torch.manual_seed(0)
    config = MambaConfig(vocab_size=V, embedding_dim=64, num_layers=4, state_size=8)
    model = MambaLM(config)
    layer = model.stack.blocks[0].layer
    assert torch.allclose(-torch.exp(layer.A_log), -torch.arange(1.0, 9.0).expand(128, 8))
    assert (layer.D == 1).all() and model.head.weight is model.embedding.weight
    delta = F.softplus(layer.dt_proj.bias)
    assert delta.min() >= config.dt_min * (1 - 1e-5) and delta.max() <= config.dt_max * (1 + 1e-5)
    assert delta.log().std() > 0.5  # log-uniform over two decades, not a constant
    bound = config.rank**-0.5
    assert layer.dt_proj.weight.abs().max() <= bound and layer.dt_proj.weight.abs().max() > 0.9 * bound
    out = layer.out_proj.weight  # U(±1/√I) / √(layers): std = 1/√(3·I·layers)
    assert math.isclose(out.std().item(), 1 / math.sqrt(3 * 128 * 4), rel_tol=0.05)
    assert abs(model.embedding.weight.std().item() - 0.02) < 0.002


def test_mamba2_initialisation_follows_the_authors():
    torch.manual_seed(0)
    config = Mamba2Config(vocab_size=V, embedding_dim=64, num_layers=2, head_dim=4)  # 32 heads
    model = Mamba2LM(config)
    layer = model.stack.blocks[1].layer
    A = torch.exp(layer.A_log)
    assert A.min() >= 1 and A.max() <= 16 and A.std() > 2  # U(1, 16) per head
    assert (layer.D == 1).all() and (layer.norm.weight == 1).all()
    delta = F.softplus(layer.dt_bias)
    assert delta.min() >= config.dt_min * (1 - 1e-5) and delta.max() <= config.dt_max * (1 + 1e-5)
    assert model.head.weight is not model.embedding.weight


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("family", ["mamba", "mamba2"])
def test_low_precision_stays_finite_and_close(family, dtype):
    make = mamba if family == "mamba" else mamba2
    model = make()
    x = tokens(2, 40)
    expected, _ = model(x)
    low = model.to(dtype)
    logits, state = low(x)
    assert logits.dtype == dtype and all(t.dtype == dtype for t in leaves(state))
    assert torch.isfinite(logits).all()
    tolerance = {torch.float32: 1e-4, torch.bfloat16: 0.1, torch.float16: 0.02}[dtype]
    assert_close(logits.double(), expected, atol=tolerance * peak(expected) * 10, check_dtype=False)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MambaConfig(vocab_size=0), "vocab_size is 0"),
        (lambda: MambaConfig(vocab_size=5, state_size=0), "state_size is 0"),
        (lambda: MambaConfig(vocab_size=5, dt_min=0.5, dt_max=0.1), "dt_min 0.5 is above dt_max 0.1"),
        (lambda: MambaConfig(vocab_size=5, scan="chunkwise"), "scan is 'chunkwise'"),
        (lambda: Mamba2Config(vocab_size=5, embedding_dim=24, head_dim=32), "head_dim 32 does not divide"),
        (lambda: Mamba2Config(vocab_size=5, embedding_dim=32, head_dim=16, num_groups=3), "num_groups 3"),
        (lambda: Mamba2Config(vocab_size=5, dt_limit=(1.0, 0.5)), "dt_limit"),
        (lambda: Mamba2Config(vocab_size=5, A_init_range=(0.0, 4.0)), "A_init_range"),
    ],
)
def test_bad_configs(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_bad_inputs():
    model, other = mamba(), mamba2()
    with pytest.raises(ValueError, match=r"token id 29 is out of range, expected ids in \[0, 29\)"):
        model(torch.tensor([[1, 29]]))
    _, state = other(tokens(2, 3))
    with pytest.raises(ValueError, match=r"block 0 \(MambaBlock\) state is a Mamba2LayerState"):
        model(tokens(2, 3), state)
    _, state = model(tokens(2, 3))
    with pytest.raises(ValueError, match=r"convolution state is \(2, 3, 32\) torch.float64, expected \(1, 3, 32\)"):
        model(tokens(1, 3), state)
    with pytest.raises(TypeError, match="expected a MambaConfig"):
        MambaLM(Mamba2Config(vocab_size=5))
