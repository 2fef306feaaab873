"""Sampling from a language model that streams: the prompt once, then one token at a time with the state.

Memory per new token is constant (the recurrent state has a fixed size; there is no cache that grows
with the context), so the time per token does not depend on how long the context already is.

    next-token logits ℓ → (ℓ − max ℓ) / temperature → keep the top_k largest → keep the smallest set whose
    probabilities sum to ≥ top_p (nucleus) → sample (seeded `torch.Generator`); temperature 0 = argmax.

`stream_tokens` yields each new token as soon as it is sampled (so a caller can print text as it goes);
`generate` collects them after the prompt.

    for token in stream_tokens(model, prompt, 100, temperature=0.8, seed=0):   # token (B,)
        print(vocab.decode(token), end="", flush=True)

The model is any language model that streams: one whose forward(tokens, state) returns (logits, state)
(`xLSTMLM`, `xLSTMLarge`; vocabulary `model.config.vocab_size`), or which has stream(tokens, state) that
does (`lstmkit.models.SequenceModel` of a "tag" task with num_outputs == vocab_size; `model.spec`). After the
prompt the loop owns its state, so a model with decode_in_place(tokens, state) (`xLSTMLarge`) is stepped through
it: the same logits, the state overwritten instead of allocated anew each token. Only the prompt's last logits are
sampled from, so a model with prefill(tokens, state) -> (logits (B, 1, V), state) (`xLSTMLarge`) runs the prompt
through it: the head is spared at every other position.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from numbers import Integral, Real
from typing import NamedTuple

import torch
from torch import Tensor, nn

from lstmkit.nn.lm_inputs import check_tokens

MAX_NEW_TOKENS = 1_000_000
"""The most tokens one call generates: a million characters is a long book; `generate` keeps them all."""


class Sampling(NamedTuple):
    """How each new token is drawn from the next-token logits (`next_token_probabilities`)."""

    temperature: float
    """0: greedy (argmax); otherwise the logits are divided by it."""
    top_k: int | None
    """Keep only the k likeliest tokens; None: all."""
    top_p: float | None
    """Keep the smallest set of likeliest tokens whose probabilities sum to ≥ p; None: all."""


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check(max_new_tokens, *, temperature, top_k, top_p, eos_token, seed, vocab_size: int) -> None:
    if not _is_int(max_new_tokens) or not 0 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens is {max_new_tokens!r}, expected an integer from 0 to {MAX_NEW_TOKENS:,}")
    if isinstance(temperature, bool) or not isinstance(temperature, Real) or not 0 <= temperature < math.inf:
        raise ValueError(f"temperature is {temperature!r}, expected a finite number ≥ 0 (0 = greedy)")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k is {top_k!r}, expected a positive integer or None")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, Real) or not 0 < top_p <= 1):
        raise ValueError(f"top_p is {top_p!r}, expected 0 < top_p ≤ 1 or None")
    if eos_token is not None and (not _is_int(eos_token) or not 0 <= eos_token < vocab_size):
        raise ValueError(f"eos_token is {eos_token!r}, expected a token id in [0, {vocab_size})")
    if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**64):
        raise ValueError(f"seed is {seed!r}, expected an integer from 0 to 2**64 - 1, or None")


def vocab_size_of(model: nn.Module) -> int:
    """The number of tokens the model reads and predicts: spec.vocab_size (with a task spec) or config.vocab_size."""
    spec = getattr(model, "spec", None)
    if spec is None:
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
        if not _is_int(vocab_size) or vocab_size < 1:
            raise ValueError(
                f"model is a {type(model).__name__}, which generate cannot drive: expected a language "
                "model with forward(tokens, state) -> (logits, state) and config.vocab_size (xLSTMLM, "
                'xLSTMLarge) or a SequenceModel of a "tag" task'
            )
        return int(vocab_size)
    if spec.kind != "tag" or spec.vocab_size is None or spec.vocab_size != spec.num_outputs:
        reads = "vectors" if spec.vocab_size is None else f"{spec.vocab_size} token ids"
        gives = f"reads {reads} and gives {spec.num_outputs} outputs"
        raise ValueError(
            f"model is not a language model: task {spec.name!r} ({spec.kind}) {gives}, "
            'expected a "tag" task with num_outputs == vocab_size'
        )
    return spec.vocab_size


def _step_function(model: object) -> Callable:
    """(tokens (B, T), state) -> (logits (B, T, V), state): model.stream where it has one, else model itself."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model is a {type(model).__name__}, expected a language model (a torch.nn.Module)")
    return getattr(model, "stream", model)


def _checked_logits(out: object, batch: int, vocab_size: int, new_token: int) -> Tensor:
    """The last position's logits (B, V) of a step's output, or one line saying what the model returned instead."""
    logits = out[0] if isinstance(out, tuple) and len(out) == 2 else None
    if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.shape[0] != batch or logits.shape[2] != vocab_size:
        got = f"logits of shape {tuple(logits.shape)}" if isinstance(logits, Tensor) else type(out).__name__
        raise ValueError(f"the model returned {got}, expected (logits (B={batch}, T, V={vocab_size}), state)")
    last = logits[:, -1]
    if torch.isnan(last).any() or (last == math.inf).any():
        raise ValueError(
            f"the model's logits for new token {new_token} are not finite (nan or +inf), expected finite "
            "numbers: check the model's weights"
        )
    return last


def next_token_probabilities(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None) -> Tensor:
    """logits (B, V) -> float64 probabilities (B, V) to sample from (temperature > 0; 0 is argmax in `sample`).

    In float64 and from ℓ − max ℓ, so the likeliest token has logit 0: a tiny temperature sends every other
    logit to −∞ (greedy, ties shared) instead of overflowing, and top_p always keeps the likeliest token
    however small p is.
    """
    logits = logits.double()
    logits = (logits - logits.max(-1, keepdim=True).values) / temperature  # (B, V), max 0
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if top_p is not None and top_p < 1:
        p_sorted, order = logits.softmax(-1).sort(-1, descending=True)
        drop_sorted = p_sorted.cumsum(-1) - p_sorted >= top_p  # the mass before this token already reaches p
        drop_sorted[:, 0] = False  # the likeliest token stays, whatever rounding does to a tiny p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), -torch.inf)
    return logits.softmax(-1)


def sample(logits: Tensor, sampling: Sampling, generator) -> Tensor:
    """logits (B, V) -> token ids (B,): argmax for temperature 0, else drawn from `next_token_probabilities`."""
    if sampling.temperature == 0:
        return logits.argmax(-1)
    probabilities = next_token_probabilities(logits, *sampling)
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0]


def stream_tokens(
    model: nn.Module,
    prompt: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token: int | None = None,
    seed: int | None = None,
) -> Iterator[Tensor]:
    """prompt (T,) or (B, T) ids -> an iterator over up to max_new_tokens new tokens, each yielded as it is sampled:
    a 0-d tensor for an unbatched prompt, else (B,).

    Every argument is checked here, before the first token. Stops early once every row has produced
    `eos_token`; rows that stopped earlier get it again. The same seed gives the same tokens. The model
    runs in eval mode (no dropout) and is restored once the iterator is exhausted or closed.
    """
    step = _step_function(model)
    vocab_size = vocab_size_of(model)
    _check(
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_token=eos_token,
        seed=seed,
        vocab_size=vocab_size,
    )
    if not isinstance(prompt, Tensor):
        raise ValueError(f"prompt is a {type(prompt).__name__}, expected a tensor of token ids, (T,) or (B, T)")
    unbatched = prompt.dim() == 1
    if prompt.dim() in (1, 2) and prompt.shape[-1] == 0:
        raise ValueError("prompt has 0 tokens, expected at least 1 (the first new token is sampled after it)")
    tokens = check_tokens(prompt[None] if unbatched else prompt, vocab_size)
    if tokens.shape[0] == 0:
        raise ValueError("prompt has 0 rows, expected at least 1")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else tokens.device
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    sampled = _sampled(
        model,
        step,
        tokens.to(device),
        max_new_tokens,
        sampling=Sampling(temperature, top_k, top_p),
        eos_token=eos_token,
        generator=generator,
        vocab_size=vocab_size,
    )
    return (token[0] for token in sampled) if unbatched else sampled


@torch.no_grad()
def _sampled(
    model, step, tokens, max_new_tokens, *, sampling: Sampling, eos_token, generator, vocab_size
) -> Iterator[Tensor]:
    """The loop of `stream_tokens`: prompt once, then sample, yield, feed the token back with the state."""
    B = tokens.shape[0]
    was_training = model.training
    model.eval()
    try:
        prompt_step = getattr(model, "prefill", step) if step is model else step  # the last position's logits
        try:
            out = prompt_step(tokens, None)
        except TypeError as e:  # e.g. a forward without a state argument
            raise ValueError(f"the model cannot be called as (tokens, state) -> (logits, state): {e}") from None
        logits = _checked_logits(out, B, vocab_size, 1)
        state = out[1]
        finished = torch.zeros(B, dtype=torch.bool, device=tokens.device)
        advance = getattr(model, "decode_in_place", step) if step is model else step  # the loop owns its state
        for n in range(max_new_tokens):
            token = sample(logits, sampling, generator)
            if eos_token is not None:
                token = token.masked_fill(finished, eos_token)
                finished |= token == eos_token
            yield token
            if n + 1 == max_new_tokens or (eos_token is not None and bool(finished.all())):
                break
            out = advance(token[:, None], state)
            logits, state = _checked_logits(out, B, vocab_size, n + 2), out[1]
    finally:
        model.train(was_training)


def generate(
    model: nn.Module,
    prompt: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token: int | None = None,
    seed: int | None = None,
) -> Tensor:
    """prompt (T,) or (B, T) ids -> the prompt followed by up to max_new_tokens new ids, same rank.

    The tokens of `stream_tokens`, collected: stops early once every row has produced `eos_token`; rows that
    stopped earlier are filled with it. The same seed gives the same tokens.
    """
    tokens = stream_tokens(
        model, prompt, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, eos_token=eos_token, seed=seed
    )
    new = list(tokens)
    if not new:
        return prompt.long()
    axis = prompt.dim() - 1
    return torch.cat([prompt.long().to(new[0].device), torch.stack(new, dim=axis)], dim=axis)
