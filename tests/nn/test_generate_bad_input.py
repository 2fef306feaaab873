"""Sampling at the extremes, models generate cannot drive, bad prompts, and text that streams as it is made.

Extreme but valid values (a temperature of 1e-45, top_p of 1e-300, top_k beyond the vocabulary) sample as their
limits do; invalid ones are refused with one line naming the argument. The next-token distribution is compared
with a slow obvious computation in float64.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lstmkit.cli import main
from lstmkit.models import ModelConfig, SequenceModel
from lstmkit.nn.generate import MAX_NEW_TOKENS, generate, next_token_probabilities, stream_tokens
from lstmkit.tasks.base import TaskSpec
from tests.helpers import CACHE, lstmkit, one_line

V = 11
LM = TaskSpec(name="lm", kind="tag", num_outputs=V, vocab_size=V)
generate_module = importlib.import_module("lstmkit.nn.generate")  # lstmkit.nn.generate is also the function


def lm(name: str = "lstm"):
    torch.manual_seed(0)
    return SequenceModel(ModelConfig(name, hidden_size=16, num_layers=1), LM).double().eval()


def prompt(batch: int = 2, steps: int = 4) -> torch.Tensor:
    return torch.randint(0, V, (batch, steps), generator=torch.Generator().manual_seed(1))


class Counter(nn.Module):
    """A parameterless language model: the next token is the last one + 1 (mod V), with confidence `margin`.

    It counts its calls, so a test can see how far generation had gone when a token came out."""

    def __init__(self, margin: float = 5.0) -> None:
        super().__init__()
        self.config = SimpleNamespace(vocab_size=V)
        self.margin = margin
        self.calls = 0

    def forward(self, tokens: torch.Tensor, state):
        self.calls += 1
        logits = self.margin * nn.functional.one_hot((tokens + 1) % V, V).double()  # (B, T, V)
        return logits, state


# ---- extreme values that are valid sample as their limits ----------------------------------------------------


def test_extreme_but_valid_values_sample_as_their_limits():
    model, x = lm(), prompt()
    greedy = generate(model, x, 8, temperature=0)
    tiny = (
        {"temperature": 1e-45},
        {"temperature": 1e-300},
        {"temperature": 5e-324},
        {"top_p": 1e-300},
        {"top_p": 1e-45, "temperature": 3.0},
        {"top_k": 1, "temperature": 1e-45},
    )
    for kwargs in tiny:
        assert torch.equal(generate(model, x, 8, seed=3, **kwargs), greedy), f"{kwargs} should be greedy"
    free = generate(model, x, 8, seed=3)
    for top_k in (V, V + 1, 10**9):
        assert torch.equal(generate(model, x, 8, seed=3, top_k=top_k), free), f"top_k={top_k} keeps every token"
    assert torch.equal(generate(model, x, 8, seed=3, top_p=1.0), free)
    hot = generate(model, x, 8, seed=3, temperature=1e300)
    assert hot.shape == free.shape and int(hot.max()) < V


def slow_probabilities(logits: list[float], temperature: float, top_k: int | None, top_p: float | None) -> list[float]:
    """The definition, one token at a time in Python floats."""
    scaled = [value / temperature for value in logits]
    top = max(scaled)
    weights = [math.exp(value - top) for value in scaled]
    ranked = sorted(range(len(logits)), key=lambda k: -scaled[k])
    kept = set(ranked if top_k is None else ranked[:top_k])
    if top_p is not None:
        total = sum(weights[k] for k in kept)
        mass, nucleus = 0.0, set()
        for k in (k for k in ranked if k in kept):
            if nucleus and mass >= top_p:
                break
            nucleus.add(k)
            mass += weights[k] / total
        kept = nucleus
    total = sum(weights[k] for k in kept)
    return [weights[k] / total if k in kept else 0.0 for k in range(len(logits))]


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, None, None), (0.7, 3, None), (1.3, None, 0.6), (0.5, 4, 0.9), (2.0, 100, 1e-300), (1e-45, None, None)],
)
def test_next_token_probabilities_equal_the_definition(temperature, top_k, top_p):
    logits = torch.randn(3, V, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3
    got = next_token_probabilities(logits.float(), temperature, top_k, top_p)
    for row in range(3):
        want = slow_probabilities(logits.float()[row].tolist(), temperature, top_k, top_p)
        want = torch.tensor(want, dtype=torch.float64)
        diff = (got[row] - want).abs().max().item()
        assert diff < 1e-12, f"row {row}: largest difference {diff:.3g}"


def test_a_tiny_temperature_shares_a_tie_and_nothing_else():
    logits = torch.tensor([[1.0, 3.0, 3.0, -2.0]])
    assert next_token_probabilities(logits, 1e-45, None, None).tolist() == [[0.0, 0.5, 0.5, 0.0]]


# ---- invalid values: one line naming the argument ------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("temperature", math.inf),
        ("temperature", "0.5"),
        ("temperature", True),
        ("top_p", True),
        ("top_p", "1"),
        ("top_k", True),
        ("max_new_tokens", MAX_NEW_TOKENS + 1),
        ("max_new_tokens", True),
        ("seed", 10**23),
        ("seed", -1),
        ("seed", 1.5),
        ("eos_token", True),
    ],
)
def test_invalid_values_are_refused_in_one_line(argument, value):
    kwargs = {"max_new_tokens": 3, argument: value}
    with pytest.raises(ValueError) as caught:
        generate(lm("gru"), prompt(), **kwargs)
    one_line(caught, f"{argument} is {value!r}", "expected")


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (torch.zeros(0, dtype=torch.long), ["prompt has 0 tokens"]),
        (torch.zeros(2, 0, dtype=torch.long), ["prompt has 0 tokens"]),
        (torch.zeros(0, 3, dtype=torch.long), ["prompt has 0 rows"]),
        ([1, 2, 3], ["prompt is a list", "expected a tensor"]),
    ],
    ids=["empty", "empty rows", "no rows", "a list"],
)
def test_bad_prompts(given, words):
    with pytest.raises(ValueError) as caught:
        generate(lm("rnn"), given, 3)
    one_line(caught, *words)


# ---- models generate cannot drive ----------------------------------------------------------------------------


class NoState(Counter):
    def forward(self, tokens):  # no state argument
        return super().forward(tokens, None)


class LogitsOnly(Counter):
    def forward(self, tokens, state):
        return super().forward(tokens, state)[0]


class WrongVocabulary(Counter):
    def forward(self, tokens, state):
        return torch.zeros(*tokens.shape, V + 1), state


class NotFinite(Counter):
    def forward(self, tokens, state):
        logits, state = super().forward(tokens, state)
        return logits * (math.nan if self.calls > 2 else 1.0), state


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (nn.LSTM(3, 4), ["model is a LSTM, which generate cannot drive", "config.vocab_size"]),
        (object(), ["model is a object, expected a language model"]),
        (NoState(), ["cannot be called as (tokens, state) -> (logits, state)"]),
        (LogitsOnly(), ["the model returned Tensor, expected (logits (B=2, T, V=11), state)"]),
        (WrongVocabulary(), ["the model returned logits of shape (2, 4, 12)"]),
        (NotFinite(), ["the model's logits for new token 3 are not finite"]),
    ],
    ids=["torch LSTM", "not a module", "no state", "logits only", "wrong vocabulary", "nan logits"],
)
def test_a_model_generate_cannot_drive(model, words):
    with pytest.raises(ValueError) as caught:
        generate(model, prompt(), 5)
    one_line(caught, *words)


# ---- streaming -----------------------------------------------------------------------------------------------


def test_stream_tokens_yields_each_token_before_the_next_is_computed():
    model = Counter().train()
    tokens = stream_tokens(model, torch.tensor([3]), 4, temperature=0)
    assert model.calls == 0, "nothing runs before the first token is asked for"
    first = next(tokens)
    assert first.shape == () and int(first) == 4 and model.calls == 1, "the prompt's step alone gives the first token"
    assert not model.training, "eval mode while generating"
    assert [int(t) for t in tokens] == [5, 6, 7] and model.calls == 4, "no step after the last token"
    assert model.training, "the mode is restored once the stream ends"
    assert generate(Counter(), torch.tensor([[3], [9]]), 3, temperature=0).tolist() == [[3, 4, 5, 6], [9, 10, 0, 1]]


def test_stream_and_generate_give_the_same_tokens():
    model, x = lm("gru"), prompt()
    streamed = torch.stack(list(stream_tokens(model, x, 6, seed=4)), dim=1)
    assert torch.equal(torch.cat([x, streamed], dim=1), generate(model, x, 6, seed=4))


# ---- lstmkit generate ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bard(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("generate") / "bard"
    code = main(
        [
            "train",
            "--task",
            "shakespeare",
            "--task-arg",
            "seq_len=16",
            "--cache-dir",
            str(CACHE),
            "--hidden-size",
            "8",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--eval-every",
            "2",
            "--eval-batches",
            "1",
            "--quiet",
            "--run-dir",
            str(run),
        ]
    )
    assert code == 0
    return run


class Recorder:
    """Standard output that records each write with how many tokens had been sampled when it came."""

    def __init__(self, sampled: list[int]) -> None:
        self.sampled = sampled
        self.writes: list[tuple[int, str]] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append((self.sampled[0], text))
        return len(text)

    def flush(self) -> None:
        self.flushes += 1


def test_generate_prints_each_character_as_it_is_sampled(bard, monkeypatch):
    sampled = [0]
    real_sample = generate_module.sample

    def counted(*args):
        sampled[0] += 1
        return real_sample(*args)

    monkeypatch.setattr(generate_module, "sample", counted)
    out = Recorder(sampled)
    monkeypatch.setattr("sys.stdout", out)
    assert main(["generate", str(bard), "--prompt", "KING", "--tokens", "5", "--seed", "1"]) == 0
    when = [n for n, _ in out.writes]
    assert out.writes[0] == (0, "KING"), "the prompt comes first, before any sampling"
    assert when == [0, 1, 2, 3, 4, 5, 5], "each character is written once it is sampled, before the next one"
    assert all(len(text) == 1 for _, text in out.writes[1:]) and out.writes[-1][1] == "\n"
    assert out.flushes >= len(out.writes), "every write is flushed"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--tokens", "-1"], ["--tokens is -1, expected 0 to 1,000,000"]),
        (["--tokens", str(10**12)], ["--tokens is 1000000000000"]),
        (["--prompt", ""], ["--prompt is empty"]),
        (["--prompt", "KING ☃"], ["--prompt has characters outside the vocabulary of 83: '☃'"]),
        (["--temperature", "inf"], ["temperature is inf"]),
        (["--seed", "-5"], ["seed is -5"]),
    ],
)
def test_cli_refuses_in_one_line_before_writing(bard, capsys, extra, words):
    code, out, err = lstmkit(capsys, "generate", bard, *extra)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


def test_cli_tiny_temperature_and_top_p_are_greedy(bard, capsys):
    greedy = lstmkit(capsys, "generate", bard, "--tokens", 20, "--temperature", 0)
    assert greedy[0] == 0
    for extra in (["--temperature", "1e-45"], ["--top-p", "1e-300"]):
        assert lstmkit(capsys, "generate", bard, "--tokens", 20, "--seed", 2, *extra) == greedy, extra
