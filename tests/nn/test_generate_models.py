"""SequenceModel as a language model: stream == forward (whole and in pieces) for every family; generate works on it."""

from __future__ import annotations

import pytest
import torch

from lstmkit.models import MODEL_NAMES, ModelConfig, SequenceModel
from lstmkit.nn import generate
from lstmkit.tasks.base import TaskSpec
from tests.helpers import assert_close

V = 11
LM = TaskSpec(name="lm", kind="tag", num_outputs=V, vocab_size=V)


def lm(name: str, spec: TaskSpec = LM) -> SequenceModel:
    torch.manual_seed(0)
    config = ModelConfig(name, hidden_size=16, num_layers=2, num_heads=2)
    return SequenceModel(config, spec).double().eval()


def tokens(batch: int, steps: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (batch, steps), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_stream_equals_forward_whole_and_in_pieces(name):
    model = lm(name)
    x = tokens(3, 13)
    with torch.no_grad():
        whole = model(x)
        streamed, _ = model.stream(x)
        assert_close(streamed, whole, f"{name}: stream of the whole sequence", atol=1e-10)
        for cuts in ([5, 1, 7], [1] * 13):
            state, pieces = None, []
            for piece in x.split(cuts, dim=1):
                out, state = model.stream(piece, state)
                pieces.append(out)
            assert_close(torch.cat(pieces, dim=1), whole, f"{name}: stream in pieces {cuts}", atol=1e-10)


@pytest.mark.parametrize("name", ["lstm", "xlstm", "xlstm-large"])
def test_greedy_generation_is_argmax_of_a_full_forward(name):
    model = lm(name)
    prompt = tokens(2, 6)
    out = generate(model, prompt, max_new_tokens=10, temperature=0)
    assert out.shape == (2, 16) and torch.equal(out[:, :6], prompt)
    with torch.no_grad():
        logits = model(out[:, :-1])
    assert torch.equal(out[:, 6:], logits[:, 5:].argmax(-1))
    assert torch.equal(generate(model, prompt[0], 10, temperature=0), out[0])


def test_seeded_sampling_is_deterministic():
    model = lm("gru").train()
    prompt = tokens(2, 4)
    free = generate(model, prompt, 20, seed=7)
    assert torch.equal(free, generate(model, prompt, 20, seed=7))
    assert not torch.equal(free, generate(model, prompt, 20, seed=8))
    assert model.training  # generate runs in eval mode and restores the mode after


def test_a_model_that_is_not_a_language_model_is_refused():
    classify = lm("lstm", TaskSpec(name="parity", kind="classify", num_outputs=2, vocab_size=V))
    with pytest.raises(ValueError, match=r"^stream needs a \"tag\" task .*got kind 'classify'$"):
        classify.stream(tokens(1, 3))
    with pytest.raises(ValueError, match=r"^model is not a language model: task 'parity' \(classify\)"):
        generate(classify, tokens(1, 3), 3)
    tagger = lm("rnn", TaskSpec(name="pos", kind="tag", num_outputs=4, vocab_size=V))
    with pytest.raises(ValueError, match='gives 4 outputs, expected a "tag" task with num_outputs == vocab_size'):
        generate(tagger, tokens(1, 3), 3)
    with pytest.raises(ValueError, match=r"token id 11 is out of range"):
        generate(lm("rnn"), torch.tensor([[1, V]]), 3)
