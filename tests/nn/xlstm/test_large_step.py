"""xLSTMLarge's one-token C++ decode step (`lstmkit.nn.xlstm.large_step`) == the Python path (`slow_forward`),
token by token with the state carried: float64 to 1e-12, float32 to float32's rounding, bfloat16 as close to a
float64 model as the slow bfloat16 path is; batches that do not fill the kernels' blocks, widths that do not fill a
vector, biases, no out norm, no caps, a fresh state, in place; where it applies and where not; greedy generation
gives the same tokens either way; a failed build falls back."""

from __future__ import annotations

import pytest
import torch

from lstmkit.nn.generate import generate
from lstmkit.nn.lm_inputs import LMState
from lstmkit.nn.xlstm import large_step
from lstmkit.nn.xlstm.large import xLSTMLarge, xLSTMLargeConfig
from tests.helpers import assert_close, peak

pytestmark = pytest.mark.skipif(large_step.extension() is None, reason="the C++ step could not be built here")
V = 61


def model(dtype=torch.float64, seed: int = 0, **fields) -> xLSTMLarge:
    """A random model (every parameter random around its init's scale, norms around 1): hides nothing."""
    config = {"vocab_size": V, "embedding_dim": 32, "num_heads": 2, "num_blocks": 2} | fields
    ours = xLSTMLarge(xLSTMLargeConfig(**config), dtype=torch.float64).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_((1.0 if "norm" in name else 0.0) + noise / p.shape[-1] ** 0.5)
    return ours.to(dtype)


def prompt(batch: int, T: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (batch, T), generator=torch.Generator().manual_seed(seed))


def steps(batch: int, n: int = 5, seed: int = 2) -> list[torch.Tensor]:
    return list(torch.randint(0, V, (n, batch, 1), generator=torch.Generator().manual_seed(seed)))


@torch.no_grad()
def both_paths(ours: xLSTMLarge, batch: int, fresh: bool = False):
    """Logits and states of every step, fast (forward) and slow (slow_forward), each carrying its own state."""
    state = None if fresh else ours.slow_forward(prompt(batch))[1]
    fast, slow = [], []
    fast_state = slow_state = state
    for token in steps(batch):
        assert large_step.fast_step_usable(ours, token, None, None)
        logits, fast_state = ours(token, fast_state)
        fast.append((logits, fast_state))
        logits, slow_state = ours.slow_forward(token, slow_state)
        slow.append((logits, slow_state))
    return fast, slow


CASES = {
    "plain": {},
    "bias": {"use_bias": True},
    "odd widths": {"embedding_dim": 40, "num_heads": 2},  # K = 40: a partial vector in every product
    "4 heads, no caps, no out norm": {
        "num_heads": 4,
        "gate_soft_cap": None,
        "output_logit_soft_cap": None,
        "add_out_norm": False,
    },
    "one head, 3 blocks": {"num_heads": 1, "num_blocks": 3, "qk_dim_factor": 0.25},
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("batch", [1, 3, 6])
def test_float64_equals_the_python_path(case, batch):
    fast, slow = both_paths(model(**CASES[case]), batch)
    for t, ((logits, state), (expected, expected_state)) in enumerate(zip(fast, slow, strict=True)):
        assert_close(logits, expected, f"step {t} logits", atol=1e-12 * peak(expected))
        for b, (s, e) in enumerate(zip(state.blocks, expected_state.blocks, strict=True)):
            assert_close(s, e, f"step {t} block {b}", atol=1e-12 * peak(e.C))


@pytest.mark.parametrize("batch", [1, 5])
def test_from_a_fresh_state(batch):
    fast, slow = both_paths(model(), batch, fresh=True)
    for (logits, state), (expected, expected_state) in zip(fast, slow, strict=True):
        assert_close(logits, expected, "logits", atol=1e-12 * peak(expected))
        assert_close(state, expected_state, "state", atol=1e-12)


@pytest.mark.parametrize("case", ["plain", "odd widths"])
def test_float32_is_close(case):
    fast, slow = both_paths(model(torch.float32, **CASES[case]), 3)
    for (logits, state), (expected, expected_state) in zip(fast, slow, strict=True):
        assert logits.dtype == torch.float32
        assert_close(logits, expected, "logits", atol=2e-5 * peak(expected))
        for s, e in zip(state.blocks, expected_state.blocks, strict=True):
            assert_close(s, e, "state", atol=2e-5 * peak(e.C))


@pytest.mark.parametrize("case", ["plain", "bias", "odd widths"])
def test_bfloat16_is_as_close_to_float64_as_the_python_path(case):
    """bfloat16 rounds every stored intermediate: the fast path rounds where the slow one does but computes the
    norms and gates in float32, so it is not bit-equal; it must be about as far from float64 as the slow path
    (measured on these models: both up to ~10 % of the largest logit after a few steps, the fast one no further)."""
    reference, _ = both_paths(model(**CASES[case]), 3)
    fast, slow = both_paths(model(torch.bfloat16, **CASES[case]), 3)
    for t, ((logits, _), (slow_logits, _), (exact, _)) in enumerate(zip(fast, slow, reference, strict=True)):
        assert logits.dtype == torch.bfloat16
        fast_error = float((logits.double() - exact).abs().max())
        slow_error = float((slow_logits.double() - exact).abs().max())
        assert fast_error <= 1.5 * slow_error + 1e-2 * peak(exact), f"step {t}: fast {fast_error}, slow {slow_error}"
        assert_close(logits.double(), slow_logits.double(), f"step {t} fast vs slow", atol=0.1 * peak(exact))


def test_the_state_passed_in_is_not_changed_and_in_place_is_the_same():
    ours = model()
    with torch.no_grad():
        _, state = ours(prompt(2))
        kept = LMState(tuple(type(s)(*(t.clone() for t in s)) for s in state.blocks))
        token = steps(2)[0]
        logits, new = ours(token, state)
        assert_close(state, kept, "state after the step", atol=0.0)
        logits_in_place, same = large_step.decode_step(ours, token, state, out=state)
    assert same is state
    assert_close(logits_in_place, logits, "logits in place", atol=0.0)
    assert_close(state, new, "state in place", atol=0.0)


def test_where_it_does_not_apply_the_python_path_runs():
    ours = model(torch.float32)
    token = steps(2)[0]
    _, state = ours(prompt(2))
    logits, _ = ours(token, state)  # gradients wanted
    assert logits.requires_grad
    with torch.no_grad():
        assert not large_step.fast_step_usable(ours, prompt(2), None, None)  # a prompt: the chunkwise form
        assert not large_step.fast_step_usable(ours, token, torch.tensor([1, 1]), None)
        assert not large_step.fast_step_usable(ours, token, None, torch.zeros(2, 1, dtype=torch.bool))
        assert large_step.fast_step_usable(ours, token, None, None)
        seen = []
        handle = ours.blocks[1].layer.q.register_forward_hook(lambda *args: seen.append(1))
        assert not large_step.fast_step_usable(ours, token, None, None)
        ours(token, state)
        handle.remove()
        assert seen == [1]
        assert not large_step.fast_step_usable(ours.half(), token, None, None)


def test_a_bad_state_is_refused_in_one_line():
    ours = model()
    with torch.no_grad():
        _, state = ours(prompt(3))
        with pytest.raises(ValueError, match="block 0"):
            ours(steps(2)[0], state)  # a state of 3 rows for 2
        for name, value in (("C", float("nan")), ("n", float("inf")), ("m", float("nan"))):
            bad = LMState(tuple(s._replace(**{name: s._asdict()[name].clone().fill_(value)}) for s in state.blocks))
            with pytest.raises(ValueError, match=f"block 0 state.{name}"):
                ours(steps(3)[0], bad)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_greedy_generation_is_the_same(dtype):
    ours = model(dtype, **CASES["bias"])
    fast = generate(ours, prompt(2), 12, temperature=0)
    handle = ours.register_forward_pre_hook(lambda *args: None)  # a hook: every step takes the Python path
    slow = generate(ours, prompt(2), 12, temperature=0)
    handle.remove()
    assert torch.equal(fast, slow), f"{fast} vs {slow}"


def test_a_failed_build_falls_back(monkeypatch):
    ours = model()
    monkeypatch.setattr(large_step, "extension", lambda: None)
    token = steps(1)[0]
    with torch.no_grad():
        assert not large_step.fast_step_usable(ours, token, None, None)
        logits, _ = ours(token)
        expected, _ = ours.slow_forward(token)
    assert_close(logits, expected, atol=0.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize(("batch", "K"), [(1, 64), (1, 40), (3, 100), (5, 33), (9, 128)])
def test_the_matrix_vector_kernel_is_a_matrix_product(dtype, batch, K):
    """y = x Wᵀ for widths that fill no vector, batches past a block of 4, rows of any count."""
    g = torch.Generator().manual_seed(K)
    W = torch.randn(37, K, generator=g, dtype=torch.float64)
    x = torch.randn(batch, K, generator=g, dtype=torch.float64)
    W, x = W.to(dtype), x.to(dtype)
    expected = x.double() @ W.double().T  # the products of the stored values, exactly
    y = large_step.extension().matvec(x, W)
    tolerance = {torch.bfloat16: 1e-2, torch.float32: 1e-5, torch.float64: 1e-12}[dtype]  # bfloat16: y is rounded
    assert_close(y.double(), expected, f"{dtype} B{batch} K{K}", atol=tolerance * peak(expected))


def test_decode_in_place_overwrites_the_state_with_what_forward_returns():
    ours = model(**CASES["bias"])
    with torch.no_grad():
        _, state = ours(prompt(3))
        token = steps(3)[0]
        expected, expected_state = ours(token, state)
        logits, same = ours.decode_in_place(token, state)
    assert all(
        a is b for block, new in zip(state.blocks, same.blocks, strict=True) for a, b in zip(block, new, strict=True)
    )
    assert_close(logits, expected, "logits", atol=0.0)
    assert_close(state, expected_state, "state", atol=0.0)


def test_decode_in_place_leaves_a_strided_state_alone():
    ours = model()
    with torch.no_grad():
        _, state = ours(prompt(2))
        strided = LMState(
            tuple(type(s)(s.C.transpose(-1, -2).contiguous().transpose(-1, -2), s.n, s.m) for s in state.blocks)
        )
        kept = LMState(tuple(type(s)(*(t.clone() for t in s)) for s in strided.blocks))
        token = steps(2)[0]
        logits, new = ours.decode_in_place(token, strided)
        expected, expected_state = ours.slow_forward(token, state)
    assert_close(strided, kept, "the strided state", atol=0.0)
    assert_close(logits, expected, "logits", atol=1e-12 * peak(expected))
    assert_close(new, expected_state, "state", atol=1e-12)
