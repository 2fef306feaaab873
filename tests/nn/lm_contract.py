"""What every streaming language model promises (xLSTMLM, xLSTMLarge, MambaLM, Mamba2LM), as checks on one model in
float64: whole == pieces, right padding, document resets (values and gradients), greedy generation. The model
files' tests call them on their own models."""

from __future__ import annotations

import torch

from lstmkit.nn import LMState
from tests.helpers import assert_close, document_spans, peak

F64 = torch.float64


def tokens(B: int, T: int, vocab: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


def leaves(state):
    """Every tensor of a (nested) state, in order."""
    if isinstance(state, torch.Tensor):
        yield state
    elif state is not None:
        for item in state:
            yield from leaves(item)


def row_of(state, row: int):
    """Batch row `row` of a (nested) state, keeping the batch axis."""
    if isinstance(state, torch.Tensor):
        return state[row : row + 1]
    if state is None:
        return None
    return type(state)(*(row_of(s, row) for s in state))


def states_close(a, b) -> None:
    """Leaf by leaf within 1e-10 · max(1, largest finite |leaf|); infinities equal."""
    for j, (x, y) in enumerate(zip(leaves(a), leaves(b), strict=True)):
        assert_close(x, y, f"state leaf {j}", atol=1e-10 * peak(y))


def check_whole_equals_pieces(model, vocab: int, cuts: tuple[int, ...], T: int = 23) -> None:
    x = tokens(3, T, vocab)
    whole, final = model(x)
    pieces, state = [], None
    for start, stop in zip((0, *cuts), (*cuts, T), strict=True):
        logits, state = model(x[:, start:stop], state)
        pieces.append(logits)
    assert_close(torch.cat(pieces, dim=1), whole, atol=1e-10 * peak(whole))
    states_close(state, final)


def check_right_padding_leaves_the_state_untouched(model, vocab: int) -> None:
    x = tokens(4, 17, vocab)
    lengths = torch.tensor([17, 9, 1, 0])
    logits, state = model(x, lengths=lengths)
    more = tokens(4, 5, vocab, seed=3)
    after, _ = model(more, state)
    for row, length in enumerate(lengths.tolist()):
        prefix_state = None
        if length:
            alone, prefix_state = model(x[row : row + 1, :length])
            assert_close(logits[row, :length], alone[0], atol=1e-10 * peak(alone[0]))
        continued, _ = model(more[row : row + 1], prefix_state)
        assert_close(after[row], continued[0], atol=1e-10 * peak(continued[0]))


def check_reset_starts_a_fresh_document(model, vocab: int) -> None:
    x = tokens(2, 21, vocab)
    reset = torch.zeros(2, 21, dtype=torch.bool)
    reset[0, 7] = reset[0, 15] = True
    reset[1, 0] = True  # a reset at the start changes nothing
    logits, state = model(x, reset=reset)
    plain, plain_state = model(x)
    assert_close(logits[1], plain[1], atol=1e-10 * peak(plain[1]))
    for start, stop in ((0, 7), (7, 15), (15, 21)):
        alone, alone_state = model(x[:1, start:stop])
        assert_close(logits[0, start:stop], alone[0], f"document {start}..{stop}", atol=1e-10 * peak(alone[0]))
    # the carried state of row 0 is that of the last document alone
    more = tokens(2, 4, vocab, seed=5)
    after, _ = model(more, state)
    expected = (
        model(more[:1], alone_state)[0][0],
        model(more[1:], LMState(tuple(row_of(s, 1) for s in plain_state.blocks)))[0][0],
    )
    for row in (0, 1):
        assert_close(after[row], expected[row], f"row {row} continued", atol=1e-10 * peak(expected[row]))
    assert (logits[0, 7:] - plain[0, 7:]).abs().max() > 1e-6  # the reset did something


def check_padding_and_reset_gradients_equal_each_document_alone(model, vocab: int) -> None:
    """The weights' gradients of a loss on a padded batch with resets == those of the same loss summed over each
    document run alone, unpadded (each from the fresh state); finite, in particular."""
    lengths = [19, 4, 0]
    x = tokens(3, 19, vocab)
    reset = torch.rand(3, 19, generator=torch.Generator().manual_seed(0)) < 0.2
    logits, state = model(x, lengths=torch.tensor(lengths), reset=reset)
    g = torch.Generator().manual_seed(1)
    valid = torch.arange(19) < torch.tensor(lengths)[:, None]
    w_logits = torch.randn(logits.shape, generator=g, dtype=F64) * valid[..., None]  # padded logits unspecified
    w_state = [torch.randn(t.shape, generator=g, dtype=F64) for t in leaves(state)]
    params = list(model.parameters())

    def state_loss(state, at: int, row: int):
        """The state's weighted sum: its batch entry `at`, with the weights of `row`."""
        pairs = zip(leaves(state), w_state, strict=True)
        return sum((t[at].nan_to_num(neginf=0.0) * w[row]).sum() for t, w in pairs)

    # row 2 (empty) keeps its initial state, which no weight touches
    loss = (logits * w_logits).sum() + state_loss(state, 0, 0) + state_loss(state, 1, 1)
    batch = torch.autograd.grad(loss, params)
    alone_loss = 0.0
    for row, length in enumerate(lengths):
        for start, stop in document_spans(reset[row], length):
            alone, alone_state = model(x[row : row + 1, start:stop])
            alone_loss = alone_loss + (alone * w_logits[row : row + 1, start:stop]).sum()
        if length:
            alone_loss = alone_loss + state_loss(alone_state, 0, row)
    expected = torch.autograd.grad(alone_loss, params)
    for (param, _), a, e in zip(model.named_parameters(), batch, expected, strict=True):
        assert_close(a, e, f"gradient of {param}", atol=1e-10 * peak(e))


def check_greedy_generation_is_argmax_of_a_full_forward(model, vocab: int) -> None:
    prompt = tokens(2, 6, vocab)
    out = model.generate(prompt, max_new_tokens=12, temperature=0)
    assert out.shape == (2, 18) and torch.equal(out[:, :6], prompt)
    logits, _ = model(out[:, :-1])
    assert torch.equal(out[:, 6:], logits[:, 5:].argmax(-1))
