"""Mamba-2's SSD scan: the recurrent form == its equations written as loops == Mamba's selective scan (G = 1, P = 1);
the chunkwise form == the recurrent form (values, final state, every gradient; masks, an initial state, any T);
whole == pieces; one step == the recurrent form; finite at extreme Δ and A in every float dtype; bad input."""

import pytest
import torch
import torch.nn.functional as F

from lstmkit.nn.mamba import MambaState, selective_scan_recurrent
from lstmkit.nn.mamba.ssd_chunkwise import ssd_chunkwise
from lstmkit.nn.mamba.ssd_recurrent import SSDState, ssd_recurrent, ssd_step
from tests.helpers import assert_close

H, P, N = 4, 3, 5
NAMES = ("x", "delta", "A", "B", "C", "D", "z", "h0")


def inputs(batch: int, T: int, G: int, *, seed: int = 0, dtype=torch.float64, heads: int = H, head_dim: int = P):
    """Random SSD inputs (x, Δ, A, B, C, D, z, h0), every one requiring grad; Δ in (0.05, 1.5), A in (-1.5, -0.1)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    x, z = rand(batch, T, heads, head_dim), rand(batch, T, heads, head_dim)
    delta = 0.05 + 1.45 * torch.rand(batch, T, heads, generator=g, dtype=dtype)
    A = -0.1 - 1.4 * torch.rand(heads, generator=g, dtype=dtype)
    B, C, D = rand(batch, T, G, N), rand(batch, T, G, N), rand(heads)
    h0 = rand(batch, heads, head_dim, N)
    return [t.requires_grad_() for t in (x, delta, A, B, C, D, z, h0)]


def masks(batch: int, T: int, *, seed: int = 1):
    """reset random and at t = 0 in row 0; valid random, row 1 all padding (batch ≥ 3)."""
    g = torch.Generator().manual_seed(seed)
    reset = torch.rand(batch, T, generator=g) < 0.2
    valid = torch.rand(batch, T, generator=g) < 0.8
    if T:
        reset[0, 0] = True
        valid[1] = False
    return reset, valid


def loop(x, delta, A, B, C, D, z, h0, reset, valid):
    """The module's equations as they read: per batch row, per head, per step."""
    batch, T, heads, _ = x.shape
    per_group = heads // B.shape[2]
    ys = torch.zeros_like(x)
    h_last = torch.zeros_like(h0)
    for b in range(batch):
        for k in range(heads):
            g, h = k // per_group, h0[b, k]
            for t in range(T):
                h_in = torch.zeros_like(h) if reset[b, t] else h
                h_t = torch.exp(delta[b, t, k] * A[k]) * h_in + delta[b, t, k] * torch.outer(x[b, t, k], B[b, t, g])
                ys[b, t, k] = (h_t @ C[b, t, g] + D[k] * x[b, t, k]) * F.silu(z[b, t, k])
                h = h_t if valid[b, t] else h
            h_last[b, k] = h
    return ys, h_last


def test_recurrent_form_is_its_equations():
    batch, T, G = 3, 6, 2
    x, delta, A, B, C, D, z, h0 = inputs(batch, T, G)
    reset, valid = masks(batch, T)
    y, state = ssd_recurrent(x, delta, A, B, C, D, z, SSDState(h0), reset=reset, valid=valid)
    y_loop, h_loop = loop(x, delta, A, B, C, D, z, h0, reset, valid)
    assert_close(y[valid], y_loop[valid], "y", atol=1e-12)
    assert_close(state.h, h_loop, "state.h", atol=1e-12)


def test_recurrent_form_is_the_selective_scan_with_one_group_of_one_channel_heads():
    """G = 1, P = 1: heads are Mamba-1's channels, A_{d, n} = A_h for every n, B, C (B, T, N) the group's."""
    batch, T = 2, 7
    x, delta, A, B, C, D, z, h0 = inputs(batch, T, 1, head_dim=1)
    reset, valid = masks(batch, T)
    y, state = ssd_recurrent(x, delta, A, B, C, D, z, SSDState(h0), reset=reset, valid=valid)
    y1, state1 = selective_scan_recurrent(
        x[..., 0], delta, A[:, None].expand(H, N), B[:, :, 0], C[:, :, 0], D, z[..., 0], MambaState(h0[:, :, 0]),
        reset=reset, valid=valid,
    )  # fmt: skip
    assert_close(y[..., 0], y1, "y", atol=1e-12)
    assert_close(state.h[:, :, 0], state1.h, "state.h", atol=1e-12)


def assert_forms_equal(T: int, G: int, chunk_size: int, masked: bool, batch: int = 3) -> None:
    """ssd_chunkwise == ssd_recurrent: y at the valid steps, the final state, the gradient of every input."""
    tensors = inputs(batch, T, G, seed=T + G)
    reset, valid = masks(batch, T) if masked else (None, None)
    weights = torch.randn(batch, T, H, P, dtype=torch.float64) * (1 if valid is None else valid[..., None, None])
    w_state = torch.randn(batch, H, P, N, dtype=torch.float64)
    results = []
    for form in (ssd_recurrent, ssd_chunkwise):
        x, delta, A, B, C, D, z, h0 = tensors
        size = {} if form is ssd_recurrent else {"chunk_size": chunk_size}
        y, state = form(x, delta, A, B, C, D, z, SSDState(h0), reset=reset, valid=valid, **size)
        loss = (y * weights).sum() + (state.h * w_state).sum()
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        results.append((y if valid is None else y * valid[..., None, None], state.h, grads))
    (y, h, grads), (y_c, h_c, grads_c) = results
    assert_close(y_c, y, f"y (T={T}, G={G}, L={chunk_size})", atol=1e-10)
    assert_close(h_c, h, "state.h", atol=1e-10)
    for name, grad, grad_c in zip(NAMES, grads, grads_c, strict=True):
        assert_close(grad_c, grad, f"d{name} (T={T}, G={G}, L={chunk_size}, masked={masked})", atol=1e-10)


LENGTHS = {
    "0": lambda L: 0,
    "1": lambda L: 1,
    "5": lambda L: 5,
    "L-1": lambda L: L - 1,
    "L": lambda L: L,
    "3L+5": lambda L: 3 * L + 5,
}
"""T as a function of the chunk length L."""


@pytest.mark.parametrize("G", [1, 2])
@pytest.mark.parametrize("chunk_size", [4, 16])
@pytest.mark.parametrize("T_of", list(LENGTHS))
def test_chunkwise_form_is_the_recurrent_form_with_masks(T_of, chunk_size, G):
    assert_forms_equal(LENGTHS[T_of](chunk_size), G, chunk_size, masked=True)


@pytest.mark.parametrize("chunk_size", [1, 8, None])
def test_chunkwise_form_is_the_recurrent_form_without_masks(chunk_size):
    assert_forms_equal(21, 2, chunk_size, masked=False, batch=2)


@pytest.mark.parametrize("form", [ssd_recurrent, ssd_chunkwise])
def test_whole_is_pieces_with_the_state_carried(form):
    batch, T = 3, 19
    x, delta, A, B, C, D, z, h0 = (t.detach() for t in inputs(batch, T, 2))
    reset, valid = masks(batch, T)
    y, state = form(x, delta, A, B, C, D, z, SSDState(h0), reset=reset, valid=valid)
    pieces, carried = [], SSDState(h0)
    for span in (slice(0, 5), slice(5, 6), slice(6, 6), slice(6, T)):
        part = [t[:, span] for t in (x, delta, B, C, z, reset, valid)]
        y_part, carried = form(*part[:2], A, *part[2:4], D, part[4], carried, reset=part[5], valid=part[6])
        pieces.append(y_part)
    assert_close(torch.cat(pieces, 1)[valid], y[valid], "y", atol=1e-12)
    assert_close(carried.h, state.h, "state.h", atol=1e-12)


def test_step_is_the_recurrent_form():
    batch, T = 3, 4
    x, delta, A, B, C, D, z, h0 = (t.detach() for t in inputs(batch, T, 2))
    reset, valid = masks(batch, T)
    y, state = ssd_recurrent(x, delta, A, B, C, D, z, SSDState(h0), reset=reset, valid=valid)
    carried = SSDState(h0)
    for t in range(T):
        y_t, carried = ssd_step(
            x[:, t], delta[:, t], A, B[:, t], C[:, t], D, z[:, t], carried, reset=reset[:, t], valid=valid[:, t]
        )
        assert_close(y_t[valid[:, t]], y[:, t][valid[:, t]], f"y at t={t}", atol=0)
    assert_close(carried.h, state.h, "state.h", atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("form", [ssd_recurrent, ssd_chunkwise])
def test_finite_at_extreme_delta_and_A(form, dtype):
    """Δ from 1e-4 to 1e4 and Δ A down to -1e4 a step: y, the state and every gradient finite, in the input dtype,
    near the float64 values (float32)."""
    batch, T, G = 2, 40, 2
    g = torch.Generator().manual_seed(3)
    x, delta, A, B, C, D, z, h0 = (t.detach() for t in inputs(batch, T, G))
    delta = 10.0 ** (8 * torch.rand(batch, T, H, generator=g, dtype=torch.float64) - 4)
    A = -torch.tensor([1.0, 1e-2, 1e-4, 1e-8], dtype=torch.float64)
    x = x * 1e-3  # Δ x stays within float16's range
    reset, valid = masks(batch, T)
    args = [t.to(dtype).requires_grad_() for t in (x, delta, A, B, C, D, z, h0)]
    y, state = form(*args[:7], SSDState(args[7]), reset=reset, valid=valid, **_chunk(form, 16))
    assert y.dtype == dtype and state.h.dtype == dtype
    assert torch.isfinite(y).all() and torch.isfinite(state.h).all()
    grads = torch.autograd.grad((y.float() * valid[..., None, None]).sum() + state.h.float().sum(), args)
    for name, grad in zip(NAMES, grads, strict=True):
        assert torch.isfinite(grad).all(), f"d{name} is not finite in {dtype}"
    if dtype == torch.float32:
        y64, state64 = form(x, delta, A, B, C, D, z, SSDState(h0), reset=reset, valid=valid, **_chunk(form, 16))
        assert_close(y.double()[valid], y64[valid], "y", atol=1e-4, rtol=1e-4)
        assert_close(state.h.double(), state64.h, "state.h", atol=1e-4, rtol=1e-4)


def _chunk(form, L: int) -> dict:
    return {"chunk_size": L} if form is ssd_chunkwise else {}


def bad(**change):
    """Good inputs (batch 2, T 3, H 4, G 2) as a dict of keyword arguments, with `change` applied."""
    x, delta, A, B, C, D, z, h0 = (t.detach() for t in inputs(2, 3, 2))
    kwargs = {"x": x, "delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z, "state": SSDState(h0)}
    return {**kwargs, **change}


BAD = {
    "x has 3 dims": (
        bad(x=torch.zeros(2, 3, 4, dtype=torch.float64)),
        "x is (2, 3, 4), expected a tensor (B, T, H, P)",
    ),
    "delta per channel": (bad(delta=torch.ones(2, 3, 4, 3, dtype=torch.float64)), "delta is (2, 3, 4, 3), expected"),
    "A per state": (bad(A=-torch.ones(4, N, dtype=torch.float64)), "A is (4, 5), expected (4,)"),
    "3 groups for 4 heads": (bad(B=torch.ones(2, 3, 3, N, dtype=torch.float64)), "B is (2, 3, 3, 5), expected"),
    "C of another N": (bad(C=torch.ones(2, 3, 2, 4, dtype=torch.float64)), "C is (2, 3, 2, 4), expected (2, 3, 2, 5)"),
    "D per channel": (bad(D=torch.ones(4, 3, dtype=torch.float64)), "D is (4, 3), expected (4,)"),
    "z without heads": (bad(z=torch.ones(2, 3, 12, dtype=torch.float64)), "z is (2, 3, 12), expected (2, 3, 4, 3)"),
    "state a tensor": (bad(state=torch.zeros(2, 4, 3, N)), "state is a Tensor, expected an SSDState(h)"),
    "state of Mamba-1": (bad(state=SSDState(torch.zeros(2, 4, N, dtype=torch.float64))), "state.h is (2, 4, 5)"),
    "B in float32": (bad(B=torch.ones(2, 3, 2, N)), "B is torch.float32, expected torch.float64 as x"),
    "nan in delta": (
        bad(delta=torch.full((2, 3, 4), torch.nan, dtype=torch.float64)),
        "delta contains NaN at index (0, 0, 0)",
    ),
    "reset (T,)": (bad(reset=torch.zeros(3, dtype=torch.bool)), "reset is (3,) torch.bool, expected"),
    "valid as ints": (bad(valid=torch.ones(2, 3, dtype=torch.int64)), "valid is (2, 3) torch.int64, expected"),
}


@pytest.mark.parametrize("form", [ssd_recurrent, ssd_chunkwise])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_the_tensor(form, case):
    kwargs, message = BAD[case]
    with pytest.raises(ValueError) as error:
        form(**kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("chunk_size", [0, 2.0, True])
def test_bad_chunk_size(chunk_size):
    with pytest.raises(ValueError, match=r"chunk_size is .*, expected a positive integer or None"):
        ssd_chunkwise(**bad(), chunk_size=chunk_size)


def test_bad_step_input_names_the_tensor():
    x, delta, A, B, C, D, z, h0 = (t.detach()[:, 0] if t.dim() > 2 and t.shape[1] == 3 else t.detach() for t in
                                    inputs(2, 3, 2))  # fmt: skip
    with pytest.raises(ValueError, match=r"^C is \(2, 2, 4\), expected \(2, 2, 5\)$"):
        ssd_step(x, delta, A, B, C[..., :4], D, z, SSDState(h0))
