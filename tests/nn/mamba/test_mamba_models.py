"""MambaLM and Mamba2LM: every scan form gives the same model, streaming (whole == pieces == one token at a time),
right padding, document resets (values and gradients), generation, the authors' initialisation, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lstmkit.nn import LMState, Mamba2Config, Mamba2LM, MambaConfig, MambaLM
from tests.helpers import assert_close, document_spans, peak
from tests.nn.xlstm.test_xlstm_models import _leaves, _row, states_close

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
    model = MODELS[name]()
    x = tokens(3, 23)
    whole, final = model(x)
    pieces, state = [], None
    for start, stop in zip((0, *cuts), (*cuts, 23), strict=True):
        logits, state = model(x[:, start:stop], state)
        pieces.append(logits)
    assert_close(torch.cat(pieces, dim=1), whole, atol=1e-10 * peak(whole))
    states_close(state, final)


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_right_padding_leaves_the_state_untouched(name):
    model = MODELS[name]()
    x = tokens(4, 17)
    lengths = torch.tensor([17, 9, 1, 0])
    logits, state = model(x, lengths=lengths)
    more = tokens(4, 5, seed=3)
    after, _ = model(more, state)
    for row, length in enumerate(lengths.tolist()):
        prefix_state = None
        if length:
            alone, prefix_state = model(x[row : row + 1, :length])
            assert_close(logits[row, :length], alone[0], atol=1e-10 * peak(alone[0]))
        continued, _ = model(more[row : row + 1], prefix_state)
        assert_close(after[row], continued[0], atol=1e-10 * peak(continued[0]))


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_reset_starts_a_fresh_document(name):
    model = MODELS[name]()
    x = tokens(2, 21)
    reset = torch.zeros(2, 21, dtype=torch.bool)
    reset[0, 7] = reset[0, 15] = True
    reset[1, 0] = True  # a reset at the start changes nothing
    logits, state = model(x, reset=reset)
    plain, plain_state = model(x)
    assert_close(logits[1], plain[1], atol=1e-10 * peak(plain[1]))
    for start, stop in ((0, 7), (7, 15), (15, 21)):
        alone, alone_state = model(x[:1, start:stop])
        assert_close(logits[0, start:stop], alone[0], f"document {start}..{stop}", atol=1e-10 * peak(alone[0]))
    more = tokens(2, 4, seed=5)
    after, _ = model(more, state)
    expected = (
        model(more[:1], alone_state)[0][0],
        model(more[1:], LMState(tuple(_row(s, 1) for s in plain_state.blocks)))[0][0],
    )
    for row in (0, 1):
        assert_close(after[row], expected[row], f"row {row} continued", atol=1e-10 * peak(expected[row]))
    assert (logits[0, 7:] - plain[0, 7:]).abs().max() > 1e-6  # the reset did something


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_padding_and_reset_gradients_equal_each_document_alone(name):
    model, lengths = MODELS[name](), [19, 4, 0]
    x = tokens(3, 19)
    reset = torch.rand(3, 19, generator=torch.Generator().manual_seed(0)) < 0.2
    logits, state = model(x, lengths=torch.tensor(lengths), reset=reset)
    g = torch.Generator().manual_seed(1)
    valid = torch.arange(19) < torch.tensor(lengths)[:, None]
    w_logits = torch.randn(logits.shape, generator=g, dtype=F64) * valid[..., None]
    w_state = [torch.randn(t.shape, generator=g, dtype=F64) for t in _leaves(state)]
    params = list(model.parameters())

    def state_loss(state, at: int, row: int):
        return sum((t[at] * w[row]).sum() for t, w in zip(_leaves(state), w_state, strict=True))

    loss = (logits * w_logits).sum() + state_loss(state, 0, 0) + state_loss(state, 1, 1)
    batch = torch.autograd.grad(loss, params)
    alone_loss = 0.0
    for row, length in enumerate(lengths):
        for start, stop in document_spans(reset[row], length):
            alone, alone_state = model(x[row : row + 1, start:stop])
            alone_loss = alone_loss + (alone * w_logits[row : row + 1, start:stop]).sum()
        if length:
            alone_loss = alone_loss + state_loss(alone_state, 0, row)
    expected = torch.autograd.grad(alone_loss, params)
    for (param, _), a, e in zip(model.named_parameters(), batch, expected, strict=True):
        assert_close(a, e, f"gradient of {param}", atol=1e-10 * peak(e))


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
def test_greedy_generation_is_argmax_of_a_full_forward(name):
    model = MODELS[name]()
    prompt = tokens(2, 6)
    out = model.generate(prompt, max_new_tokens=12, temperature=0)
    assert out.shape == (2, 18) and torch.equal(out[:, :6], prompt)
    logits, _ = model(out[:, :-1])
    assert torch.equal(out[:, 6:], logits[:, 5:].argmax(-1))


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
    assert logits.dtype == dtype and all(t.dtype == dtype for t in _leaves(state))
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
