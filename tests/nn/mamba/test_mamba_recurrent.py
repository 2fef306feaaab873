"""The torch selective scan's recurrent form == the NumPy reference cell (float64); masks; bad input."""

import numpy as np
import pytest
import torch

from lstmkit.nn.mamba import MambaState, selective_scan_recurrent
from lstmkit.reference import mamba as ref

C, N, T = 3, 4, 7


def reference_run(seed: int, gated: bool):
    """A random reference cell over T steps from a random h0, and its traces."""
    rng = np.random.default_rng(seed)
    p = ref.MambaParams(
        A=-rng.uniform(0.2, 2.0, (C, N)),
        W_delta=rng.normal(size=(C, C)),
        b_delta=rng.normal(size=C),
        W_B=rng.normal(size=(N, C)),
        W_C=rng.normal(size=(N, C)),
        D=rng.normal(size=C),
    )
    xs, zs, h0 = rng.normal(size=(T, C)), rng.normal(size=(T, C)), rng.normal(size=(C, N))
    return p, ref.run(p, xs, ref.MambaState(h0), gate=zs if gated else None)


def torch_inputs(p, steps):
    """The scan's inputs from the reference's traces, batch 1, float64."""
    t = lambda a: torch.tensor(np.array(a), dtype=torch.float64)  # noqa: E731
    x, delta = t([s.x for s in steps])[None], t([s.delta for s in steps])[None]
    B, Cm = t([s.B for s in steps])[None], t([s.C for s in steps])[None]
    z = None if steps[0].gate is None else t([s.gate for s in steps])[None]
    return x, delta, t(p.A), B, Cm, t(p.D), z, MambaState(t(steps[0].h_prev)[None])


@pytest.mark.parametrize("gated", [False, True])
def test_recurrent_form_is_the_reference_cell(gated):
    p, steps = reference_run(0, gated)
    x, delta, A, B, Cm, D, z, h0 = torch_inputs(p, steps)
    y, state = selective_scan_recurrent(x, delta, A, B, Cm, D, z, h0)
    np.testing.assert_allclose(y[0].numpy(), [s.out for s in steps], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.h[0].numpy(), steps[-1].h, rtol=1e-12, atol=1e-12)


def test_reset_starts_from_the_empty_state_and_padding_keeps_it():
    p, steps = reference_run(1, gated=False)
    x, delta, A, B, Cm, D, _, h0 = torch_inputs(p, steps)
    reset = torch.zeros(1, T, dtype=torch.bool)
    reset[0, 3] = True
    y, state = selective_scan_recurrent(x, delta, A, B, Cm, D, state=h0, reset=reset)
    y2, state2 = selective_scan_recurrent(x[:, 3:], delta[:, 3:], A, B[:, 3:], Cm[:, 3:], D)
    torch.testing.assert_close(y[:, 3:], y2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state.h, state2.h, rtol=1e-12, atol=1e-12)
    valid = torch.ones(1, T, dtype=torch.bool)
    valid[0, 4:] = False
    _, padded = selective_scan_recurrent(x, delta, A, B, Cm, D, state=h0, valid=valid)
    _, short = selective_scan_recurrent(x[:, :4], delta[:, :4], A, B[:, :4], Cm[:, :4], D, state=h0)
    torch.testing.assert_close(padded.h, short.h, rtol=0, atol=0)


def test_whole_equals_pieces_and_empty_sequence():
    p, steps = reference_run(2, gated=True)
    x, delta, A, B, Cm, D, z, h0 = torch_inputs(p, steps)
    y, state = selective_scan_recurrent(x, delta, A, B, Cm, D, z, h0)
    ya, mid = selective_scan_recurrent(x[:, :2], delta[:, :2], A, B[:, :2], Cm[:, :2], D, z[:, :2], h0)
    yb, end = selective_scan_recurrent(x[:, 2:], delta[:, 2:], A, B[:, 2:], Cm[:, 2:], D, z[:, 2:], mid)
    torch.testing.assert_close(torch.cat([ya, yb], 1), y, rtol=0, atol=0)
    torch.testing.assert_close(end.h, state.h, rtol=0, atol=0)
    y0, same = selective_scan_recurrent(x[:, :0], delta[:, :0], A, B[:, :0], Cm[:, :0], D, z[:, :0], h0)
    assert y0.shape == (1, 0, C) and torch.equal(same.h, h0.h)


BAD = [
    (lambda a: a.update(x=torch.zeros(2, 3)), r"x is \(2, 3\), expected a tensor \(B, T, D\)"),
    (lambda a: a.update(A=torch.zeros(2, N, dtype=torch.float64)), r"A is \(2, 4\), expected \(D, N\) with D = 3"),
    (lambda a: a.update(B=a["B"][:, :, :2]), r"B is \(1, 7, 2\), expected \(1, 7, 4\)"),
    (lambda a: a.update(delta=a["delta"].float()), r"delta is torch.float32, expected torch.float64 as x"),
    (lambda a: a["x"].__setitem__((0, 2, 1), float("nan")), r"x contains NaN at index \(0, 2, 1\)"),
    (lambda a: a.update(state=(1, 2)), r"state is a tuple, expected a MambaState\(h\)"),
]


@pytest.mark.parametrize(("mutate", "message"), BAD)
def test_bad_input_is_one_line(mutate, message):
    p, steps = reference_run(3, gated=False)
    x, delta, A, B, Cm, D, _, h0 = torch_inputs(p, steps)
    args = {"x": x, "delta": delta, "A": A, "B": B, "C": Cm, "D": D, "state": h0}
    mutate(args)
    with pytest.raises(ValueError, match=message) as err:
        selective_scan_recurrent(**args)
    assert "\n" not in str(err.value)


def test_reset_mask_is_checked():
    p, steps = reference_run(4, gated=False)
    x, delta, A, B, Cm, D, _, _ = torch_inputs(p, steps)
    with pytest.raises(ValueError, match=r"reset is \(1, 3\) torch.bool, expected torch.bool of shape \(B, T\)"):
        selective_scan_recurrent(x, delta, A, B, Cm, D, reset=torch.zeros(1, 3, dtype=torch.bool))
