"""Sampling from a language model that streams: the prompt once, then one token at a time with the state.

Memory per new token is constant (the recurrent state has a fixed size; there is no cache that grows
with the context), so the time per token does not depend on how long the context already is.

    next-token logits ℓ → ℓ / temperature → keep the top_k largest → keep the smallest set whose
    probabilities sum to ≥ top_p (nucleus) → sample (seeded `torch.Generator`); temperature 0 = argmax.

The model is any language model that streams: one whose forward(tokens, state) returns (logits, state)
(`xLSTMLM`, `xLSTMLarge`; vocabulary `model.config.vocab_size`), or which has stream(tokens, state) that
does (`lstmkit.models.SequenceModel` of a "tag" task with num_outputs == vocab_size; `model.spec`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit.nn.lm_inputs import check_tokens


def _check(max_new_tokens, temperature, top_k, top_p, eos_token, vocab_size: int) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens is {max_new_tokens!r}, expected an integer ≥ 0")
    if not temperature >= 0:
        raise ValueError(f"temperature is {temperature!r}, expected ≥ 0 (0 = greedy)")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k is {top_k!r}, expected a positive integer or None")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p is {top_p!r}, expected 0 < top_p ≤ 1 or None")
    if eos_token is not None and (not isinstance(eos_token, int) or not 0 <= eos_token < vocab_size):
        raise ValueError(f"eos_token is {eos_token!r}, expected a token id in [0, {vocab_size})")


def vocab_size_of(model: nn.Module) -> int:
    """The number of tokens the model reads and predicts: spec.vocab_size (with a task spec) or config.vocab_size."""
    spec = getattr(model, "spec", None)
    if spec is None:
        return model.config.vocab_size
    if spec.kind != "tag" or spec.vocab_size is None or spec.vocab_size != spec.num_outputs:
        reads = "vectors" if spec.vocab_size is None else f"{spec.vocab_size} token ids"
        gives = f"reads {reads} and gives {spec.num_outputs} outputs"
        raise ValueError(f"model is not a language model: task {spec.name!r} ({spec.kind}) {gives}, "
                         'expected a "tag" task with num_outputs == vocab_size')  # fmt: skip
    return spec.vocab_size


def sample(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None, generator) -> Tensor:
    """logits (B, V) -> token ids (B,)."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p  # the mass before this token already reaches p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), -torch.inf)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(
    model: nn.Module, prompt: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
    top_p: float | None = None, eos_token: int | None = None, seed: int | None = None,
) -> Tensor:  # fmt: skip
    """prompt (T,) or (B, T) ids -> the prompt followed by up to max_new_tokens new ids, same rank.

    Stops early once every row has produced `eos_token`; rows that stopped earlier are filled with it.
    The same seed gives the same tokens. The model runs in eval mode (no dropout) and is restored after.
    """
    vocab_size = vocab_size_of(model)
    _check(max_new_tokens, temperature, top_k, top_p, eos_token, vocab_size)
    unbatched = isinstance(prompt, Tensor) and prompt.dim() == 1
    tokens = check_tokens(prompt[None] if unbatched else prompt, vocab_size)
    step = getattr(model, "stream", model)  # (tokens (B, T), state) -> (logits (B, T, V), state)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        logits, state = step(tokens.to(device), None)
        out = [tokens.to(device)]
        finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=device)
        for _ in range(max_new_tokens):
            token = sample(logits[:, -1], temperature, top_k, top_p, generator)
            if eos_token is not None:
                token = token.masked_fill(finished, eos_token)
                finished |= token == eos_token
            out.append(token[:, None])
            if eos_token is not None and bool(finished.all()):
                break
            logits, state = step(token[:, None], state)
    finally:
        model.train(was_training)
    result = torch.cat(out, dim=1)
    return result[0] if unbatched else result
