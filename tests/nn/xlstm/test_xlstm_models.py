"""xLSTMLM and xLSTMLarge: streaming (whole == pieces), padding, document resets, generation (the checks every
language model passes: tests/nn/lm_contract.py), sampling, the authors' init, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit.nn import LMState, xLSTMConfig, xLSTMLarge, xLSTMLargeConfig, xLSTMLM
from lstmkit.nn.mlstm.state import mLSTMState
from lstmkit.nn.xlstm.slstm_layer import forget_bias_schedule
from tests.nn.lm_contract import (
    check_greedy_generation_is_argmax_of_a_full_forward,
    check_padding_and_reset_gradients_equal_each_document_alone,
    check_reset_starts_a_fresh_document,
    check_right_padding_leaves_the_state_untouched,
    check_whole_equals_pieces,
)

F64 = torch.float64
V = 37


def lm(blocks: str = "msm", **kw) -> xLSTMLM:
    torch.manual_seed(0)
    model = xLSTMLM(xLSTMConfig(vocab_size=V, embedding_dim=32, blocks=blocks, chunk_size=8, **kw), dtype=F64)
    with torch.no_grad():  # move every weight off its init, so zero recurrent matrices etc. cannot hide a bug
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def large(**kw) -> xLSTMLarge:
    torch.manual_seed(1)
    config = xLSTMLargeConfig(vocab_size=V, embedding_dim=32, num_heads=2, num_blocks=2, chunk_size=8, **kw)
    model = xLSTMLarge(config, dtype=F64)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


MODELS = {
    "msm": lambda: lm("msm"),
    "s-noconv": lambda: lm("ss", slstm_conv_kernel=0),
    "m-tied": lambda: lm("mm", tie_weights=True),
    "large": large,
}


def tokens(B: int, T: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("cuts", [(1,), (5, 6, 19), (8, 16), (3, 4, 5, 6, 7)])
def test_whole_equals_pieces(name, cuts):
    check_whole_equals_pieces(MODELS[name](), V, cuts)


@pytest.mark.parametrize("name", MODELS)
def test_right_padding_leaves_the_state_untouched(name):
    check_right_padding_leaves_the_state_untouched(MODELS[name](), V)


@pytest.mark.parametrize("name", MODELS)
def test_reset_starts_a_fresh_document(name):
    check_reset_starts_a_fresh_document(MODELS[name](), V)


@pytest.mark.parametrize("name", ["msm", "large"])
def test_padding_and_reset_gradients_equal_each_document_alone(name):
    check_padding_and_reset_gradients_equal_each_document_alone(MODELS[name](), V)


@pytest.mark.parametrize("name", ["msm", "large"])
def test_greedy_generation_is_argmax_of_a_full_forward(name):
    check_greedy_generation_is_argmax_of_a_full_forward(MODELS[name](), V)


def test_generation_stops_at_eos_and_is_seeded():
    model = lm()
    prompt = tokens(1, 4)[0]
    free = model.generate(prompt, 30, temperature=1.0, seed=7)
    assert free.shape == (34,)
    assert torch.equal(free, model.generate(prompt, 30, temperature=1.0, seed=7))
    assert not torch.equal(free, model.generate(prompt, 30, temperature=1.0, seed=8))
    eos = int(free[10])
    first = 4 + int((free[4:] == eos).nonzero()[0])
    stopped = model.generate(prompt, 30, temperature=1.0, seed=7, eos_token=eos)
    assert torch.equal(stopped, free[: first + 1])  # same draws up to and including the first eos
    assert torch.equal(model.generate(prompt, 5, top_k=1, seed=3), model.generate(prompt, 5, temperature=0))
    assert torch.equal(model.generate(prompt, 5, top_p=1e-9, seed=3), model.generate(prompt, 5, temperature=0))


def test_batched_eos_pads_finished_rows():
    model = lm()
    prompt = tokens(3, 4)
    free = model.generate(prompt, 20, seed=1)
    eos = int(free[0, 6])
    out = model.generate(prompt, 20, seed=1, eos_token=eos)
    for row in out:
        hits = (row[4:] == eos).nonzero()
        if len(hits):
            assert (row[4 + int(hits[0]) :] == eos).all()
    assert out.shape[1] <= free.shape[1]


def test_initialisation_follows_the_authors():
    model = xLSTMLM(xLSTMConfig(vocab_size=V, embedding_dim=64, blocks="msms", mlstm_heads=4, slstm_heads=4))
    mlstm, slstm = model.stack.blocks[0].layer, model.stack.blocks[3].layer
    assert torch.equal(mlstm.fgate.bias, torch.linspace(3, 6, 4)) and (mlstm.fgate.weight == 0).all()
    assert (mlstm.skip == 1).all() and (slstm.cell.R == 0).all()
    assert torch.allclose(slstm.cell.b[64:128], forget_bias_schedule(16, 3, 4).repeat(4))
    assert forget_bias_schedule(16, 0, 4)[0] == 5 and math.isclose(float(forget_bias_schedule(16, 0, 4)[-1]), -7)
    std = model.embedding.weight.std().item()
    assert abs(std - math.sqrt(2 / (5 * 64))) < 0.02
    wang = model.stack.blocks[0].layer.proj_down.weight.std().item()
    assert abs(wang - 2 / 4 / 8) < 0.01


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: xLSTMConfig(vocab_size=10, blocks="mxs"), "blocks[1] is 'x'"),
        (lambda: xLSTMConfig(vocab_size=10, blocks=""), "non-empty string"),
        (lambda: xLSTMConfig(vocab_size=10, embedding_dim=30, blocks="s", slstm_heads=4), "does not divide"),
        (lambda: xLSTMConfig(vocab_size=10, embedding_dim=32, mlstm_heads=3), "mlstm_heads 3 does not divide"),
        (lambda: xLSTMConfig(vocab_size=0), "vocab_size is 0"),
        (lambda: xLSTMConfig(vocab_size=10, ffn_activation="tanh"), "ffn_activation"),
        (lambda: xLSTMLargeConfig(vocab_size=10, embedding_dim=32, num_heads=3), "num_heads 3 does not divide"),
    ],
)
def test_bad_configs(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_bad_inputs():
    model = lm()
    with pytest.raises(ValueError, match=r"token id 37 is out of range, expected ids in \[0, 37\)"):
        model(torch.tensor([[1, 37]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="expected an integer dtype"):
        model(torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"expected \(B, T\)"):
        model(torch.tensor([1, 2]))
    assert model(torch.zeros(2, 0, dtype=torch.long))[0].shape == (2, 0, 37)  # T = 0: empty logits, like nn.LSTM
    with pytest.raises(ValueError, match="lengths range"):
        model(tokens(2, 5), lengths=torch.tensor([6, 1]))
    with pytest.raises(ValueError, match="reset is"):
        model(tokens(2, 5), reset=torch.zeros(2, 5))
    _, state = model(tokens(2, 5))
    with pytest.raises(ValueError, match="2 block states, expected 3"):
        model(tokens(2, 5), LMState(state.blocks[:2]))
    with pytest.raises(ValueError, match=r"block 1 \(sLSTMBlock\) state is a mLSTMLayerState"):
        model(tokens(2, 5), LMState((state.blocks[0], state.blocks[0], state.blocks[2])))
    with pytest.raises(ValueError, match=r"block 0 \(mLSTMBlock\) convolution state is \(2, 3, 64\)"):
        model(tokens(3, 5), state)  # batch 3 with a state for batch 2
    other = lm("msm", mlstm_heads=2)
    with pytest.raises(ValueError, match=r"state.cell.C is \(2, 4, 16, 16\)"):
        other(tokens(2, 5), state)
    large_model = large()
    _, large_state = large_model(tokens(2, 5))
    with pytest.raises(ValueError, match="expected an mLSTMState"):
        large_model(tokens(2, 5), LMState((state.blocks[0], large_state.blocks[1])))
    assert isinstance(large_state.blocks[0], mLSTMState)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(tokens(1, 3), -1)
    with pytest.raises(ValueError, match="eos_token"):
        model.generate(tokens(1, 3), 3, eos_token=V)
    with pytest.raises(TypeError, match="expected an xLSTMConfig"):
        xLSTMLM(xLSTMLargeConfig(vocab_size=10))
