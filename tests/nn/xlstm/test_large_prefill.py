"""xLSTMLarge.prefill (the prompt's last logits only) == the last row of forward's logits, float64 to 1e-12, with
the same state; caps or none, out norm or none, batches, a prompt of one token (the C++ step), prompts longer than
a chunk with a remainder, a carried state; the in-place soft cap in pieces gives `soft_cap`'s numbers exactly;
`generate` runs the prompt through it (the head sees one row) and its
tokens are those of the full-logits prompt step, greedy and sampled. And the decode step's gathered products
split between 2 threads give 1 thread's numbers."""

from __future__ import annotations

import pytest
import torch

from lstmkit.nn.generate import generate
from lstmkit.nn.xlstm import large_step
from lstmkit.nn.xlstm.large import CAP_PIECE, soft_cap, soft_cap_logits, xLSTMLarge
from tests.helpers import assert_close
from tests.nn.xlstm.test_large_step import V, prompt
from tests.nn.xlstm.test_large_step import model as random_model


def model(dtype=torch.float64, seed: int = 0, **fields) -> xLSTMLarge:
    """test_large_step's random model, with chunks of 16 (a 7-token prompt is one chunk, longer ones several)."""
    return random_model(dtype, seed, **({"chunk_size": 16} | fields))


CASES = {
    "plain": ({}, 1, 7),
    "no caps": ({"gate_soft_cap": None, "output_logit_soft_cap": None}, 1, 7),
    "no out norm, bias": ({"add_out_norm": False, "use_bias": True}, 2, 7),
    "batch 3": ({}, 3, 5),
    "one token (the C++ step)": ({}, 2, 1),
    "chunks and a remainder": ({}, 2, 37),
}


def assert_states_equal(a, b) -> None:
    for block_a, block_b in zip(a.blocks, b.blocks, strict=True):
        for x, y in zip(block_a, block_b, strict=True):
            assert_close(x, y, atol=1e-12, rtol=0)


@pytest.mark.parametrize("case", CASES)
@torch.no_grad()
def test_prefill_is_the_last_row_of_forward(case: str) -> None:
    fields, batch, T = CASES[case]
    ours = model(**fields)
    tokens = prompt(batch, T)
    logits, state = ours(tokens)
    last, prefill_state = ours.prefill(tokens)
    assert last.shape == (batch, 1, V)
    assert_close(last, logits[:, -1:], atol=1e-12, rtol=0)
    assert_states_equal(prefill_state, state)


@torch.no_grad()
def test_prefill_carries_a_state() -> None:
    ours = model()
    state = ours(prompt(2, 9))[1]
    tokens = prompt(2, 20, seed=3)
    logits, after = ours(tokens, state)
    last, prefill_after = ours.prefill(tokens, state)
    assert_close(last, logits[:, -1:], atol=1e-12, rtol=0)
    assert_states_equal(prefill_after, after)


def test_prefill_keeps_gradients() -> None:
    ours = model()
    tokens = prompt(1, 7)
    ours.prefill(tokens)[0].sum().backward()
    assert ours.blocks[0].layer.q.weight.grad is not None


def test_generate_runs_the_prompt_through_prefill() -> None:
    ours = model()
    rows = []
    hook = ours.head.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[1]))
    generate(ours, prompt(2, 12), 3, temperature=0)
    hook.remove()
    assert rows == [1, 1, 1]  # the prompt's head sees its last position only, then one row per new token


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_generate_tokens_unchanged(dtype, temperature: float) -> None:
    ours = model(dtype)
    tokens = prompt(2, 21)
    new = generate(ours, tokens, 6, temperature=temperature, seed=5)
    ours.prefill = ours.forward  # the prompt step with every position's logits, as before prefill
    assert torch.equal(generate(ours, tokens, 6, temperature=temperature, seed=5), new)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 7, 61), (2, 3, CAP_PIECE // 3 + 5)])  # inside one piece; across pieces
def test_soft_cap_in_pieces_is_soft_cap(dtype, shape) -> None:
    logits = (torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 40).to(dtype)
    expected = soft_cap(logits, 30.0)
    assert torch.equal(soft_cap_logits(logits.clone(), 30.0), expected)
    strided = logits.clone().transpose(0, 1)  # not contiguous: one pass
    assert torch.equal(soft_cap_logits(strided, 30.0), expected.transpose(0, 1))


@pytest.mark.skipif(large_step.extension() is None, reason="the C++ step could not be built here")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@torch.no_grad()
def test_decode_split_among_threads_is_decode_on_one(dtype) -> None:
    """The layer input's six products as one task over their rows (`gemv_gathered` in csrc/large_step.cpp): at
    E = 768 the task has 2312 rows of 768 weights, past the grain, so 2 threads split it; the numbers are 1 thread's."""
    ours = model(dtype, embedding_dim=768, num_heads=4, num_blocks=1)
    state = ours.slow_forward(prompt(3, 4))[1]
    token = prompt(3, 1, seed=4)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ours(token, state)
        torch.set_num_threads(2)
        two = ours(token, state)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0])
    for block_one, block_two in zip(one[1].blocks, two[1].blocks, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(block_one, block_two, strict=True))
    assert_close(two[0], ours.slow_forward(token, state)[0], atol=0.2 if dtype == torch.bfloat16 else 1e-4)
