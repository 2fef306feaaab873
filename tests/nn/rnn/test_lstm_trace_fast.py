"""LSTM.trace's fast path (h from the fused kernel, gates recomputed) == the loop path, values and gradients.

The loop path (`trace_loop`) is itself tested against the NumPy reference (test_nn_trace.py) and torch.nn
(test_nn_layers.py); here every field, the output, the final states and the gradients through all of
them must match it in float64 to 1e-12, in several configurations, with and without autograd. The two
forms of the cell-state scan are tested against a plain loop on their own.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit.nn as lnn
from lstmkit.nn.rnn.cell_scan import CHUNK_BELOW, AdjointScan, CellScan, cell_scan, scan_chunked
from lstmkit.nn.rnn.lstm import trace_loop, trace_recomputed
from lstmkit.nn.rnn.lstm_trace_fast import gate
from tests.helpers import assert_close

F64 = torch.float64


def flatten(result):
    """(output, (h_n, c_n), trace) -> [(name, tensor)]."""
    output, (h_n, c_n), trace = result
    return [("output", output), ("h_n", h_n), ("c_n", c_n)] + [(f"trace.{k}", v) for k, v in trace._asdict().items()]


def weighted_sum(named, seed):
    """A random linear functional of every tensor, so each gets its own gradient."""
    g = torch.Generator().manual_seed(seed)
    return sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for _, t in named)


# (layers, bidirectional, batch_first, unbatched, proj, bias, with_hx, T, B, H); B·H >= CHUNK_BELOW takes
# CellScan, smaller the chunked scan; T = 7, 10 and 1 pad the last chunk or have a single step
CONFIGS = [
    (1, False, False, False, 0, True, False, 7, 3, 5),
    (2, True, False, False, 0, True, True, 10, 4, 6),
    (2, True, True, False, 0, True, False, 6, 3, 5),
    (2, False, True, True, 0, True, True, 9, 1, 5),
    (1, True, False, True, 0, False, False, 5, 1, 4),
    (2, True, False, False, 3, True, True, 8, 2, 5),
    (3, False, False, False, 2, False, True, 4, 3, 4),
    (1, True, False, False, 0, True, True, 1, 2, 3),
    (2, True, False, False, 0, True, True, 5, 64, 32),  # B·H = 2048: CellScan
    (1, False, True, False, 0, True, False, 6, 80, 40),
]


def make(config, seed=0):
    layers, bidirectional, batch_first, unbatched, proj, bias, with_hx, T, B, H = config
    torch.manual_seed(seed)
    I = 3
    layer = lnn.LSTM(
        I,
        H,
        num_layers=layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        proj_size=proj,
        bias=bias,
        dtype=F64,
    )
    batch = () if unbatched else (B,)
    x = torch.randn(*((T, *batch) if not batch_first or unbatched else (B, T)), I, dtype=F64, requires_grad=True)
    hx = None
    if with_hx:
        D = 2 if bidirectional else 1
        hx = (
            torch.randn(layers * D, *batch, proj or H, dtype=F64, requires_grad=True),
            torch.randn(layers * D, *batch, H, dtype=F64, requires_grad=True),
        )
    return layer, x, hx


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_recomputed_equals_loop_values_and_gradients(config):
    layer, x, hx = make(config)
    leaves = [x, *(hx or ()), *layer.parameters()]
    names = ["x", "h0", "c0"][: 1 + 2 * (hx is not None)] + [n for n, _ in layer.named_parameters()]
    results = {}
    for name, trace in [("loop", trace_loop), ("recomputed", trace_recomputed)]:
        named = flatten(trace(layer, x, hx))
        grads = torch.autograd.grad(weighted_sum(named, seed=1), leaves)
        results[name] = named, grads
    (loop, loop_grads), (fast, fast_grads) = results["loop"], results["recomputed"]
    for (what, a), (_, b) in zip(fast, loop, strict=True):
        assert_close(a, b, what, atol=1e-12)
    for what, a, b in zip(names, fast_grads, loop_grads, strict=True):
        assert_close(a, b, f"d/d{what}", atol=1e-12)


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[5], CONFIGS[8]], ids=["bi", "proj", "cellscan"])
def test_recomputed_equals_loop_without_autograd(config):
    """No autograd: the kernel keeps no workspace and g is computed in place."""
    layer, x, hx = make(config)
    with torch.no_grad():
        loop, fast = flatten(trace_loop(layer, x, hx)), flatten(trace_recomputed(layer, x, hx))
    for (what, a), (_, b) in zip(fast, loop, strict=True):
        assert_close(a, b, what, atol=1e-12)


def test_gradient_through_one_field_only():
    """Gradients that enter through a single field (here f, then c_n) still match."""
    layer, x, hx = make(CONFIGS[1])
    for pick in (lambda r: r[2].f, lambda r: r[1][1]):
        grads = [
            torch.autograd.grad(weighted_sum([("", pick(fn(layer, x, hx)))], 2), [x, *hx, layer.weight_hh_l0])
            for fn in (trace_loop, trace_recomputed)
        ]
        for what, a, b in zip(["x", "h0", "c0", "weight_hh_l0"], *grads, strict=True):
            assert_close(a, b, f"d/d{what}", atol=1e-12)


def test_h_is_o_tanh_c():
    """The kernel's h agrees with the recomputed gates: h = o ⊙ tanh(c) (no projection)."""
    layer, x, hx = make(CONFIGS[1])
    _, _, trace = trace_recomputed(layer, x, hx)
    assert_close(trace.h, trace.o * torch.tanh(trace.c), "h - o tanh(c)", atol=1e-12)


def test_float32_with_onednn_products():
    """Float32 on CPU takes oneDNN's products and the 2σ(2z) − 1 form of tanh: equal to the loop in float32."""
    torch.manual_seed(0)
    layer = lnn.LSTM(16, 32, num_layers=2, bidirectional=True)
    x = torch.randn(20, 8, 16)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            loop, fast = flatten(trace_loop(layer, x)), flatten(trace_recomputed(layer, x))
        for (what, a), (_, b) in zip(fast, loop, strict=True):
            assert_close(a, b, f"{what} (grad {grad})", atol=2e-5)
    leaves = [layer.weight_hh_l1_reverse, layer.bias_ih_l0]
    loop_grads, fast_grads = (
        torch.autograd.grad(weighted_sum(flatten(fn(layer, x)), 1), leaves) for fn in (trace_loop, trace_recomputed)
    )
    for what, a, b in zip(["weight_hh_l1_reverse", "bias_ih_l0"], fast_grads, loop_grads, strict=True):
        assert_close(a, b, f"d/d{what}", atol=1e-3 * float(b.abs().max()))


def test_onednn_gate_equals_linear_with_gradients():
    g_ = torch.Generator().manual_seed(0)
    xh, W, b = (torch.randn(*shape, generator=g_, requires_grad=True) for shape in [(5, 7, 24), (12, 24), (12,)])
    w = torch.randn(5, 7, 12, generator=g_)
    ours, expected = gate(xh, W, b, torch.sigmoid_), torch.sigmoid(F.linear(xh, W, b))
    assert_close(ours, expected, "oneDNN gate", atol=1e-6)
    grads = [torch.autograd.grad((z * w).sum(), [xh, W, b]) for z in (ours, expected)]
    for what, a, e in zip(["xh", "W", "b"], *grads, strict=True):
        assert_close(a, e, f"d/d{what}", atol=1e-5)


def test_dropout_between_layers_uses_the_same_masks():
    torch.manual_seed(0)
    layer = lnn.LSTM(3, 5, num_layers=3, dropout=0.5, bidirectional=True, dtype=F64)
    x = torch.randn(6, 2, 3, dtype=F64)
    torch.manual_seed(7)
    loop = flatten(trace_loop(layer, x))
    torch.manual_seed(7)
    fast = flatten(trace_recomputed(layer, x))
    for (what, a), (_, b) in zip(fast, loop, strict=True):
        assert_close(a, b, what, atol=1e-12)


def test_trace_picks_the_path():
    layer, x, hx = make(CONFIGS[1])
    for (what, a), (_, b) in zip(flatten(layer.trace(x, hx)), flatten(trace_recomputed(layer, x, hx)), strict=True):
        assert torch.equal(a, b), what
    packed = pack_padded_sequence(x.detach(), torch.tensor([10, 3, 7, 10]), enforce_sorted=False)
    out, _, trace = layer.trace(packed)
    loop_out, _, loop_trace = trace_loop(layer, packed)
    assert torch.equal(out.data, loop_out.data) and torch.equal(trace.c, loop_trace.c)
    with pytest.raises(ValueError, match="packed input has a mask; use trace_loop"):
        trace_recomputed(layer, packed)


def plain_scan(f, i, g, c0, reverse):
    """The obvious loop: c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t."""
    c, out = c0, [None] * len(f)
    for t in reversed(range(len(f))) if reverse else range(len(f)):
        c = f[t] * c + i[t] * g[t]
        out[t] = c
    return torch.stack(out)


@pytest.mark.parametrize("T", [1, 2, 5, 9, 17, 64])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_forms_equal_the_plain_loop(T, reverse):
    g_ = torch.Generator().manual_seed(T)
    f, i = (torch.rand(T, 3, 4, generator=g_, dtype=F64, requires_grad=True) for _ in range(2))
    g = (2 * torch.rand(T, 3, 4, generator=g_, dtype=F64) - 1).requires_grad_()
    c0 = torch.randn(3, 4, generator=g_, dtype=F64, requires_grad=True)
    w = torch.randn(T, 3, 4, generator=g_, dtype=F64)
    expected = plain_scan(f, i, g, c0, reverse)
    expected_grads = torch.autograd.grad((expected * w).sum(), [f, i, g, c0])
    forms = {
        "CellScan": lambda: CellScan.apply(f, i, g, c0, reverse),
        "cell_scan": lambda: cell_scan(f, i, g, c0, reverse),
    }
    if not reverse:
        forms["scan_chunked"] = lambda: scan_chunked(f, i, g, c0)
    for name, form in forms.items():
        c = form()
        assert_close(c, expected, f"{name} c", atol=1e-12)
        for what, a, b in zip("figc", torch.autograd.grad((c * w).sum(), [f, i, g, c0]), expected_grads, strict=True):
            assert_close(a, b, f"{name} d/d{what}", atol=1e-12)


def test_cell_scan_picks_by_size():
    """Below CHUNK_BELOW elements per step the chunked form runs (its graph has no CellScan node)."""
    small = torch.rand(4, 1, CHUNK_BELOW - 1, dtype=F64, requires_grad=True)
    large = torch.rand(4, 1, CHUNK_BELOW, dtype=F64, requires_grad=True)
    assert type(cell_scan(small, small, small, small[0], False).grad_fn).__name__ != "CellScanBackward"
    assert type(cell_scan(large, large, large, large[0], False).grad_fn).__name__ == "CellScanBackward"


@pytest.mark.parametrize("reverse", [False, True])
def test_cell_scan_second_derivatives(reverse):
    """CellScan's backward is differentiable (AdjointScan, whose backward is CellScan): gradgradcheck in float64.
    Its backward was once marked once-differentiable, which raises only when the incoming gradient needs one:
    for a loss linear in c the second derivative was silently wrong."""
    g_ = torch.Generator().manual_seed(0)
    f, i, g = (torch.rand(4, 2, 3, generator=g_, dtype=F64, requires_grad=True) for _ in range(3))
    c0 = torch.randn(2, 3, generator=g_, dtype=F64, requires_grad=True)
    scan = lambda f, i, g, c0: CellScan.apply(f, i, g, c0, reverse)  # noqa: E731
    assert torch.autograd.gradcheck(scan, (f, i, g, c0))
    assert torch.autograd.gradgradcheck(scan, (f, i, g, c0))
    adjoint = lambda f, v: AdjointScan.apply(f, v, reverse)  # noqa: E731
    assert torch.autograd.gradcheck(adjoint, (f, i))
    assert torch.autograd.gradgradcheck(adjoint, (f, i))
    # the case that was wrong: a loss linear in c, differentiated twice
    w = torch.randn(4, 2, 3, generator=g_, dtype=F64)
    for form in (scan, lambda f, i, g, c0: plain_scan(f, i, g, c0, reverse)):
        (df,) = torch.autograd.grad((form(f, i, g, c0) * w).sum(), [f], create_graph=True)
        second = torch.autograd.grad((df**2).sum(), [f, i, g, c0])
        if form is scan:
            ours = second
    for what, a, b in zip("figc", ours, second, strict=True):
        assert_close(a, b, f"second derivative d/d{what}", atol=1e-12)


def second_derivatives(fn, layer, x, hx):
    """∂/∂(x, h0, c0, W_hh) of |∂L/∂x|², L a random linear functional of every trace field."""
    (dx,) = torch.autograd.grad(weighted_sum(flatten(fn(layer, x, hx)), seed=3), [x], create_graph=True)
    return torch.autograd.grad((dx**2).sum(), [x, *hx, layer.weight_hh_l0])


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[8]], ids=["chunked", "cellscan"])
def test_trace_second_derivatives_equal_the_loop_and_finite_differences(config):
    """Both scans (B·H below and at CHUNK_BELOW): equal to the loop's, and to central differences of the
    first derivative along a random direction of W_hh (float64)."""
    layer, x, hx = make(config)
    fast, loop = (second_derivatives(fn, layer, x, hx) for fn in (trace_recomputed, trace_loop))
    for what, a, b in zip(["x", "h0", "c0", "weight_hh_l0"], fast, loop, strict=True):
        assert_close(a, b, f"second derivative d/d{what}", atol=1e-9 * max(1.0, float(b.abs().max())))
    W = layer.weight_hh_l0
    v = torch.randn(W.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    eps, sides = 1e-5, []
    for sign in (1, -1):
        with torch.no_grad():
            W += sign * eps * v
        (dx,) = torch.autograd.grad(weighted_sum(flatten(trace_recomputed(layer, x, hx)), seed=3), [x])
        sides.append((dx**2).sum())
        with torch.no_grad():
            W -= sign * eps * v
    finite = (sides[0] - sides[1]) / (2 * eps)
    analytic = (fast[3] * v).sum()
    assert abs(float(finite - analytic)) <= 1e-6 * max(1.0, abs(float(analytic))), (float(finite), float(analytic))


class TraceFields(torch.nn.Module):
    """trace_recomputed of `layer` as a module, so that torch.func.functional_call can swap its weights."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, h0, c0):
        output, (_, c_n), trace = trace_recomputed(self.layer, x, (h0, c0))
        return output, c_n, trace.c, trace.f


def test_trace_gradgradcheck_through_cellscan(monkeypatch):
    """gradgradcheck of the whole fast trace on a tiny case made to take CellScan (CHUNK_BELOW lowered)."""
    import lstmkit.nn.rnn.cell_scan as cell_scan_module

    monkeypatch.setattr(cell_scan_module, "CHUNK_BELOW", 1)
    layer, x, hx = make((1, True, False, False, 0, True, True, 3, 2, 2))
    module = TraceFields(layer)

    def fields(x, h0, c0, W_hh_reverse):
        return torch.func.functional_call(module, {"layer.weight_hh_l0_reverse": W_hh_reverse}, (x, h0, c0))

    W = layer.weight_hh_l0_reverse.detach().clone().requires_grad_()
    assert torch.autograd.gradgradcheck(fields, (x, *hx, W))


@pytest.mark.parametrize("reverse", [False, True])
def test_cell_scans_under_torch_func_transforms(reverse):
    """jacrev (vmap over the backward), jacfwd (forward mode, `jvp`) and hessian (both) of each scan, against
    autograd's jacobian and hessian, with respect to each input in turn (the others then are not vmapped)."""
    g_ = torch.Generator().manual_seed(1)
    f, i, g = (torch.rand(4, 2, 3, generator=g_, dtype=F64) for _ in range(3))
    c0 = torch.randn(2, 3, generator=g_, dtype=F64)
    cases = [(CellScan, [f, i, g, c0], k) for k in range(4)] + [(AdjointScan, [f, i], k) for k in range(2)]
    for Scan, args, k in cases:

        def fn(a, Scan=Scan, args=args, k=k):
            return Scan.apply(*args[:k], a, *args[k + 1 :], reverse)

        def loss(a, fn=fn):
            return fn(a).square().sum()

        what = f"{Scan.__name__} input {k}"
        expected_jacobian = torch.autograd.functional.jacobian(fn, args[k])
        assert_close(torch.func.jacrev(fn)(args[k]), expected_jacobian, f"jacrev, {what}", atol=1e-14)
        assert_close(torch.func.jacfwd(fn)(args[k]), expected_jacobian, f"jacfwd, {what}", atol=1e-14)
        expected_hessian = torch.autograd.functional.hessian(loss, args[k])
        assert_close(torch.func.hessian(loss)(args[k]), expected_hessian, f"hessian, {what}", atol=1e-13)


def test_trace_hessian_by_torch_func_through_cellscan(monkeypatch):
    """torch.func.hessian of a loss of the whole fast trace (made to take CellScan) == the loop's, by autograd."""
    import lstmkit.nn.rnn.cell_scan as cell_scan_module

    monkeypatch.setattr(cell_scan_module, "CHUNK_BELOW", 1)
    layer, x, (h0, c0) = make((1, True, False, False, 0, True, True, 3, 2, 2))
    x, h0 = x.detach(), h0.detach()

    def loss(c0, trace=trace_recomputed):
        output, (_, c_n), fields = trace(layer, x, (h0, c0))
        return output.square().sum() + (fields.c * fields.f).sum() + c_n.sum()

    expected = torch.autograd.functional.hessian(lambda c0: loss(c0, trace_loop), c0.detach())
    assert_close(torch.func.hessian(loss)(c0.detach()), expected, "hessian by c0", atol=1e-12)
