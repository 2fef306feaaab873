"""sLSTM document resets and padding masks: the fast layer == the autograd loop with the same masks, and
both mean what they say (a reset == running the document alone; padding leaves the state untouched)."""

import pytest
import torch

from lstmkit.nn.slstm import slstm, slstm_loop, slstm_step, sLSTMCell, sLSTMState
from tests.helpers import assert_close, document_spans

F64 = torch.float64


def make(B, T, NH, DH, seed, with_state):
    """Random x, nonzero R and b (so the recurrence matters), and a random or zero initial state."""
    g = torch.Generator().manual_seed(seed)
    H = NH * DH
    x = (torch.randn(B, T, 4 * H, generator=g, dtype=F64) * 3).requires_grad_()
    R = (torch.randn(NH, 4, DH, DH, generator=g, dtype=F64) * 0.5).requires_grad_()
    b = torch.randn(4 * H, generator=g, dtype=F64).requires_grad_()
    if with_state:
        h, c, m = (torch.randn(B, H, generator=g, dtype=F64) for _ in range(3))
        state = sLSTMState(h, c, torch.rand(B, H, generator=g, dtype=F64) + 0.5, m)
    else:
        state = sLSTMState(*(torch.zeros(B, H, dtype=F64) for _ in range(4)))
    return x, R, b, sLSTMState(*(s.requires_grad_() for s in state))


def random_masks(B, T, seed, kind):
    g = torch.Generator().manual_seed(seed + 1000)
    reset = torch.rand(B, T, generator=g) < 0.25 if kind in ("both", "reset") else None
    valid = torch.rand(B, T, generator=g) < 0.7 if kind in ("both", "valid") else None
    return reset, valid


def loss_of(out, final, seed=1):
    """A random linear function of every output and every final state tensor."""
    g = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    for k, s in enumerate(final):
        loss = loss + (k + 1) * (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
    return loss


@pytest.mark.parametrize("kind", ["both", "reset", "valid"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_fast_layer_equals_the_autograd_loop_with_masks(seed, with_state, kind):
    g = torch.Generator().manual_seed(seed)
    B, T, NH, DH = (int(torch.randint(lo, hi + 1, (), generator=g)) for lo, hi in ((1, 4), (1, 10), (1, 3), (1, 3)))
    x, R, b, state = make(B, T, NH, DH, seed, with_state)
    reset, valid = random_masks(B, T, seed, kind)
    inputs = [x, R, b, *state]
    results = []
    for fn in (slstm_loop, slstm):
        out, final = fn(x, R, b, state, reset=reset, valid=valid)
        results.append((out, final, torch.autograd.grad(loss_of(out, final), inputs)))
    (o1, f1, g1), (o2, f2, g2) = results
    assert_close(o2, o1, "h", atol=1e-10)
    for name, a, b_ in zip("hcnm", f2, f1, strict=True):
        assert_close(a, b_, f"final {name}", atol=1e-10)
    for name, a, b_ in zip(["x", "R", "b", "h0", "c0", "n0", "m0"], g2, g1, strict=True):
        assert_close(a, b_, f"gradient {name}", atol=1e-10)


@pytest.mark.parametrize("t0", [0, 1, 4, 7])
def test_reset_equals_running_the_document_alone(t0):
    B, T, NH, DH = 3, 8, 2, 3
    x, R, b, state = make(B, T, NH, DH, seed=t0, with_state=True)
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[:, t0] = True
    out, final = slstm(x, R, b, state, reset=reset)
    alone, alone_final = slstm(x[:, t0:], R, b)
    assert_close(out[:, t0:], alone, "h from the reset on", atol=1e-10)
    for name, a, b_ in zip("hcnm", final, alone_final, strict=True):
        assert_close(a, b_, f"final {name}", atol=1e-10)
    before, _ = slstm(x[:, :t0], R, b, state) if t0 else (out[:, :0], None)
    assert_close(out[:, :t0], before, "h before the reset", atol=1e-10)

    # No gradient crosses a reset: exactly zero, not merely small (f = 0, m_t = ĩ, and R h_{t-1} saw zeros).
    loss = loss_of(out[:, t0:], final)
    dx, *d_state = torch.autograd.grad(loss, [x, *state])
    assert torch.equal(dx[:, :t0], torch.zeros_like(dx[:, :t0])), "gradient leaked into the previous document"
    for name, d in zip("hcnm", d_state, strict=True):
        assert torch.equal(d, torch.zeros_like(d)), f"gradient leaked into the initial state {name}"
    dx_alone = torch.autograd.grad(loss_of(alone, alone_final), x)[0]
    assert_close(dx[:, t0:], dx_alone[:, t0:], "dx after the reset", atol=1e-10)


def test_reset_at_a_different_step_per_row_through_the_cell():
    B, T, NH, DH = 4, 9, 2, 2
    x, R, b, state = make(B, T, NH, DH, seed=5, with_state=True)
    cell = sLSTMCell(NH * DH, num_heads=NH, dtype=F64)
    with torch.no_grad():
        cell.R.copy_(R)
        cell.b.copy_(b)
    starts = [0, 2, 5, 8]
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[torch.arange(B), starts] = True
    out, final = cell(x, state, reset=reset)
    for row, t0 in enumerate(starts):
        alone, alone_final = cell(x[row : row + 1, t0:])
        assert_close(out[row, t0:], alone[0], f"row {row}: h from its reset at {t0}", atol=1e-10)
        for name, a, b_ in zip("hcnm", final, alone_final, strict=True):
            assert_close(a[row], b_[0], f"row {row}: final {name}", atol=1e-10)


@pytest.mark.parametrize("with_state", [False, True])
def test_right_padding_equals_each_row_alone(with_state):
    lengths = [0, 1, 4, 7]
    B, T, NH, DH = len(lengths), 7, 2, 3
    x, R, b, state = make(B, T, NH, DH, seed=11, with_state=with_state)
    valid = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    out, final = slstm(x, R, b, state if with_state else None, valid=valid)
    loss = loss_of(out, final)
    dx, dR, db = torch.autograd.grad(loss, [x, R, b])
    assert torch.equal(dx[~valid], torch.zeros_like(dx[~valid])), "padding got a gradient"
    g = torch.Generator().manual_seed(1)
    w_out = torch.randn(out.shape, generator=g, dtype=F64)
    w_state = [(k + 1) * torch.randn(s.shape, generator=g, dtype=F64) for k, s in enumerate(final)]
    dR_rows, db_rows = torch.zeros_like(dR), torch.zeros_like(db)
    for row, L in enumerate(lengths):
        row_state = sLSTMState(*(s[row : row + 1] for s in state))
        if L:
            alone, alone_final = slstm(x[row : row + 1, :L], R, b, row_state if with_state else None)
        else:
            alone, alone_final = out[row : row + 1, :0], row_state
        assert_close(out[row, :L], alone[0], f"row {row} (length {L}): h", atol=1e-10)
        carried = alone_final.h[0].expand(T - L, -1)
        assert torch.equal(out[row, L:], carried), f"row {row} (length {L}): padded outputs are not the carried h"
        for name, a, b_ in zip("hcnm", final, alone_final, strict=True):
            assert_close(a[row], b_[0], f"row {row} (length {L}): final {name}", atol=1e-10)
        # The same loss restricted to this row, computed on the prefix alone: the padded outputs are the
        # final h repeated, so their weights land on the final h.
        if L:
            row_loss = (alone[0] * w_out[row, :L]).sum() + (alone_final.h[0] * w_out[row, L:].sum(0)).sum()
            row_loss = row_loss + sum((s[0] * w[row]).sum() for s, w in zip(alone_final, w_state, strict=True))
            dx_row, dR_row, db_row = torch.autograd.grad(row_loss, [x, R, b])
            assert_close(dx[row, :L], dx_row[row, :L], f"row {row} (length {L}): dx", atol=1e-10)
            dR_rows, db_rows = dR_rows + dR_row, db_rows + db_row
    assert_close(dR, dR_rows, "dR = the sum over rows run alone", atol=1e-10)
    assert_close(db, db_rows, "db = the sum over rows run alone", atol=1e-10)


def test_left_padding_restarts_on_the_first_real_token():
    """With state=None a left-padded row enters its first real token with n = 0: the restart rule must apply
    there, not only at t = 0."""
    lengths = [0, 2, 5, 6]
    B, T, NH, DH = len(lengths), 6, 2, 2
    x, R, b, _ = make(B, T, NH, DH, seed=3, with_state=False)
    valid = torch.arange(T)[None, :] >= T - torch.tensor(lengths)[:, None]
    out, final = slstm(x, R, b, valid=valid)
    for row, L in enumerate(lengths):
        assert torch.equal(out[row, : T - L], torch.zeros(T - L, NH * DH, dtype=F64)), f"row {row}: padding h"
        if L:
            alone, alone_final = slstm(x[row : row + 1, T - L :], R, b)
            assert_close(out[row, T - L :], alone[0], f"row {row} (length {L}): h", atol=1e-10)
            for name, a, b_ in zip("hcnm", final, alone_final, strict=True):
                assert_close(a[row], b_[0], f"row {row} (length {L}): final {name}", atol=1e-10)


@pytest.mark.parametrize("fn", [slstm, slstm_loop])
def test_padding_leaves_the_state_untouched_at_every_step(fn):
    """Any pattern: the state after a padded step is bit for bit the state before it, and so is the output."""
    B, T, NH, DH = 4, 8, 2, 2
    x, R, b, state = make(B, T, NH, DH, seed=7, with_state=True)
    reset, valid = random_masks(B, T, seed=7, kind="both")
    reset[:, :] = reset | ~valid  # a reset at a padded position is ignored
    with torch.no_grad():
        out, _ = fn(x, R, b, state, reset=reset, valid=valid)
        previous = state
        for t in range(T):
            _, after = fn(x[:, : t + 1], R, b, state, reset=reset[:, : t + 1], valid=valid[:, : t + 1])
            pad = ~valid[:, t]
            for name, a, a_prev in zip("hcnm", after, previous, strict=True):
                assert torch.equal(a[pad], a_prev[pad]), f"step {t}: padding changed {name}"
            assert torch.equal(out[pad, t], previous.h[pad]), f"step {t}: padded output is not the carried h"
            previous = after


def test_no_masks_is_bit_identical_to_trivial_masks():
    B, T, NH, DH = 3, 7, 2, 3
    x, R, b, state = make(B, T, NH, DH, seed=2, with_state=True)
    no_reset, all_valid = torch.zeros(B, T, dtype=torch.bool), torch.ones(B, T, dtype=torch.bool)
    results = []
    for masks in ({}, {"reset": None, "valid": None}, {"reset": no_reset, "valid": all_valid}):
        out, final = slstm(x, R, b, state, **masks)
        results.append([out, *final, *torch.autograd.grad(loss_of(out, final), [x, R, b, *state])])
    for other in results[1:]:
        for k, (a, b_) in enumerate(zip(results[0], other, strict=True)):
            assert torch.equal(a, b_), f"tensor {k} (out, h, c, n, m, dx, dR, db, dh0, dc0, dn0, dm0) differs"


@pytest.mark.parametrize("fn", [slstm, slstm_loop])
def test_reset_at_the_first_step_equals_the_zero_state(fn):
    B, T, NH, DH = 3, 6, 2, 3
    x, R, b, state = make(B, T, NH, DH, seed=4, with_state=True)
    zero = sLSTMState(*(torch.zeros_like(s) for s in state))
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[:, 0] = True
    plain, plain_final = fn(x, R, b, zero)
    for start in (zero, state):  # from the zero state the reset changes nothing; from any other it forgets it
        out, final = fn(x, R, b, start, reset=reset)
        assert torch.equal(out, plain)
        for name, a, b_ in zip("hcnm", final, plain_final, strict=True):
            assert torch.equal(a, b_), f"final {name}"


def test_step_masks_mirror_the_sequence_masks():
    B, T, NH, DH = 3, 5, 1, 2
    x, R, b, state = make(B, T, NH, DH, seed=9, with_state=True)
    reset, valid = random_masks(B, T, seed=9, kind="both")
    with torch.no_grad():
        out, final = slstm(x, R, b, state, reset=reset, valid=valid)
        s = state
        for t in range(T):
            h, s = slstm_step(x[:, t], R, b, s, reset=reset[:, t], valid=valid[:, t])
            assert_close(h, out[:, t], f"step {t}: h", atol=1e-10)
    for name, a, b_ in zip("hcnm", s, final, strict=True):
        assert_close(a, b_, f"final {name}", atol=1e-10)


def test_bad_masks():
    B, T, NH, DH = 2, 5, 2, 2
    x, R, b, state = make(B, T, NH, DH, seed=0, with_state=False)
    ok = torch.ones(B, T, dtype=torch.bool)
    cases = [
        ({"reset": ok.long()}, r"reset is \(2, 5\) torch.int64, expected torch.bool of shape \(B, T\) = \(2, 5\)"),
        ({"valid": ok.float()}, r"valid is \(2, 5\) torch.float32, expected torch.bool of shape \(B, T\) = \(2, 5\)"),
        ({"valid": ok[:, :4]}, r"valid is \(2, 4\) torch.bool, expected torch.bool of shape \(B, T\) = \(2, 5\)"),
        ({"reset": ok.T}, r"reset is \(5, 2\) torch.bool, expected torch.bool of shape \(B, T\) = \(2, 5\)"),
        ({"reset": ok[:, 0]}, r"reset is \(2,\) torch.bool, expected torch.bool of shape \(B, T\) = \(2, 5\)"),
        ({"valid": [[True] * T] * B}, r"valid is a list, expected a torch.bool tensor of shape \(B, T\) = \(2, 5\)"),
    ]
    cell = sLSTMCell(NH * DH, num_heads=NH, dtype=F64)
    for masks, message in cases:
        with pytest.raises(ValueError, match=message):
            slstm(x, R, b, **masks)
        with pytest.raises(ValueError, match=message):
            slstm_loop(x, R, b, state, **masks)
        with pytest.raises(ValueError, match=message):
            cell(x, **masks)
    with pytest.raises(ValueError, match=r"reset is \(2, 5\) torch.bool, expected torch.bool of shape \(B,\) = \(2,\)"):
        slstm_step(x[:, 0], R, b, state, reset=ok)
    with pytest.raises(ValueError, match=r"valid is \(2,\) torch.uint8, expected torch.bool of shape \(B,\) = \(2,\)"):
        slstm_step(x[:, 0], R, b, state, valid=ok[:, 0].to(torch.uint8))


@pytest.mark.parametrize("fn", [slstm, slstm_loop])
def test_masked_gradients_equal_each_document_alone(fn):
    """Right padding and a reset at a different step per row (some on padding, ignored): the gradients of a loss
    on the batch == those of the same loss summed over each document run alone, unpadded (the first from the
    row's state, the rest from the zero state); with respect to x, R, b and the initial state."""
    lengths, T, NH, DH = [8, 5, 3, 0], 8, 2, 2
    B = len(lengths)
    x, R, b, state = make(B, T, NH, DH, seed=13, with_state=True)
    valid = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[0, [2, 6]] = reset[1, 3] = reset[2, 5] = reset[3, 1] = True  # rows 2 and 3: on padding
    leaves = [x, R, b, *state]
    zero = sLSTMState(*(torch.zeros(1, NH * DH, dtype=F64) for _ in range(4)))
    g = torch.Generator().manual_seed(3)
    w_out = torch.randn(B, T, NH * DH, generator=g, dtype=F64) * valid[..., None]
    w_state = [torch.randn(s.shape, generator=g, dtype=F64) for s in state]

    out, final = fn(x, R, b, state, reset=reset, valid=valid)
    loss = (out * w_out).sum() + sum((s * w).sum() for s, w in zip(final, w_state, strict=True))
    batch = torch.autograd.grad(loss, leaves)

    alone_loss = 0.0
    for row, L in enumerate(lengths):
        s_alone = sLSTMState(*(s[row : row + 1] for s in state))
        for start, stop in document_spans(reset[row], L):
            alone, s_alone = fn(x[row : row + 1, start:stop], R, b, s_alone if start == 0 else zero)
            alone_loss = alone_loss + (alone * w_out[row : row + 1, start:stop]).sum()
        alone_loss = alone_loss + sum((s * w[row : row + 1]).sum() for s, w in zip(s_alone, w_state, strict=True))
    expected = torch.autograd.grad(alone_loss, leaves)
    for name, a, e in zip(["x", "R", "b", "h0", "c0", "n0", "m0"], batch, expected, strict=True):
        assert_close(a, e, f"gradient {name}", atol=1e-10)
