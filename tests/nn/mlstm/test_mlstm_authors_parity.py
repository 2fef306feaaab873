"""Our mLSTM forms == the xLSTM authors' native kernels (mlstm-kernels 2.0.6, CPU): outputs, states, gradients.

Their chunkwise kernel and step start from m = 0 like ours; their parallel kernel has no state, which
is our m_0 = -inf. Their kernels need T to be a multiple of the chunk size; ours do not.
"""

import pytest
import torch

from lstmkit.nn.mlstm import mlstm_chunkwise, mlstm_parallel, mlstm_recurrent, mlstm_step, mLSTMState
from tests.helpers import assert_close

kernels = pytest.importorskip("mlstm_kernels.torch")
F64 = torch.float64


def inputs(B=2, NH=2, T=32, DK=8, DV=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, NH, T, d, generator=g, dtype=F64, requires_grad=True) for d in (DK, DK, DV))
    i = (torch.randn(B, NH, T, generator=g, dtype=F64) * 3).requires_grad_()
    f = (torch.randn(B, NH, T, generator=g, dtype=F64) * 3 + 2).requires_grad_()
    return q, k, v, i, f


def grads(h, leaves, seed=1):
    w = torch.randn(h.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return torch.autograd.grad((h * w).sum(), leaves)


@pytest.mark.parametrize("with_state", [False, True])
def test_chunkwise_native_autograd(with_state):
    q, k, v, i, f = inputs()
    B, NH, _, DK = q.shape
    theirs_fn = kernels.get_mlstm_kernel("chunkwise--native_autograd")
    state = None
    if with_state:
        g = torch.Generator().manual_seed(5)
        C = torch.randn(B, NH, DK, 6, generator=g, dtype=F64)
        state = mLSTMState(
            C, torch.randn(B, NH, DK, generator=g, dtype=F64), torch.randn(B, NH, generator=g, dtype=F64)
        )
    extra = {} if state is None else {"c_initial": state.C, "n_initial": state.n, "m_initial": state.m[..., None]}
    h_theirs, (C, n, m) = theirs_fn(q, k, v, i, f, return_last_states=True, chunk_size=16, **extra)
    h_ours, ours = mlstm_chunkwise(q, k, v, i, f, state, chunk_size=16)
    assert_close(h_ours, h_theirs, "h", atol=1e-10)
    assert_close(ours.C, C, "C", atol=1e-10)
    assert_close(ours.n, n, "n", atol=1e-10)
    assert_close(ours.m, m.squeeze(-1), "m", atol=1e-10)
    for j, (a, b) in enumerate(zip(grads(h_ours, [q, k, v, i, f]), grads(h_theirs, [q, k, v, i, f]), strict=True)):
        assert_close(a, b, f"gradient {'qkvif'[j]}", atol=1e-9)


def test_parallel_native_autograd_is_our_m0_minus_inf():
    q, k, v, i, f = inputs(T=20)
    B, NH, _, DK = q.shape
    h_theirs = kernels.get_mlstm_kernel("parallel--native_autograd")(q, k, v, i, f)
    empty = mLSTMState(
        torch.zeros(B, NH, DK, 6, dtype=F64),
        torch.zeros(B, NH, DK, dtype=F64),
        torch.full((B, NH), -torch.inf, dtype=F64),
    )
    g_theirs = grads(h_theirs, [q, k, v, i, f])
    for form in (mlstm_parallel, mlstm_recurrent, mlstm_chunkwise):
        h_ours, _ = form(q, k, v, i, f, empty)
        assert_close(h_ours, h_theirs, f"{form.__name__} h", atol=1e-10)
        for j, (a, b) in enumerate(zip(grads(h_ours, [q, k, v, i, f]), g_theirs, strict=True)):
            assert_close(a, b, f"{form.__name__} gradient {'qkvif'[j]}", atol=1e-9)


def test_native_step():
    q, k, v, i, f = inputs(T=5)
    B, NH, _, DK = q.shape
    step = kernels.get_mlstm_step_kernel("native")
    theirs = (torch.zeros(B, NH, DK, 6, dtype=F64), torch.zeros(B, NH, DK, dtype=F64), torch.zeros(B, NH, 1, dtype=F64))
    ours = mLSTMState(theirs[0], theirs[1], theirs[2].squeeze(-1))
    for t in range(5):
        h_t, theirs = step(
            q[:, :, t], k[:, :, t], v[:, :, t], i[:, :, t, None], f[:, :, t, None], *theirs, dtype_state=F64
        )
        h_o, ours = mlstm_step(q[:, :, t], k[:, :, t], v[:, :, t], i[:, :, t], f[:, :, t], ours)
        assert_close(h_o, h_t, f"h at t={t}", atol=1e-10)
        assert_close(ours.C, theirs[0], f"C at t={t}", atol=1e-10)
        assert_close(ours.m, theirs[2].squeeze(-1), f"m at t={t}", atol=1e-10)
