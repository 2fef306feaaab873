"""sLSTM: the fast layer (custom backward) == the plain autograd loop == the NumPy reference == the authors'."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.nn.slstm import slstm, slstm_loop, sLSTMCell, sLSTMState
from lstmkit.reference import slstm as ref
from tests.helpers import assert_close

F64 = torch.float64


def make(B, T, NH, DH, seed, state_kind="zero", dtype=F64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    H = NH * DH
    x = (torch.randn(B, T, 4 * H, generator=g, dtype=dtype) * scale).requires_grad_()
    R = (torch.randn(NH, 4, DH, DH, generator=g, dtype=dtype) * 0.5).requires_grad_()
    b = torch.randn(4 * H, generator=g, dtype=dtype).requires_grad_()
    if state_kind == "zero":
        state = sLSTMState(*(torch.zeros(B, H, dtype=dtype) for _ in range(4)))
    else:
        h, c, m = (torch.randn(B, H, generator=g, dtype=dtype) for _ in range(3))
        state = sLSTMState(h, c, torch.rand(B, H, generator=g, dtype=dtype) + 0.5, m)
    return x, R, b, sLSTMState(*(s.requires_grad_() for s in state))


def run_with_grads(fn, x, R, b, state):
    out, final = fn(x, R, b, state)
    g = torch.Generator().manual_seed(1)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    for k, s in enumerate(final):
        loss = loss + (k + 1) * (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
    return out, final, torch.autograd.grad(loss, [x, R, b, *state])


@settings(max_examples=20, deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 9),
    NH=st.integers(1, 3),
    DH=st.integers(1, 4),
    state_kind=st.sampled_from(["zero", "random"]),
    seed=st.integers(0, 1000),
)
def test_fast_layer_equals_the_autograd_loop(B, T, NH, DH, state_kind, seed):
    args = make(B, T, NH, DH, seed, state_kind, scale=3.0)
    o1, f1, g1 = run_with_grads(slstm_loop, *args)
    o2, f2, g2 = run_with_grads(slstm, *args)
    assert_close(o2, o1, "h", atol=1e-10)
    for name, a, b in zip("hcnm", f2, f1, strict=True):
        assert_close(a, b, f"final {name}", atol=1e-10)
    for name, a, b in zip(["x", "R", "b", "h0", "c0", "n0", "m0"], g2, g1, strict=True):
        assert_close(a, b, f"gradient {name}", atol=1e-9)


def test_equals_the_reference_every_step():
    x, R, b, state = make(2, 6, 2, 3, seed=3, state_kind="random")
    with torch.no_grad():
        out, final = slstm(x, R, b, state)
    p = ref.sLSTMParams(R.detach().numpy(), b.detach().numpy())
    for k in range(2):
        steps = ref.run(p, x[k].detach().numpy(), ref.sLSTMState(*(s[k].detach().numpy() for s in state)))
        np.testing.assert_allclose(out[k].numpy(), [s.h for s in steps], rtol=0, atol=1e-12)
        for name in "cnm":
            np.testing.assert_allclose(getattr(final, name)[k].numpy(), getattr(steps[-1], name), rtol=0, atol=1e-12)


def test_layer_streams_in_pieces():
    layer = sLSTMCell(8, num_heads=2, dtype=F64)
    with torch.no_grad():
        layer.R.normal_(0, 0.3)
    x = torch.randn(2, 20, 32, dtype=F64)
    whole, final = layer(x)
    first, s = layer(x[:, :7])
    second, s = layer(x[:, 7:], s)
    assert_close(torch.cat([first, second], 1), whole, "h", atol=1e-10)
    for name, a, b in zip("hcnm", s, final, strict=True):
        assert_close(a, b, name, atol=1e-10)


def test_float32_100k_steps_large_gates():
    """Pre-activations drawn from ±50 for 100 000 steps: finite, and float32 == float64 within 1e-4
    (measured max |h32 - h64| ≈ 1e-6: h = o·c/n is a gated average of tanh values, well conditioned,
    and the stabilizer keeps every exponential ≤ 1)."""
    T, H = 100_000, 4
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, T, 4 * H, generator=g, dtype=F64) * 100 - 50
    R = torch.randn(2, 4, 2, 2, generator=g, dtype=F64)
    b = torch.zeros(4 * H, dtype=F64)
    with torch.no_grad():
        h64, _ = slstm(x, R, b)
        h32, s32 = slstm(x.float(), R.float(), b.float())
    assert torch.isfinite(h32).all() and all(torch.isfinite(s).all() for s in s32)
    assert float((h32.double() - h64).abs().max()) < 1e-4


def test_zero_sequence_batch_of_one_and_t_one():
    _, R, b, _ = make(1, 1, 2, 2, seed=0)
    for T in (1, 5):
        zeros = torch.zeros(1, T, 16, dtype=F64)
        h, final = slstm(zeros, R, b)
        h_loop, final_loop = slstm_loop(zeros, R, b, sLSTMState(*(torch.zeros(1, 4, dtype=F64) for _ in range(4))))
        assert torch.isfinite(h).all() and float((h - h_loop).detach().abs().max()) < 1e-12
        assert float((final.n - final_loop.n).detach().abs().max()) < 1e-12


def test_bad_input():
    x, R, b, _ = make(1, 3, 2, 2, seed=0)
    with pytest.raises(ValueError, match=r"x has shape \(1, 3, 12\), expected \(B, T, 16\)"):
        slstm(x[..., :12], R, b)
    with pytest.raises(ValueError, match=r"R has shape \(2, 3, 2, 2\), expected \(num_heads, 4, head_dim, head_dim\)"):
        slstm(x, R[:, :3], b)
    with pytest.raises(ValueError, match=r"state.c is \(1, 3\) torch.float64, expected \(1, 4\) torch.float64"):
        z = torch.zeros(1, 4, dtype=F64)
        slstm(x, R, b, sLSTMState(z, torch.zeros(1, 3, dtype=F64), z, z))
    with pytest.raises(ValueError, match="x contains NaN"):
        slstm(x.detach().clone().index_fill_(1, torch.tensor([1]), float("nan")), R, b)
    with pytest.raises(ValueError, match="hidden_size 10 is not divisible by num_heads 4"):
        sLSTMCell(10, num_heads=4)
