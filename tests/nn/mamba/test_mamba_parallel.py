"""The selective scan's parallel form == its recurrent form (float64: values, final state, every gradient), with
masks and an initial state, for any T; whole == pieces; finite at the extremes in low precision; bad input."""

import pytest
import torch

from lstmkit.nn.mamba.parallel import selective_scan_parallel
from lstmkit.nn.mamba.recurrent import MambaState, selective_scan_recurrent
from tests.helpers import assert_close

BATCH, D, N = 3, 4, 3
NAMES = ("x", "delta", "A", "B", "C", "D", "z", "h0")


def inputs(T: int, seed: int, dtype=torch.float64, gated: bool = True) -> dict:
    """Random scan inputs (batch 3, 4 channels, state size 3), every tensor a leaf that requires grad."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    u = lambda *shape: torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    args = {"x": r(BATCH, T, D), "delta": 0.05 + u(BATCH, T, D), "A": -(0.2 + 2 * u(D, N)), "B": r(BATCH, T, N)}
    args.update({"C": r(BATCH, T, N), "D": r(D), "z": r(BATCH, T, D) if gated else None, "h0": r(BATCH, D, N)})
    return {k: None if v is None else v.to(dtype).requires_grad_() for k, v in args.items()}


def masks(T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random resets (one at t = 0 in row 0) and padding (row 2 all padding, when T > 0)."""
    g = torch.Generator().manual_seed(seed)
    reset = torch.rand(BATCH, T, generator=g) < 0.1
    valid = torch.rand(BATCH, T, generator=g) < 0.8
    reset[0, :1] = True
    valid[2] = False
    return reset, valid


def run(scan, args: dict, reset=None, valid=None):
    """y, the final state, and the gradients of a random weighting of both (y counted at valid steps only: its
    value at padding is unspecified) with respect to every input."""
    state = MambaState(args["h0"])
    kwargs = {k: args[k] for k in ("x", "delta", "A", "B", "C", "D", "z")}
    y, final = scan(**kwargs, state=state, reset=reset, valid=valid)
    g = torch.Generator().manual_seed(99)
    keep = torch.ones(y.shape[:2], dtype=torch.bool) if valid is None else valid
    wy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype) * keep[..., None]
    wh = torch.randn(final.h.shape, generator=g, dtype=torch.float64).to(y.dtype)
    loss = (y * wy).sum() + (final.h * wh).sum()
    leaves = [args[k] for k in NAMES if args[k] is not None]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True) if loss.requires_grad else [None] * len(leaves)
    grads = [torch.zeros_like(v) if d is None else d for v, d in zip(leaves, grads, strict=True)]
    return y * keep[..., None], final.h, dict(zip([k for k in NAMES if args[k] is not None], grads, strict=True))


@pytest.mark.parametrize("T", [0, 1, 7, 64, 100, 1000])
@pytest.mark.parametrize("masked", [False, True])
def test_parallel_equals_recurrent(T, masked):
    args = inputs(T, seed=T, gated=T % 2 == 0)
    reset, valid = masks(T, seed=T + 1) if masked else (None, None)
    y, h, grads = run(selective_scan_parallel, args, reset, valid)
    y_ref, h_ref, grads_ref = run(selective_scan_recurrent, args, reset, valid)
    assert_close(y, y_ref, "y", atol=1e-11, rtol=1e-10)
    assert_close(h, h_ref, "final state", atol=1e-11, rtol=1e-10)
    assert_close(grads, grads_ref, "grad", atol=1e-10, rtol=1e-10)


def test_padding_keeps_the_state_and_a_reset_at_t0_drops_h0():
    args = inputs(9, seed=5)
    reset, valid = torch.zeros(BATCH, 9, dtype=torch.bool), torch.ones(BATCH, 9, dtype=torch.bool)
    valid[1] = False
    reset[2, 0] = True
    _, h, _ = run(selective_scan_parallel, args, reset, valid)
    assert torch.equal(h[1], args["h0"][1])
    fresh = {**args, "h0": torch.zeros_like(args["h0"]).requires_grad_()}
    _, h_fresh, _ = run(selective_scan_parallel, fresh)
    assert_close(h[2], h_fresh[2], "reset at t = 0", atol=1e-14)


def test_whole_equals_pieces():
    args = inputs(50, seed=7)
    reset, valid = masks(50, seed=8)
    kw = {k: args[k] for k in ("A", "D")}
    part = lambda s: {k: args[k][:, s] for k in ("x", "delta", "B", "C", "z")}  # noqa: E731
    y, whole = selective_scan_parallel(
        **part(slice(None)), **kw, state=MambaState(args["h0"]), reset=reset, valid=valid
    )
    cut = 23
    ya, mid = selective_scan_parallel(
        **part(slice(0, cut)), **kw, state=MambaState(args["h0"]), reset=reset[:, :cut], valid=valid[:, :cut]
    )
    yb, end = selective_scan_parallel(
        **part(slice(cut, None)), **kw, state=mid, reset=reset[:, cut:], valid=valid[:, cut:]
    )
    keep = valid[..., None]
    assert_close(torch.cat([ya, yb], 1) * keep, y * keep, "y", atol=1e-13)
    assert_close(end.h, whole.h, "final state", atol=1e-13)


def test_float32_is_close_to_float64():
    args = inputs(300, seed=11)
    low = {k: v.detach().float().requires_grad_() for k, v in args.items()}
    reset, valid = masks(300, seed=12)
    y, h, grads = run(selective_scan_parallel, low, reset, valid)
    y_ref, h_ref, grads_ref = run(selective_scan_recurrent, args, reset, valid)
    assert_close(y, y_ref, "y", atol=1e-4, rtol=1e-4, check_dtype=False)
    assert_close(h, h_ref, "final state", atol=1e-4, rtol=1e-4, check_dtype=False)
    assert_close(grads, grads_ref, "grad", atol=1e-3, rtol=1e-3, check_dtype=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_finite_at_the_extremes(dtype):
    args = inputs(40, seed=13)
    with torch.no_grad():
        args["delta"][0, ::2] = 1e4  # Δ A = -1e8: a_t = 0
        args["delta"][1] = 1e-8  # a_t = 1 to the last bit, b_t ~ 0
        args["A"][0] = -1e4
        args["B"].mul_(0.1)  # float16 ends at 65504: keep the true dx = Δ (dh · B) within it
        args["C"].mul_(0.1)
    low = {k: v.detach().to(dtype).requires_grad_() for k, v in args.items()}
    reset, valid = masks(40, seed=14)
    y, h, grads = run(selective_scan_parallel, low, reset, valid)
    assert y.dtype == dtype and h.dtype == dtype
    for name, value in {"y": y, "final state": h, **grads}.items():
        assert value.dtype == dtype and torch.isfinite(value).all(), f"{name} is not finite in {dtype}"


BAD = [
    {"x": torch.zeros(2, 3)},
    {"A": torch.zeros(2, N, dtype=torch.float64)},
    {"B": torch.zeros(BATCH, 5, 2, dtype=torch.float64)},
    {"delta": torch.ones(BATCH, 5, D)},
    {"state": (1, 2)},
    {"reset": torch.zeros(BATCH, 3, dtype=torch.bool)},
    {"valid": torch.ones(BATCH, 5)},
]


@pytest.mark.parametrize("change", BAD, ids=lambda c: next(iter(c)))
def test_bad_input_is_the_recurrent_forms_one_line(change):
    args = {k: v.detach() for k, v in inputs(5, seed=17).items() if k != "h0"}
    args["state"] = MambaState(torch.zeros(BATCH, D, N, dtype=torch.float64))
    args.update(change)
    with pytest.raises(ValueError) as expected:
        selective_scan_recurrent(**args)
    with pytest.raises(ValueError) as err:
        selective_scan_parallel(**args)
    assert str(err.value) == str(expected.value) and "\n" not in str(err.value)


def test_nan_is_named():
    args = {k: v.detach() for k, v in inputs(5, seed=19).items() if k != "h0"}
    args["x"][1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"x contains NaN at index \(1, 2, 3\)"):
        selective_scan_parallel(**args)
