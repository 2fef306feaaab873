"""The mLSTM's three forms at the extremes: finite and equal, forward and backward, in every dtype.

Gate pre-activations of ±1e4, f̃ = -inf ("forget everything"), m0 = -inf (empty state) and m0 = 0, long runs of
very negative ĩ (the stabilizer far below -log(largest float), where e^{-m} used to overflow and turn every
gradient into NaN). Each form and dtype is compared with the recurrent form run in float64 on the same (rounded)
inputs, and with the recurrent form in its own dtype. Tolerances are relative to max(1, largest reference value):
in float32 the exponents F_t - F_s + ĩ_s - m_t of gates near 1e4 carry rounding of ~1e-3, so 2e-2; float16 and
bfloat16 run in float32 inside (`lstmkit.nn.mlstm.state.in_float32`) and are limited by their own rounding.
"""

from __future__ import annotations

import functools

import pytest
import torch

from lstmkit.nn.mlstm import mlstm_chunkwise, mlstm_parallel, mlstm_recurrent, mlstm_step, mLSTMState
from tests.helpers import assert_close

B, NH, D = 2, 2, 4
TOL = {torch.float64: 1e-5, torch.float32: 2e-2, torch.float16: 1e-2, torch.bfloat16: 4e-2}
NAMES = ["h", "C_T·e^m", "n_T·e^m", "dq", "dk", "dv", "di", "df", "dC0", "dn0"]


def chunkwise(*args, **masks):
    return mlstm_chunkwise(*args, chunk_size=4, **masks)  # T = 11: two whole chunks (fast kernel) and a tail


FORMS = {"recurrent": mlstm_recurrent, "parallel": mlstm_parallel, "chunkwise": chunkwise}


def steps(q, k, v, i, f, state, reset=None, valid=None):
    """`mlstm_step` one step at a time: the state goes through the caller's dtype between steps."""
    hs = []
    for t in range(q.shape[2]):
        masks = {"reset": None if reset is None else reset[:, t], "valid": None if valid is None else valid[:, t]}
        h, state = mlstm_step(q[:, :, t], k[:, :, t], v[:, :, t], i[:, :, t], f[:, :, t], state, **masks)
        hs.append(h)
    return torch.stack(hs, 2), state


def gates(case: str, shape: tuple[int, int, int], g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    def sign():
        return torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).double()

    def uniform():
        return torch.rand(shape, generator=g).double()

    if case == "±1e4":
        return 1e4 * sign(), 1e4 * sign()
    if case == "within ±1e4":
        return 1e4 * sign() * uniform(), 1e4 * sign() * uniform()
    if case == "i = -1e4":
        return torch.full(shape, -1e4).double(), 3 * torch.randn(shape, generator=g).double()
    assert case == "f = -inf"
    i, f = torch.randn(shape, generator=g).double(), torch.randn(shape, generator=g).double()
    f[0, 0, 0] = f[1, 1, 4] = f[:, :, 7] = -torch.inf  # at the start, at a chunk start, inside a chunk
    return i, f


def make_inputs(case: str, m0: float, T: int = 11, batch: int = B, heads: int = NH) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, T, D, generator=g, dtype=torch.float64) for _ in range(3))
    i, f = gates(case, (batch, heads, T), g)
    C0 = torch.randn(batch, heads, D, D, generator=g, dtype=torch.float64)
    n0 = torch.randn(batch, heads, D, generator=g, dtype=torch.float64).abs()
    return [q, k, v, i, f, C0, n0, torch.full((batch, heads), m0, dtype=torch.float64)]


def make_masks(kind: str, T: int) -> dict:
    if kind == "none":
        return {}
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[0, 5] = True
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[1, -1] = False
    return {"reset": reset, "valid": valid}


def run(form, inputs: list[torch.Tensor], dtype: torch.dtype, masks: dict, frame: torch.Tensor | None) -> list:
    """Outputs, the final state in a fixed frame (C e^{m - frame}: the same memory whatever stabilizer m a form
    picked) and the gradients of a fixed weighting of h (0 at padding, whose output is unspecified) and of
    that state. `frame`: the reference's final m (None: this run's own, appended to the result)."""
    x = [t.detach().to(dtype).requires_grad_() for t in inputs[:7]]
    q, k, v, i, f, C0, n0 = x
    h, state = form(q, k, v, i, f, mLSTMState(C0, n0, inputs[7].to(dtype)), **masks)
    weight = torch.linspace(-1, 1, h.numel(), dtype=torch.float64).view(h.shape)
    if "valid" in masks:
        weight = weight * masks["valid"][:, None, :, None]
        h = h * masks["valid"][:, None, :, None]
    own_frame = frame is None
    frame = state.m.detach().double() if own_frame else frame
    scale = torch.exp(state.m.double() - frame)
    C, n = state.C.double() * scale[..., None, None], state.n.double() * scale[..., None]
    ((h.double() * weight).sum() + (C * torch.linspace(0, 1, C.numel()).view(C.shape)).sum() + n.sum()).backward()
    result = [t.detach().double() for t in [h, C, n] + [y.grad for y in x]]
    return [*result, frame] if own_frame else result


def reference(inputs: list[torch.Tensor], dtype: torch.dtype, masks: dict) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The recurrent form in float64 on the inputs rounded to `dtype`, and its final m (the frame)."""
    *result, frame = run(mlstm_recurrent, [t.to(dtype).double() for t in inputs], torch.float64, masks, None)
    return result, frame


def assert_results_close(got: list[torch.Tensor], ref: list[torch.Tensor], tol: float, what: str) -> None:
    """Each result finite and within tol · max(1, largest |reference|)."""
    for name, a, b in zip(NAMES, got, ref, strict=True):
        assert torch.isfinite(a).all(), f"{what}: {name} is not finite"
        assert_close(a, b, f"{what}: {name}", atol=tol * max(1.0, float(b.abs().max())))


@pytest.mark.parametrize("masks", ["none", "reset and padding"])
@pytest.mark.parametrize("m0", [float("-inf"), 0.0])
@pytest.mark.parametrize("case", ["±1e4", "within ±1e4", "i = -1e4", "f = -inf"])
def test_forms_finite_and_equal_at_the_extremes(case, m0, masks):
    inputs = make_inputs(case, m0)
    mask = make_masks(masks, 11)
    for dtype, tol in TOL.items():
        ref, frame = reference(inputs, dtype, mask)
        same_dtype = run(mlstm_recurrent, inputs, dtype, mask, frame)
        for name, form in FORMS.items():
            got = run(form, inputs, dtype, mask, frame)
            assert_results_close(got, ref, tol, f"{name} {dtype} against float64")
            assert_results_close(got, same_dtype, tol, f"{name} {dtype} against the recurrent form in {dtype}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", ["±1e4", "f = -inf"])
def test_one_step_at_a_time_is_finite(case, dtype):
    """mlstm_step (generation) rounds the state to the dtype between steps; it stays finite (float32: equal)."""
    inputs = make_inputs(case, 0.0)
    _, frame = reference(inputs, dtype, {})
    got = run(steps, inputs, dtype, {}, frame)
    if dtype == torch.float32:
        assert_results_close(
            got, run(mlstm_recurrent, inputs, dtype, {}, frame), 1e-5, "steps against the recurrent form"
        )
    assert all(torch.isfinite(t).all() for t in got)


@pytest.mark.parametrize("m0", [float("-inf"), 0.0])
def test_long_run_of_very_negative_input_gates(m0):
    """T = 2048 steps of ĩ = -1e4: m drifts to about -1600 (below even float64's -log(max) = -709.8)."""
    inputs = make_inputs("i = -1e4", m0, T=2048, batch=1, heads=1)
    inputs[4] = inputs[4] / 3  # f̃ ~ N(0, 1): log σ(f̃) ≈ -0.8 a step
    inputs = [t.half().double() for t in inputs]  # float16 values: one float64 reference for every dtype
    ref, frame = reference(inputs, torch.float64, {})
    for name, form in FORMS.items():
        assert_results_close(
            run(form, inputs, torch.float32, {}, frame), ref, TOL[torch.float32], f"{name} float32, T = 2048"
        )
    assert_results_close(run(chunkwise, inputs, torch.float16, {}, frame), ref, TOL[torch.float16], "chunkwise float16")


def test_ordinary_inputs_unchanged_in_float64():
    """The clamp and the f̃ = -inf rule do not touch ordinary inputs: the forms still agree to 1e-10."""
    inputs = make_inputs("f = -inf", 0.0)
    inputs[4] = torch.randn(B, NH, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ref, frame = reference(inputs, torch.float64, {})
    for name, form in FORMS.items():
        assert_results_close(run(form, inputs, torch.float64, {}, frame), ref, 1e-10, name)


@pytest.mark.parametrize("m0", [float("-inf"), 0.0])
@pytest.mark.parametrize("case", ["within ±1e4", "i = -1e4", "f = -inf"])
def test_detached_normalizer_finite_and_equal(case, m0):
    """detach_normalizer=True (the authors' kernels' gradient) at the extremes: the chunkwise kernel's own branch.

    Not with gates of exactly ±1e4: there ĩ_t ties with log σ(f̃_t) + m_{t-1} (log σ(1e4) = 0), the stabilizer's
    derivative is a choice of subgradient, and with a detached denominator h depends on m (h ∝ e^{-m}), so the
    forms' different choices show (chunkwise di off by 7 %); the exact gradient depends on m only through eps."""
    inputs = make_inputs(case, m0)
    detached = {name: functools.partial(form, detach_normalizer=True) for name, form in FORMS.items()}
    ref, frame = reference(inputs, torch.float64, {})
    ref = run(detached["recurrent"], inputs, torch.float64, {}, frame)
    for name, form in detached.items():
        assert_results_close(run(form, inputs, torch.float32, {}, frame), ref, TOL[torch.float32], f"{name}, detached")
