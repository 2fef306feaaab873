"""xLSTMLM's one-token C++ step (`lstmkit.nn.xlstm.lm_step`) equals the Python path, and is used only where exact.

The Python path is the reference: `xLSTMLM.forward` with `fast_step_usable` patched to False.
"""

from __future__ import annotations

import pytest
import torch

import lstmkit.nn.xlstm.lm as lm
from lstmkit.nn import xLSTMConfig, xLSTMLM
from lstmkit.nn.xlstm import lm_step

pytestmark = pytest.mark.skipif(lm_step.extension() is None, reason="the C++ step could not be built")

V = 40


def model_for(blocks: str, dtype=torch.float64, seed: int = 0, **config) -> xLSTMLM:
    """A small model with every weight perturbed, so that zero-initialised parts (R, gates) matter."""
    torch.manual_seed(seed)
    model = xLSTMLM(xLSTMConfig(vocab_size=V, embedding_dim=32, blocks=blocks, **config), dtype=dtype).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return model


def slow(model, tokens, state=None, **masks):
    original = lm.fast_step_usable
    lm.fast_step_usable = lambda *args: False
    try:
        return model(tokens, state, **masks)
    finally:
        lm.fast_step_usable = original


class Counter:
    """Counts the C++ steps taken (patched over `lm.lm_step`)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        monkeypatch.setattr(lm, "lm_step", self)

    def __call__(self, *args):
        self.calls += 1
        return lm_step.lm_step(*args)


def leaves(state):
    return [t for t in torch.utils._pytree.tree_leaves(state) if t is not None]


def largest_difference(a, b) -> float:
    pairs = zip(leaves(a), leaves(b), strict=True)
    return max((x - y).abs().max().item() if x.numel() else 0.0 for x, y in pairs)


@pytest.mark.parametrize(
    ("blocks", "config"),
    [
        ("msms", {}),
        ("mm", {}),
        ("ss", {}),
        ("sm", {"slstm_conv_kernel": 0, "bias": True, "final_norm": False, "tie_weights": True}),
        ("ms", {"mlstm_conv_kernel": 1, "ffn_activation": "selu", "mlstm_heads": 2, "slstm_heads": 2}),
        ("s", {"ffn_activation": "relu^2"}),
        ("s", {"ffn_activation": "swish", "slstm_conv_kernel": 1}),
    ],
)
def test_fast_step_equals_python_path_token_by_token(blocks, config, monkeypatch):
    model = model_for(blocks, **config)
    counter = Counter(monkeypatch)
    with torch.no_grad():
        _, state = model(torch.randint(0, V, (3, 6)))  # a prompt through the chunkwise path, then steps
        fast_state = slow_state = state
        for step in range(8):
            token = torch.randint(0, V, (3, 1))
            before = [t.clone() for t in leaves(fast_state)]
            fast_logits, new_fast = model(token, fast_state)
            assert largest_difference(before, fast_state) == 0, "the state passed in was changed"
            slow_logits, slow_state = slow(model, token, slow_state)
            fast_state = new_fast
            difference = max((fast_logits - slow_logits).abs().max().item(), largest_difference(fast_state, slow_state))
            assert difference < 1e-12, f"step {step}: largest difference {difference:.3g}"
            assert type(fast_state) is type(slow_state)
            assert [type(s) for s in fast_state.blocks] == [type(s) for s in slow_state.blocks]
    assert counter.calls == 8


def test_fast_step_from_no_state_equals_python_path(monkeypatch):
    model = model_for("msms")
    counter = Counter(monkeypatch)
    with torch.no_grad():
        token = torch.randint(0, V, (2, 1))
        (fast_logits, fast_state), (slow_logits, slow_state) = model(token), slow(model, token)
    assert counter.calls == 1
    difference = max((fast_logits - slow_logits).abs().max().item(), largest_difference(fast_state, slow_state))
    assert difference < 1e-12, f"largest difference {difference:.3g}"


def test_fast_step_float32_is_close():
    model = model_for("msms", dtype=torch.float32)
    with torch.no_grad():
        _, state = model(torch.randint(0, V, (2, 5)))
        fast_state = slow_state = state
        for _ in range(5):
            token = torch.randint(0, V, (2, 1))
            fast_logits, fast_state = model(token, fast_state)
            slow_logits, slow_state = slow(model, token, slow_state)
            assert fast_logits.dtype == torch.float32
            difference = (fast_logits - slow_logits).abs().max().item()
            assert difference < 1e-4, f"largest difference {difference:.3g}"


def test_greedy_generation_identical_to_python_path(monkeypatch):
    model = model_for("msms", dtype=torch.float32)
    prompt = torch.randint(0, V, (2, 7))
    counter = Counter(monkeypatch)
    fast = model.generate(prompt, max_new_tokens=20, top_k=1)
    assert counter.calls > 0
    monkeypatch.setattr(lm, "fast_step_usable", lambda *args: False)
    assert torch.equal(fast, model.generate(prompt, max_new_tokens=20, top_k=1))


def run_counted(model, monkeypatch, tokens, **masks):
    counter = Counter(monkeypatch)
    model(tokens, **masks)
    return counter.calls


def test_fallbacks(monkeypatch):
    model = model_for("ms")
    token = torch.randint(0, V, (2, 1))
    with torch.no_grad():
        assert run_counted(model, monkeypatch, token) == 1  # the control: the fast path is taken here
        assert run_counted(model, monkeypatch, torch.randint(0, V, (2, 3))) == 0  # T > 1
        assert run_counted(model, monkeypatch, token[:0]) == 0  # B = 0
        assert run_counted(model, monkeypatch, token, lengths=torch.tensor([1, 1])) == 0
        assert run_counted(model, monkeypatch, token, reset=torch.tensor([[True], [False]])) == 0
    assert run_counted(model, monkeypatch, token) == 0  # gradients enabled
    with torch.no_grad():
        assert run_counted(model_for("ms", dtype=torch.bfloat16), monkeypatch, token) == 0
        handle = model.stack.blocks[1].ffn.register_forward_hook(lambda *args: None)
        assert run_counted(model, monkeypatch, token) == 0
        handle.remove()
        handle = torch.nn.modules.module.register_module_forward_hook(lambda *args: None)
        assert run_counted(model, monkeypatch, token) == 0
        handle.remove()
        dropout = model_for("ms", dropout=0.1).train()
        assert run_counted(dropout, monkeypatch, token) == 0
        assert run_counted(dropout.eval(), monkeypatch, token) == 1  # dropout off in eval mode: exact
        monkeypatch.setattr(lm_step, "extension", lambda: None)  # the build failed
        assert run_counted(model, monkeypatch, token) == 0


def test_non_finite_state_raises_the_python_paths_error():
    model = model_for("ms")
    with torch.no_grad():
        _, state = model(torch.randint(0, V, (2, 3)))
        for block, field in ((0, "n"), (1, "c")):
            cell = state.blocks[block].cell
            bad = cell._replace(**{field: torch.full_like(getattr(cell, field), torch.nan)})
            blocks = list(state.blocks)
            blocks[block] = blocks[block]._replace(cell=bad)
            broken = type(state)(tuple(blocks))
            token = torch.randint(0, V, (2, 1))
            with pytest.raises(ValueError) as fast_error:
                model(token, broken)
            with pytest.raises(ValueError) as slow_error:
                slow(model, token, broken)
            assert str(fast_error.value) == str(slow_error.value)


def broken_states(state):
    """States the layers' `check_state` refuses, each with one thing wrong."""
    m_state, s_state = state.blocks
    yield type(state)(state.blocks[:1])  # too few blocks
    yield (m_state, s_state)  # not an LMState
    yield type(state)((s_state, m_state))  # the kinds swapped
    yield type(state)((m_state._replace(conv=m_state.conv[:, 1:]), s_state))  # a shorter convolution state
    yield type(state)((m_state, s_state._replace(conv=None)))  # a convolution without its state
    yield type(state)((m_state._replace(cell=m_state.cell._replace(m=m_state.cell.m.float())), s_state))  # dtype
    yield type(state)((m_state, s_state._replace(cell=s_state.cell._replace(h=s_state.cell.h[:1]))))  # batch


def test_bad_states_raise_the_python_paths_errors(monkeypatch):
    model = model_for("ms")
    counter = Counter(monkeypatch)
    token = torch.randint(0, V, (2, 1))
    with torch.no_grad():
        _, state = model(torch.randint(0, V, (2, 3)))
        for broken in broken_states(state):
            with pytest.raises(ValueError) as fast_error:
                model(token, broken)
            with pytest.raises(ValueError) as slow_error:
                slow(model, token, broken)
            assert str(fast_error.value) == str(slow_error.value)
    assert counter.calls == 7  # each tried the C++ step first, which declined


def test_state_without_convolution_refused_where_the_layer_has_none():
    model = model_for("s", slstm_conv_kernel=0)
    token = torch.randint(0, V, (2, 1))
    with torch.no_grad():
        _, state = model(torch.randint(0, V, (2, 3)))
        broken = type(state)((state.blocks[0]._replace(conv=torch.zeros(2, 3, 32, dtype=torch.float64)),))
        with pytest.raises(ValueError) as fast_error:
            model(token, broken)
        with pytest.raises(ValueError) as slow_error:
            slow(model, token, broken)
        assert str(fast_error.value) == str(slow_error.value)


def test_a_replaced_parameter_is_the_one_used(monkeypatch):
    model = model_for("ms")
    token = torch.randint(0, V, (5, 1))
    with torch.no_grad():
        _, state = model(torch.randint(0, V, (5, 3)))
        before, _ = model(token, state)
        layer = model.stack.blocks[0].layer
        layer.proj_up.weight = torch.nn.Parameter(torch.randn_like(layer.proj_up.weight))
        model.stack.blocks[1].layer.cell.R = torch.nn.Parameter(torch.randn_like(model.stack.blocks[1].layer.cell.R))
        fast, _ = model(token, state)
        reference, _ = slow(model, token, state)
    assert (fast - before).abs().max() > 1e-3
    assert (fast - reference).abs().max() < 1e-12


def test_a_part_in_another_dtype_takes_the_python_path(monkeypatch):
    model = model_for("ms")
    model.stack.blocks[1].ffn.proj_down.float()
    token = torch.randint(0, V, (2, 1))
    with torch.no_grad():
        with pytest.raises(RuntimeError) as fast_error:
            model(token)
        with pytest.raises(RuntimeError) as slow_error:
            slow(model, token)
    assert str(fast_error.value) == str(slow_error.value)
