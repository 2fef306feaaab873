"""mLSTM document-reset and padding masks: the three forms agree (float64, 1e-10), a reset equals starting
the row over from the empty state, padding equals deleting the padded tokens, and nothing turns NaN."""

from itertools import pairwise

import pytest
import torch

from lstmkit.nn.mlstm import empty_state, mlstm_chunkwise, mlstm_parallel, mlstm_recurrent, mlstm_step, mLSTMState
from lstmkit.nn.mlstm.state import zero_state
from tests.helpers import assert_close, document_spans
from tests.nn.mlstm.draw import inputs

F64 = torch.float64
INF = torch.inf

FORMS = {
    "recurrent": mlstm_recurrent,
    "parallel": mlstm_parallel,
    "chunkwise-4": lambda *a, **kw: mlstm_chunkwise(*a, chunk_size=4, **kw),
    "chunkwise-5": lambda *a, **kw: mlstm_chunkwise(*a, chunk_size=5, **kw),
}


def make_state(kind, B, NH, DK, DV, seed, requires_grad=False):
    """None (the default m = 0), "random" (C, n, m all random) or "empty" (m = -inf)."""
    if kind == "none":
        return None
    g = torch.Generator().manual_seed(seed + 100)
    if kind == "empty":
        return mLSTMState(
            torch.zeros(B, NH, DK, DV, dtype=F64),
            torch.zeros(B, NH, DK, dtype=F64),
            torch.full((B, NH), -INF, dtype=F64),
        )
    C, n = torch.randn(B, NH, DK, DV, generator=g, dtype=F64), torch.randn(B, NH, DK, generator=g, dtype=F64)
    m = torch.randn(B, NH, generator=g, dtype=F64)
    return mLSTMState(*(x.requires_grad_(requires_grad) for x in (C, n, m)))


def random_masks(B, T, seed, p_reset=0.25, p_pad=0.3):
    g = torch.Generator().manual_seed(seed + 200)
    return torch.rand(B, T, generator=g) < p_reset, torch.rand(B, T, generator=g) >= p_pad


def sub(x, b, span):
    """Row b (kept as a batch of one) and time steps `span` of a (B, NH, T, ...) tensor."""
    return x[b : b + 1, :, span]


def row_state(state, b):
    return mLSTMState(*(x[b : b + 1] for x in state))


def finite_or_zero(x):
    return torch.where(torch.isfinite(x), x, 0.0)


def loss_on_valid(h, final, valid, seed=1):
    """A random linear function of the valid outputs and of the final state (m only where finite)."""
    g = torch.Generator().manual_seed(seed)
    keep = valid[:, None, :, None]
    loss = (torch.where(keep, h, 0.0) * torch.randn(h.shape, generator=g, dtype=F64)).sum()
    loss = loss + (final.C * torch.randn(final.C.shape, generator=g, dtype=F64)).sum() + final.n.sum()
    return loss + finite_or_zero(final.m).sum()


@pytest.mark.parametrize("T", [1, 6, 13, 20])
@pytest.mark.parametrize("state_kind", ["none", "random", "empty"])
@pytest.mark.parametrize("seed", [0, 1])
def test_forms_agree_with_random_masks(T, state_kind, seed):
    B, NH, DK, DV = 3, 2, 3, 4
    reset, valid = random_masks(B, T, seed=seed + T)
    results = {}
    for name, form in FORMS.items():
        q, k, v, i, f = inputs(B, NH, T, DK, DV, seed=seed + T, requires_grad=True)
        state = make_state(state_kind, B, NH, DK, DV, seed=seed, requires_grad=True)
        h, final = form(q, k, v, i, f, state, reset=reset, valid=valid)
        assert torch.isfinite(h).all(), f"{name}: non-finite output"
        leaves = [q, k, v, i, f] + (list(state) if state_kind == "random" else [])
        grads = torch.autograd.grad(loss_on_valid(h, final, valid), leaves)
        assert all(torch.isfinite(g).all() for g in grads), f"{name}: non-finite gradient"
        results[name] = (h, final, grads)
    h0, s0, g0 = results["recurrent"]
    keep = valid[:, None, :, None].expand_as(h0)
    for name in FORMS:
        h, s, grads = results[name]
        assert_close(h[keep], h0[keep], f"{name} h at valid positions", atol=1e-10)
        assert_close(s, s0, name, atol=1e-10)
        for leaf, a, b in zip(["q", "k", "v", "i", "f", "C0", "n0", "m0"], grads, g0, strict=False):
            assert_close(a, b, f"{name} gradient of {leaf}", atol=1e-10)


@pytest.mark.parametrize("name", FORMS)
@pytest.mark.parametrize("state_kind", ["none", "random"])
def test_reset_starts_over_from_the_empty_state(name, state_kind):
    """Row 0 resets at 3 and 8 (inside a chunk, at a chunk boundary for L = 4), row 1 at 5, row 2 never."""
    form, (B, NH, T, DK, DV) = FORMS[name], (3, 2, 14, 3, 4)
    q, k, v, i, f = inputs(B, NH, T, DK, DV, seed=7)
    state = make_state(state_kind, B, NH, DK, DV, seed=7)
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[0, [3, 8]] = True
    reset[1, 5] = True
    h, final = form(q, k, v, i, f, state, reset=reset)
    h_plain, final_plain = form(q, k, v, i, f, state)
    for b, bounds in [(0, [3, 8, T]), (1, [5, T])]:
        first = slice(0, bounds[0])
        assert_close(h[b, :, first], h_plain[b, :, first], f"row {b} before its first reset", atol=1e-10)
        for start, stop in pairwise(bounds):
            span = slice(start, stop)
            alone = [sub(x, b, span) for x in (q, k, v, i, f)]
            h_alone, s_alone = form(*alone, empty_state(alone[0], alone[2]))
            assert_close(h[b : b + 1, :, span], h_alone, f"row {b} steps {start}..{stop - 1}", atol=1e-10)
        assert_close(row_state(final, b), s_alone, f"row {b}", atol=1e-10)
        assert float((h[b, :, bounds[0]] - h_plain[b, :, bounds[0]]).abs().max()) > 1e-3, "the reset changed nothing"
    assert_close(h[2], h_plain[2], "row 2 (no reset)", atol=1e-10)
    assert_close(row_state(final, 2), row_state(final_plain, 2), "row 2 (no reset)", atol=1e-10)


@pytest.mark.parametrize("name", FORMS)
@pytest.mark.parametrize("state_kind", ["none", "random", "empty"])
def test_right_padding_equals_running_the_valid_prefix(name, state_kind):
    form, (NH, T, DK, DV) = FORMS[name], (2, 11, 3, 4)
    lengths = torch.tensor([0, T, 4, 8])
    B = len(lengths)
    valid = torch.arange(T) < lengths[:, None]
    q, k, v, i, f = inputs(B, NH, T, DK, DV, seed=3, requires_grad=True)
    state = make_state(state_kind, B, NH, DK, DV, seed=3, requires_grad=True)
    h, final = form(q, k, v, i, f, state, valid=valid)
    assert torch.isfinite(h).all(), "padded outputs must be finite"
    initial = zero_state(q, v) if state is None else state
    for b, length in enumerate(lengths.tolist()):
        if length == 0:
            assert_close(row_state(final, b), row_state(initial, b), f"length-0 row {b}", atol=0.0)
            continue
        prefix = [sub(x, b, slice(0, length)) for x in (q, k, v, i, f)]
        h_alone, s_alone = form(*prefix, None if state is None else row_state(state, b))
        assert_close(h[b : b + 1, :, :length], h_alone, f"row {b} (length {length}) outputs", atol=1e-10)
        assert_close(row_state(final, b), s_alone, f"row {b} (length {length})", atol=1e-10)
    leaves = [q, k, v, i, f] + (list(state) if state_kind == "random" else [])
    grads = torch.autograd.grad(loss_on_valid(h, final, valid), leaves, retain_graph=True)
    assert all(torch.isfinite(g).all() for g in grads), "non-finite gradient"
    assert all(float(g[0].abs().max()) == 0.0 for g in grads[:5]), "the all-padding row's inputs must get no gradient"
    grads = torch.autograd.grad(h.sum(), leaves)  # through the padded outputs too
    assert all(torch.isfinite(g).all() for g in grads), "non-finite gradient through padded outputs"


@pytest.mark.parametrize("name", FORMS)
def test_padding_anywhere_equals_deleting_the_padded_tokens_and_their_resets(name):
    """valid = False in the middle, with resets on padding (ignored) and on valid tokens (kept)."""
    form, (B, NH, T, DK, DV) = FORMS[name], (3, 2, 13, 3, 4)
    q, k, v, i, f = inputs(B, NH, T, DK, DV, seed=11)
    state = make_state("random", B, NH, DK, DV, seed=11)
    reset, valid = random_masks(B, T, seed=11, p_reset=0.3, p_pad=0.4)
    reset[0, 2], valid[0, 2] = True, False  # a reset on padding
    valid[1, :] = False
    h, final = form(q, k, v, i, f, state, reset=reset, valid=valid)
    assert torch.isfinite(h).all()
    for b in range(B):
        kept = valid[b].nonzero().flatten()
        if len(kept) == 0:
            assert_close(row_state(final, b), row_state(state, b), f"all-padding row {b}", atol=0.0)
            continue
        packed = [sub(x, b, kept) for x in (q, k, v, i, f)]
        h_alone, s_alone = form(*packed, row_state(state, b), reset=reset[b : b + 1, kept])
        assert_close(h[b : b + 1, :, kept], h_alone, f"row {b} outputs", atol=1e-10)
        assert_close(row_state(final, b), s_alone, f"row {b}", atol=1e-10)
    h_dropped, _ = form(q, k, v, i, f, state, reset=reset & valid, valid=valid)
    assert torch.equal(h_dropped[valid[:, None].expand(B, NH, T)], h[valid[:, None].expand(B, NH, T)])


@pytest.mark.parametrize("name", FORMS)
def test_reset_at_zero_from_the_empty_state_is_no_reset_but_not_from_the_zero_state(name):
    form, (B, NH, T, DK, DV) = FORMS[name], (2, 2, 9, 3, 4)
    q, k, v, i, f = inputs(B, NH, T, DK, DV, seed=5)
    i = i - 4  # small inputs: the default m_0 = 0 then shows in the stabilizer (an eps-sized difference)
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[:, 0] = True
    empty = empty_state(q, v)
    h, s = form(q, k, v, i, f, empty, reset=reset)
    h0, s0 = form(q, k, v, i, f, empty)
    assert torch.equal(h, h0)
    assert all(torch.equal(a, b) for a, b in zip(s, s0, strict=True))
    h_zero, _ = form(q, k, v, i, f, reset=reset)
    h_zero_plain, _ = form(q, k, v, i, f)
    assert_close(h_zero, h, "reset from the zero state == the empty state", atol=1e-10)
    assert float((h_zero - h_zero_plain).abs().max()) > 1e-10, "a reset must replace m = 0 by m = -inf"


@pytest.mark.parametrize("name", FORMS)
@pytest.mark.parametrize("state_kind", ["none", "random"])
def test_no_masks_equal_trivial_masks_bit_for_bit(name, state_kind):
    form, (B, NH, T, DK, DV) = FORMS[name], (2, 2, 11, 3, 4)
    q, k, v, i, f = inputs(B, NH, T, DK, DV, seed=2)
    state = make_state(state_kind, B, NH, DK, DV, seed=2)
    h, s = form(q, k, v, i, f, state)
    no_reset, all_valid = torch.zeros(B, T, dtype=torch.bool), torch.ones(B, T, dtype=torch.bool)
    for masks in ({"reset": no_reset}, {"valid": all_valid}, {"reset": no_reset, "valid": all_valid}):
        h_m, s_m = form(q, k, v, i, f, state, **masks)
        assert torch.equal(h_m, h), f"{list(masks)}: outputs differ"
        assert all(torch.equal(a, b) for a, b in zip(s_m, s, strict=True)), f"{list(masks)}: states differ"


def test_step_masks_reset_and_keep_the_state():
    B, NH, DK, DV = 3, 2, 3, 4
    q, k, v, i, f = (x[:, :, 0] for x in inputs(B, NH, 1, DK, DV, seed=4))
    state = make_state("random", B, NH, DK, DV, seed=4)
    _, kept = mlstm_step(q, k, v, i, f, state, valid=torch.tensor([False, True, False]))
    _, moved = mlstm_step(q, k, v, i, f, state)
    for field, a, old, new in zip("Cnm", kept, state, moved, strict=True):
        assert torch.equal(a[[0, 2]], old[[0, 2]]), f"padded rows: {field} changed"
        assert torch.equal(a[1], new[1]), f"valid row: {field} differs from the plain step"
    h_reset, s_reset = mlstm_step(q, k, v, i, f, state, reset=torch.tensor([True, False, False]))
    h_empty, s_empty = mlstm_step(q[:1], k[:1], v[:1], i[:1], f[:1], empty_state(q[:1, :, None], v[:1, :, None]))
    assert_close(h_reset[:1], h_empty, "step after a reset", atol=1e-10)
    assert_close(row_state(s_reset, 0), s_empty, "step after a reset", atol=1e-10)


EXPECTED = r"expected torch.bool of shape \(B, T\) = \(2, 5\)"


@pytest.mark.parametrize("arg", ["reset", "valid"])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(2, 5), r"is \(2, 5\) torch.float32, " + EXPECTED),
        (
            torch.zeros(2, 6, dtype=torch.bool),
            r"is \(2, 6\) torch.bool, " + EXPECTED,
        ),
        (
            torch.zeros(2, 3, 5, dtype=torch.bool),
            r"is \(2, 3, 5\) torch.bool, " + EXPECTED,
        ),
        ([[True] * 5] * 2, r"is a list, expected a torch.bool tensor of shape \(B, T\) = \(2, 5\)"),
    ],
)
def test_bad_masks(arg, bad, message):
    args = inputs(2, 3, 5, 3, 2, seed=0)
    for form in FORMS.values():
        with pytest.raises(ValueError, match=f"^{arg} {message}"):
            form(*args, **{arg: bad})
    step_args = [x[:, :, 0] for x in args]
    with pytest.raises(
        ValueError, match=rf"^{arg} is \(2, 5\) torch.bool, expected torch.bool of shape \(B,\) = \(2,\)"
    ):
        mlstm_step(*step_args, make_state("random", 2, 3, 3, 2, seed=0), **{arg: torch.zeros(2, 5, dtype=torch.bool)})


@pytest.mark.parametrize("name", FORMS)
def test_masked_gradients_equal_each_document_alone(name):
    """Right padding and resets (some on padding, ignored): the gradients of a loss on the batch == those of the
    same loss summed over each document run alone, unpadded (the first from the row's state, the rest from
    the empty state); with respect to q, k, v, i, f and the initial state."""
    form, (NH, T, DK, DV) = FORMS[name], (2, 11, 3, 4)
    lengths = [T, 6, 0]
    B = len(lengths)
    valid = torch.arange(T) < torch.tensor(lengths)[:, None]
    reset = torch.zeros(B, T, dtype=torch.bool)
    reset[0, [3, 8]] = True
    reset[1, [4, 8]] = True  # 8 is padding
    reset[2, 2] = True  # padding
    q, k, v, i, f = inputs(B, NH, T, DK, DV, seed=5, requires_grad=True)
    state = make_state("random", B, NH, DK, DV, seed=5, requires_grad=True)
    leaves = [q, k, v, i, f, *state]
    g = torch.Generator().manual_seed(2)
    w_h = torch.randn(B, NH, T, DV, generator=g, dtype=F64) * valid[:, None, :, None]  # padded outputs unspecified
    w_state = [torch.randn(s.shape, generator=g, dtype=F64) for s in state]

    h, final = form(q, k, v, i, f, state, reset=reset, valid=valid)
    loss = (h * w_h).sum() + sum((s * w).sum() for s, w in zip(final, w_state, strict=True))
    batch = torch.autograd.grad(loss, leaves)

    alone_loss = 0.0
    for b in range(B):
        s_alone = row_state(state, b)
        for start, stop in document_spans(reset[b], lengths[b]):
            span = slice(start, stop)
            doc = [sub(x, b, span) for x in (q, k, v, i, f)]
            h_alone, s_alone = form(*doc, s_alone if start == 0 else empty_state(doc[0], doc[2]))
            alone_loss = alone_loss + (h_alone * sub(w_h, b, span)).sum()
        alone_loss = alone_loss + sum((s * w[b : b + 1]).sum() for s, w in zip(s_alone, w_state, strict=True))
    alone = torch.autograd.grad(alone_loss, leaves)
    for leaf, a, e in zip(["q", "k", "v", "i", "f", "C0", "n0", "m0"], batch, alone, strict=True):
        assert_close(a, e, f"{name}: gradient of {leaf}", atol=1e-10)
