"""The unmasked chunkwise fast path (`chunkwise_fast`, `ChunkwiseKernel` with its hand-written backward)
equals the recurrent form in float64 to 1e-10: outputs, final state, and every gradient (q, k, v, i, f and
the initial C, n, m), for any T, with and without an initial state, with the automatic chunk size, and
with detach_normalizer."""

import pytest
import torch

from lstmkit.nn.mlstm import auto_chunk_size, chunkwise_flops, mlstm_chunkwise, mlstm_recurrent, mLSTMState
from lstmkit.nn.mlstm.chunkwise_fast import chunkwise_unmasked, max_plus_scan
from lstmkit.nn.mlstm.state import zero_state
from tests.helpers import assert_close
from tests.nn.mlstm.draw import inputs

F64 = torch.float64


def make_state(kind, B, NH, DK, DV, seed):
    """None (the default zero state), "random" (C, n, m all random, all with gradients) or "empty" (m = -inf)."""
    if kind == "none":
        return None
    g = torch.Generator().manual_seed(seed + 100)
    C, n = torch.randn(B, NH, DK, DV, generator=g, dtype=F64), torch.randn(B, NH, DK, generator=g, dtype=F64)
    m = torch.randn(B, NH, generator=g, dtype=F64) * 2
    if kind == "empty":
        C, n, m = torch.zeros_like(C), torch.zeros_like(n), torch.full_like(m, -torch.inf)
    return mLSTMState(C.requires_grad_(), n.requires_grad_(), m.requires_grad_(kind == "random"))


def run(form, q, k, v, i, f, state, **kw):
    """Outputs, final state and the gradients of a random linear function of all of them."""
    h, final = form(q, k, v, i, f, state, **kw)
    g = torch.Generator().manual_seed(1)
    loss = sum((x * torch.randn(x.shape, generator=g, dtype=F64)).sum() for x in (h, final.C, final.n, final.m))
    leaves = [q, k, v, i, f] + ([] if state is None else [x for x in state if x.requires_grad])
    return {
        "h": h,
        "C": final.C,
        "n": final.n,
        "m": final.m,
        **{f"d{j}": x for j, x in enumerate(torch.autograd.grad(loss, leaves))},
    }


@pytest.mark.parametrize("T", [1, 5, 8, 16, 29, 40])
@pytest.mark.parametrize("state_kind", ["none", "random", "empty"])
@pytest.mark.parametrize("detach_normalizer", [False, True])
def test_fast_path_equals_recurrent(T, state_kind, detach_normalizer):
    """L = 8: T < L, T = L, T = NC·L, and T with a shorter last chunk."""
    B, NH, DK, DV = 2, 3, 4, 5
    args = inputs(B, NH, T, DK, DV, seed=T, requires_grad=True)
    state = make_state(state_kind, B, NH, DK, DV, seed=T)
    ref = run(mlstm_recurrent, *args, state, detach_normalizer=detach_normalizer)
    ours = run(mlstm_chunkwise, *args, state, detach_normalizer=detach_normalizer, chunk_size=8)
    assert_close(ours, ref, f"T={T} state={state_kind} detach={detach_normalizer}", atol=1e-10)


@pytest.mark.parametrize("T", [70, 200])
def test_automatic_chunk_size_equals_recurrent(T):
    B, NH, DK, DV = 1, 2, 8, 6
    args = inputs(B, NH, T, DK, DV, seed=3, requires_grad=True)
    state = make_state("random", B, NH, DK, DV, seed=3)
    L = auto_chunk_size(T, DK, DV)
    assert_close(
        run(mlstm_chunkwise, *args, state), run(mlstm_recurrent, *args, state), f"T={T} auto L={L}", atol=1e-10
    )


def test_explicit_chunk_size_is_honoured():
    """The same inputs in chunks of 4 and of 7 round differently: the chunk size must reach the kernel."""
    args = inputs(1, 1, 28, 3, 3, seed=4, requires_grad=True)
    h4, _ = mlstm_chunkwise(*args, chunk_size=4)
    h7, _ = mlstm_chunkwise(*args, chunk_size=7)
    assert_close({"h": h4}, {"h": h7}, "chunk 4 vs 7", atol=1e-10)
    assert not torch.equal(h4, h7)


def test_kernel_alone_equals_recurrent_on_whole_chunks():
    """`chunkwise_unmasked` directly (no tail, no input checks), with large gates that move the stabilizer."""
    B, NH, T, DK, DV = 2, 2, 24, 4, 3
    q, k, v, i, f = inputs(B, NH, T, DK, DV, seed=5, gate_scale=8.0, requires_grad=True)
    state = make_state("random", B, NH, DK, DV, seed=5)
    ref = run(mlstm_recurrent, q, k, v, i, f, state)
    ours = run(lambda *a: chunkwise_unmasked(*a, eps=1e-6, detach_normalizer=False, L=6), q, k, v, i, f, state)
    assert_close(ours, ref, "chunkwise_unmasked L=6", atol=1e-10)


def test_max_plus_scan_equals_the_loop():
    g = torch.Generator().manual_seed(6)
    for NC in (1, 2, 3, 7, 8, 13):
        a, b = torch.randn(3, NC, generator=g, dtype=F64), torch.randn(3, NC, generator=g, dtype=F64) * 3
        for m0 in (torch.randn(3, generator=g, dtype=F64), torch.full((3,), -torch.inf, dtype=F64)):
            M, loop = m0, []
            for c in range(NC):
                M = torch.maximum(a[:, c] + M, b[:, c])
                loop.append(M)
            d = float((max_plus_scan(a, b, m0) - torch.stack(loop, -1)).abs().max())
            assert d <= 1e-12, f"NC={NC}: largest difference {d:.2e}"


def test_float32_fast_path_close_to_float64():
    """The fast path in float32 (zero state, T = 3 chunks) against float64: relative error of h below 1e-5."""
    args = [x.detach() for x in inputs(2, 2, 96, 16, 16, seed=7, requires_grad=True)]
    h64, s64 = mlstm_chunkwise(*args, chunk_size=32)
    h32, s32 = mlstm_chunkwise(*(x.float() for x in args), chunk_size=32)
    rel = float((h32.double() - h64).abs().max() / h64.abs().max())
    assert rel < 1e-5, f"float32 h: relative difference {rel:.2e}"
    for name, a, b in zip("Cnm", s32, s64, strict=True):
        rel = float((a.double() - b).abs().max() / b.abs().max())
        assert rel < 1e-5, f"float32 final {name}: relative difference {rel:.2e}"


def test_zero_state_is_the_default():
    args = inputs(1, 2, 16, 3, 3, seed=8, requires_grad=True)
    q, v = args[0], args[2]
    h, s = mlstm_chunkwise(*args, chunk_size=8)
    h0, s0 = mlstm_chunkwise(*args, zero_state(q.detach(), v.detach()), chunk_size=8)
    assert torch.equal(h, h0) and all(torch.equal(a, b) for a, b in zip(s, s0, strict=True))


def test_auto_chunk_size_and_flops():
    for T in (1, 100, 1024, 4096, 8192):
        for D in (64, 128, 256):
            L = auto_chunk_size(T, D, D)
            assert isinstance(L, int) and L >= 1 and L & (L - 1) == 0, (T, D, L)
    # one chunk of 2 steps, DK = DV = 1: S 2·4·1, P V⁺ 2·4·2, Q C⁺ 2·2·1·2, (α⊙K)ᵀ V⁺ 2·2·1·2
    assert chunkwise_flops(1, 1, 2, 1, 1, 2) == 8 + 16 + 8 + 8
    assert chunkwise_flops(2, 3, 10, 1, 1, 2) == 2 * 3 * 5 * 40
    assert chunkwise_flops(1, 1, 3, 1, 1, 2) == 40 + (2 + 4 + 4 + 4)  # a chunk of 2 and one of 1
