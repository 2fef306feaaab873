"""The sLSTM C++ loops (`lstmkit.nn.slstm.cpp_loop`) == the Python loop (`sLSTMFunction`) == the plain
autograd loop (`slstm_loop`), in float64 to 1e-12: outputs, final states and the gradients of x, R, b and every
initial state tensor, with and without reset/valid masks, one or several heads, T = 1, B = 1; and the
fallback to the Python loop when the C++ one cannot be built or does not apply."""

import os
import re
import subprocess
import sys
import warnings

import pytest
import torch

from lstmkit.nn.slstm import cpp_loop, slstm, slstm_loop, sLSTMState
from lstmkit.nn.slstm.python_loop import sLSTMFunction

F64 = torch.float64
NAMES = ("out", "h", "c", "n", "m", "dx", "dR", "db", "dh0", "dc0", "dn0", "dm0")
SHAPES = [(1, 1, 1, 3), (1, 9, 1, 4), (3, 7, 2, 3), (2, 6, 4, 2), (4, 5, 3, 5)]  # (B, T, NH, DH)


@pytest.fixture(scope="module", autouse=True)
def built():
    if cpp_loop.extension() is None:
        pytest.skip("the sLSTM C++ loop could not be built here (see the warning); the Python loop is in use")


def make(B, T, NH, DH, seed, with_state, dtype=F64, scale=3.0):
    """Random x, nonzero R and b (so the recurrence matters), a random or zero initial state, all leaves."""
    g = torch.Generator().manual_seed(seed)
    H = NH * DH
    x = (torch.randn(B, T, 4 * H, generator=g, dtype=dtype) * scale).requires_grad_()
    R = (torch.randn(NH, 4, DH, DH, generator=g, dtype=dtype) * 0.5).requires_grad_()
    b = torch.randn(4 * H, generator=g, dtype=dtype).requires_grad_()
    if with_state:
        h, c, m = (torch.randn(B, H, generator=g, dtype=dtype) for _ in range(3))
        state = (h, c, torch.rand(B, H, generator=g, dtype=dtype) + 0.5, m)
    else:
        state = tuple(torch.zeros(B, H, dtype=dtype) for _ in range(4))
    return x, R, b, sLSTMState(*(s.requires_grad_() for s in state))


def masks(B, T, seed, kind):
    """reset and/or valid (B, T); the first row is reset at step 0 and the last is padded at step 0."""
    g = torch.Generator().manual_seed(seed + 1000)
    reset = valid = None
    if kind in ("reset", "both"):
        reset = torch.rand(B, T, generator=g) < 0.3
        reset[0, 0] = True
    if kind in ("valid", "both"):
        valid = torch.rand(B, T, generator=g) < 0.7
        valid[-1, 0] = False
    return reset, valid


def fast(x, R, b, state, reset, valid):
    out, *final = cpp_loop.slstm_cpp(x, R, b, *state, reset, valid)
    return out, final


def python(x, R, b, state, reset, valid):
    out, *final = sLSTMFunction.apply(x, R, b, *state, reset, valid)
    return out, final


def loop(x, R, b, state, reset, valid):
    return slstm_loop(x, R, b, sLSTMState(*state), reset=reset, valid=valid)


def layer(x, R, b, state, reset, valid):
    """The public entry point, which picks the C++ or the Python loop."""
    return slstm(x, R, b, sLSTMState(*state), reset=reset, valid=valid)


def results(fn, x, R, b, state, reset=None, valid=None) -> dict:
    """Outputs, final states and the gradients of a random linear function of all of them."""
    out, final = fn(x, R, b, state, reset, valid)
    g = torch.Generator().manual_seed(1)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    for k, s in enumerate(final):
        loss = loss + (k + 1) * (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
    grads = torch.autograd.grad(loss, [x, R, b, *state])
    return dict(zip(NAMES, [t.detach() for t in (out, *final, *grads)], strict=True))


def assert_equal(got: dict, want: dict, what: str, tol=1e-12):
    """Every tensor within tol (absolute); the message lists them all, largest difference first."""
    diffs = {k: float((got[k] - want[k]).abs().max()) if got[k].numel() else 0.0 for k in want}
    worst = sorted(diffs.items(), key=lambda kv: -kv[1])
    assert worst[0][1] <= tol, f"{what}: max abs diff " + ", ".join(f"{k} {d:.2e}" for k, d in worst)


@pytest.mark.parametrize("kind", ["none", "reset", "valid", "both"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"B{B}T{T}NH{NH}DH{DH}" for B, T, NH, DH in SHAPES])
def test_cpp_equals_the_python_loop_and_the_autograd_loop(shape, with_state, kind):
    x, R, b, state = make(*shape, seed=sum(shape), with_state=with_state)
    reset, valid = masks(shape[0], shape[1], sum(shape), kind)
    got = results(fast, x, R, b, state, reset, valid)
    assert_equal(got, results(python, x, R, b, state, reset, valid), "C++ vs Python loop")
    assert_equal(got, results(loop, x, R, b, state, reset, valid), "C++ vs autograd loop")


@pytest.mark.parametrize("T", [1, 6, 7])
def test_without_an_initial_state(T):
    """slstm(x, R, b) starts from the zero state; gradients of x, R, b as the Python loop's."""
    x, R, b, zero = make(3, T, 2, 3, seed=T, with_state=False)
    out, final = slstm(x, R, b)
    want = results(python, x, R, b, zero)
    g = torch.Generator().manual_seed(1)
    loss = (out * torch.randn(out.shape, generator=g, dtype=F64)).sum()
    for k, s in enumerate(final):
        loss = loss + (k + 1) * (s * torch.randn(s.shape, generator=g, dtype=F64)).sum()
    got = dict(zip(NAMES, [t.detach() for t in (out, *final, *torch.autograd.grad(loss, [x, R, b]))], strict=False))
    assert_equal(got, {k: want[k] for k in got}, "slstm(state=None) vs Python loop")


@pytest.mark.parametrize("T", [1, 6, 7])  # no gradients: the state alternates between two slots, odd and even T
@pytest.mark.parametrize("kind", ["none", "both"])
def test_without_gradients_equals_with(T, kind):
    x, R, b, state = make(2, T, 2, 3, seed=5, with_state=True)
    reset, valid = masks(2, T, 5, kind)
    out, final = fast(x, R, b, state, reset, valid)
    with torch.no_grad():
        out_ng, final_ng = fast(x, R, b, state, reset, valid)
    assert torch.equal(out, out_ng)
    for name, a, b_ in zip("hcnm", final, final_ng, strict=True):
        assert torch.equal(a, b_), f"final {name} differs without gradients"


def test_large_gates_long_sequence():
    """Pre-activations in ±50 over 300 steps: the stabilizer keeps every exponential ≤ 1."""
    x, R, b, state = make(2, 300, 2, 2, seed=7, with_state=True, scale=25.0)
    reset, valid = masks(2, 300, 7, "both")
    got = results(fast, x, R, b, state, reset, valid)
    assert all(torch.isfinite(t).all() for t in got.values())
    assert_equal(got, results(python, x, R, b, state, reset, valid), "C++ vs Python loop, large gates", tol=1e-10)


def test_float32_close_to_the_python_loop():
    x, R, b, state = make(4, 64, 4, 8, seed=3, with_state=True, dtype=torch.float32)
    reset, valid = masks(4, 64, 3, "both")
    got, want = results(fast, x, R, b, state, reset, valid), results(python, x, R, b, state, reset, valid)
    scale = {k: max(1.0, float(v.abs().max())) for k, v in want.items()}
    assert_equal(
        {k: v / scale[k] for k, v in got.items()},
        {k: v / scale[k] for k, v in want.items()},
        "float32 C++ vs Python loop (relative to each tensor's largest entry)",
        tol=1e-5,
    )


def test_slstm_uses_the_cpp_loop_for_cpu_float32_and_float64():
    for dtype in (torch.float32, F64):
        x, R, b, state = make(2, 5, 2, 3, seed=1, with_state=True, dtype=dtype)
        assert cpp_loop.usable(x, R, b, *state)
        out, final = slstm(x, R, b, state)
        out_cpp, final_cpp = fast(x, R, b, state, None, None)
        assert torch.equal(out, out_cpp) and all(torch.equal(a, b_) for a, b_ in zip(final, final_cpp, strict=True))
    x, R, b, state = make(2, 5, 2, 3, seed=1, with_state=True)
    assert not cpp_loop.usable(x.half(), R.half(), b.half())
    assert not cpp_loop.usable(x, R.float(), b)  # mixed dtypes: the Python loop reports them


def test_a_failed_build_warns_once_and_falls_back_to_the_python_loop(monkeypatch):
    def no_compiler():
        raise RuntimeError("Error building extension 'lstmkit_slstm'\nc++: error: no such compiler")

    x, R, b, state = make(2, 5, 2, 3, seed=2, with_state=True, dtype=torch.float32)
    monkeypatch.setattr(cpp_loop, "_build", no_compiler)
    cpp_loop.extension.cache_clear()
    try:
        why = re.escape("could not build the sLSTM C++ loop (RuntimeError: c++: error: no such compiler)")
        with pytest.warns(RuntimeWarning, match=why):
            got = results(layer, x, R, b, state)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the second call is silent
            slstm(x, R, b, state)
        want = results(python, x, R, b, state)
        for k in NAMES:
            assert torch.equal(got[k], want[k]), f"{k}: the fallback is not the Python loop"
    finally:
        monkeypatch.undo()
        cpp_loop.extension.cache_clear()


BUILD = """
import torch
from lstmkit.nn.slstm import cpp_loop
assert cpp_loop.extension() is not None
x = torch.ones(1, 3, 8)
print(float(cpp_loop.slstm_cpp(x, torch.zeros(1, 4, 2, 2), torch.zeros(8), *[torch.zeros(1, 2)] * 4)[0].sum()))
"""


@pytest.mark.slow
def test_concurrent_first_builds_and_a_stale_lock(tmp_path):
    """Two processes build into an empty extension cache at once, where a process killed mid-build left
    torch's lock file behind: both finish (torch alone would wait on that file forever) with one answer."""
    build_dir = tmp_path / "lstmkit_slstm"
    build_dir.mkdir()
    (build_dir / "lock").touch()
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    answers = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
        answers.append(out.strip())
    assert answers[0] == answers[1]
