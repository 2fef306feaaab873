"""The selective scan in C++ (`lstmkit.nn.mamba.cpp_scan`) == the recurrent form (float64): outputs, final state and
every gradient, with reset/valid masks and an initial state, over T from 0 to 1000; whole == pieces; float32 close;
finite at extreme Δ and A; float16 computed in float32; the fallback when the build fails."""

import pytest
import torch

from lstmkit.nn.mamba import MambaState, cpp_scan, selective_scan_recurrent
from lstmkit.nn.mamba.cpp_scan import selective_scan_cpp
from tests.helpers import assert_close

D, N = 19, 5  # channels past one tile of 16 lanes, and a state size that is no vector width


@pytest.fixture(autouse=True, scope="module")
def built():
    if cpp_scan.extension() is None:
        pytest.skip("the selective scan's C++ extension cannot be built here")


def inputs(batch: int, T: int, seed: int, dtype=torch.float64, *, masks: bool = True):
    """Random scan inputs, D and z, an initial state, and random reset/valid masks with a reset at t = 0 in row 0 and
    an all-padding last row (when batch > 1)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    x, z, B, C = r(batch, T, D), r(batch, T, D), r(batch, T, N), r(batch, T, N)
    delta = torch.rand(batch, T, D, generator=g, dtype=dtype) * 2 + 0.01
    A = -torch.rand(D, N, generator=g, dtype=dtype) * 3 - 0.1
    args = dict(x=x, delta=delta, A=A, B=B, C=C, D=r(D), z=z, state=MambaState(r(batch, D, N)))
    if masks:
        reset = torch.rand(batch, T, generator=g) < 0.1
        valid = torch.rand(batch, T, generator=g) < 0.85
        if T:
            reset[0, 0] = True
        if batch > 1:
            valid[-1] = False
        args.update(reset=reset, valid=valid)
    return args


def run_with_grads(scan, args: dict, seed: int):
    """(y, h_T) and the gradients of a random linear function of both for every tensor input."""
    args = {k: v.detach().requires_grad_() if k not in ("reset", "valid", "state") else v for k, v in args.items()}
    h0 = args["state"].h.detach().requires_grad_()
    args["state"] = MambaState(h0)
    y, state = scan(**args)
    g = torch.Generator().manual_seed(seed)
    weights = lambda t: torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)  # noqa: E731
    loss = (y * weights(y)).sum() + (state.h * weights(state.h)).sum()
    names = [n for n in ("x", "delta", "A", "B", "C", "D", "z") if n in args]
    grads = torch.autograd.grad(loss, [args[n] for n in names] + [h0], allow_unused=True)
    zero = lambda t, like: torch.zeros_like(like) if t is None else t  # noqa: E731  (T = 0 leaves some unused)
    return (
        {"y": y, "h": state.h}
        | {f"d{n}": zero(t, args[n]) for n, t in zip(names, grads, strict=False)}
        | {"dh0": grads[-1]}
    )


@pytest.mark.parametrize(("batch", "T"), [(3, 0), (3, 1), (1, 7), (4, 7), (5, 100), (2, 1000)])
def test_cpp_scan_is_the_recurrent_form_with_every_gradient(batch, T):
    args = inputs(batch, T, seed=T + batch)
    expected = run_with_grads(selective_scan_recurrent, args, seed=1)
    actual = run_with_grads(selective_scan_cpp, args, seed=1)
    assert_close(actual, expected, f"B={batch} T={T}", atol=1e-11, rtol=1e-11)


def test_without_gate_skip_masks_or_state_and_more_rows_than_threads():
    batch = 2 * torch.get_num_threads() + 3
    args = inputs(batch, 33, seed=5, masks=False)
    del args["D"], args["z"], args["state"]  # the recurrent form's defaults
    assert_close(selective_scan_cpp(**args), selective_scan_recurrent(**args), "bare", atol=1e-12, rtol=1e-12)
    expected = run_with_grads(
        selective_scan_recurrent, args | {"state": MambaState(torch.zeros(batch, D, N, dtype=torch.float64))}, 2
    )
    actual = run_with_grads(
        selective_scan_cpp, args | {"state": MambaState(torch.zeros(batch, D, N, dtype=torch.float64))}, 2
    )
    assert_close(actual, expected, "bare, gradients", atol=1e-12, rtol=1e-12)


def test_whole_equals_pieces():
    args = inputs(3, 150, seed=6)
    y, state = selective_scan_cpp(**args)

    def cut(start: int, stop: int) -> dict:
        return {k: v if k in ("A", "D", "state") else v[:, start:stop] for k, v in args.items()}

    ya, mid = selective_scan_cpp(**cut(0, 70))
    yb, end = selective_scan_cpp(**(cut(70, 150) | {"state": mid}))
    assert_close(torch.cat([ya, yb], 1), y, "y", atol=1e-13, rtol=1e-13)
    assert_close(end.h, state.h, "h", atol=1e-13, rtol=1e-13)


def test_float32_is_close_to_float64():
    args = inputs(2, 300, seed=7)
    single = {k: v.float() if v.dtype == torch.float64 else v for k, v in args.items() if k != "state"}
    single["state"] = MambaState(args["state"].h.float())
    expected = run_with_grads(selective_scan_recurrent, args, seed=3)
    actual = run_with_grads(selective_scan_cpp, single, seed=3)
    for name, value in actual.items():
        assert value.dtype == torch.float32
        scale = float(expected[name].detach().abs().max()) + 1
        assert_close(value, expected[name], name, atol=1e-4 * scale, check_dtype=False)


def test_half_precision_is_computed_in_float32():
    args = inputs(2, 40, seed=8, masks=False)
    half = {k: v.to(torch.bfloat16) for k, v in args.items() if k != "state"}
    y, state = selective_scan_cpp(**half, state=MambaState(args["state"].h.to(torch.bfloat16)))
    single = {k: v.float() for k, v in half.items()}
    y32, state32 = selective_scan_cpp(**single, state=MambaState(args["state"].h.to(torch.bfloat16).float()))
    assert y.dtype == state.h.dtype == torch.bfloat16
    assert torch.equal(y, y32.to(torch.bfloat16)) and torch.equal(state.h, state32.h.to(torch.bfloat16))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_at_extreme_delta_and_A(dtype):
    args = inputs(2, 50, seed=9, dtype=dtype)
    args["delta"] = args["delta"] * 5e3  # up to 1e4
    args["A"][:, :2] = -1e4
    out = run_with_grads(selective_scan_cpp, args, seed=4)
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    if dtype == torch.float64:
        assert_close(out, run_with_grads(selective_scan_recurrent, args, seed=4), "extreme", atol=1e-9, rtol=1e-9)


def test_usable_and_bad_input():
    x = torch.zeros(1, 2, D)
    assert cpp_scan.usable(x, x, torch.zeros(D, N)) and cpp_scan.usable(x.double(), None)
    assert not cpp_scan.usable(x, x.double()) and not cpp_scan.usable(x.int())
    with pytest.raises(ValueError, match=r"B is \(1, 2, 3\), expected \(1, 2, 5\)"):
        selective_scan_cpp(x, x, torch.zeros(D, N), torch.zeros(1, 2, 3), torch.zeros(1, 2, N))


def test_a_failed_build_warns_once_and_is_not_usable(monkeypatch):
    def no_compiler(*args):
        raise RuntimeError("Error building extension\nc++: error: no such compiler")

    monkeypatch.setattr(cpp_scan, "compile_once", no_compiler)
    cpp_scan.extension.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="could not build the selective scan.*no such compiler"):
            assert not cpp_scan.usable(torch.zeros(1, 1, 1))
    finally:
        cpp_scan.extension.cache_clear()
