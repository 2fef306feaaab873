"""What happens inside a trained model for one input sequence: every gate and state, as named NumPy arrays.

    run = load_run("runs/bard")
    inputs = inputs_for(run, text="ROMEO: What say you?")   # or, without text, a test-split sequence
    recording = record(run.model, inputs)
    recording.layers[0].f                                   # (T, H): layer 0's forget gate at every step

Nothing is recomputed by hand; every number comes from the model's own code:

    rnn, gru, lstm                   body.trace(...): the readable loop, tested equal to PyTorch's kernel
    slstm, mlstm, xlstm, xlstm-large the body stepped one token at a time with its state carried (tested
                                     equal to one whole-sequence call); each block's state read after each step
    mamba, mamba2                    the same stepping; Δ, which no state holds, taken by a forward hook from
                                     the mixer's own projection at each step: Mamba Δ = softplus(dt_proj's
                                     output), Mamba-2 Δ = layer.delta(the last H columns of in_proj's output).
                                     That softplus and that slice are all that is computed here; the state
                                     sizes are the norms of the states the blocks return

What is recorded, per layer (rnn, gru, lstm) or block (xLSTM and Mamba families), bottom to top:

    LSTMActivations    i, f, g, o, c, h         each (T, H)
    GRUActivations     r, z, n, h               each (T, H)
    RNNActivations     h                        (T, H)
    sLSTMActivations   c, n, m, h               each (T, E)   cell, normalizer, stabilizer, output
    mLSTMActivations   C (T, NH, DK, DV), n (T, NH, DK), m (T, NH)   the matrix memory, per head
    MambaActivations   delta, size              each (T, I)   step size Δ; ‖h‖ over N, per channel
    Mamba2Activations  delta, size              each (T, NH)  step size Δ; ‖h‖ over P × N, per head

Shapes: T time steps, H hidden units, E embedding width, NH heads, DK key size, DV value size;
Mamba: I inner channels (2E), N state size; Mamba-2: P head size (I / NH).

Inputs, by what the run's task reads:
    a character language model (the run stores its vocabulary)   text -> the vocabulary's ids
    sentiment (tokens are UTF-8 bytes)                            text -> its bytes
    anything else, or no text                                     one sequence of the task's test split,
                                                                  drawn from a fixed seed
"""

from __future__ import annotations

import codecs
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.nn import CausalTransformer
from lstmkit.nn.mamba.lm import MambaStack
from lstmkit.nn.mamba.mixer import MambaMixer
from lstmkit.nn.mlstm.state import mLSTMState
from lstmkit.nn.slstm import sLSTMState
from lstmkit.tasks.real.shakespeare import CharVocab

BYTE_TASKS = ("sentiment",)
"""Tasks whose tokens are the UTF-8 bytes of a text (vocabulary 256)."""
MAX_TEXT = 2000
"""The longest text (in characters) a picture is drawn for."""


class Inputs(NamedTuple):
    x: Tensor
    """(1, T) token ids or (1, T, I) vectors: one sequence, no padding."""
    labels: tuple[str, ...]
    """One short label per step for time axes: its character, its token id, or "" (vector inputs)."""
    text: str | None
    """The text the steps spell (character and byte models), else None."""
    char_ends: tuple[int, ...] | None
    """text[k] has been read completely after step char_ends[k] (0-based): k itself, or its last UTF-8 byte."""
    source: str
    """Where the sequence comes from, e.g. "your text" or "test split, seed 0"."""


class LSTMActivations(NamedTuple):
    i: np.ndarray
    """Input gate σ (T, H)."""
    f: np.ndarray
    """Forget gate σ (T, H)."""
    g: np.ndarray
    """Candidate tanh (T, H)."""
    o: np.ndarray
    """Output gate σ (T, H)."""
    c: np.ndarray
    """Cell state (T, H)."""
    h: np.ndarray
    """Output o ⊙ tanh(c) (T, H)."""


class GRUActivations(NamedTuple):
    r: np.ndarray
    """Reset gate σ (T, H)."""
    z: np.ndarray
    """Update gate σ (T, H): how much of the old h is kept."""
    n: np.ndarray
    """Candidate tanh (T, H)."""
    h: np.ndarray
    """Hidden state (T, H)."""


class RNNActivations(NamedTuple):
    h: np.ndarray
    """Hidden state (T, H)."""


class sLSTMActivations(NamedTuple):
    c: np.ndarray
    """Cell state (T, E)."""
    n: np.ndarray
    """Normalizer (T, E): the same sum as c with 1 in place of z, so |c / n| ≤ 1."""
    m: np.ndarray
    """Stabilizer (T, E): the running max of the log gates that keeps exp(ĩ), exp(f̃) finite."""
    h: np.ndarray
    """Hidden state o ⊙ c / n (T, E)."""


class mLSTMActivations(NamedTuple):
    C: np.ndarray
    """Matrix memory (T, NH, DK, DV), stabilized (divided by exp(m))."""
    n: np.ndarray
    """Normalizer (T, NH, DK), stabilized."""
    m: np.ndarray
    """Stabilizer (T, NH)."""


class MambaActivations(NamedTuple):
    delta: np.ndarray
    """Step size Δ (T, I) of every channel: large Δ takes in the input and forgets, small Δ keeps the state."""
    size: np.ndarray
    """State size (T, I): ‖h‖ over N of every channel's state after each step."""


class Mamba2Activations(NamedTuple):
    delta: np.ndarray
    """Step size Δ (T, NH) of every head: large Δ takes in the input and forgets, small Δ keeps the state."""
    size: np.ndarray
    """State size (T, NH): ‖h‖ over P × N of every head's state after each step."""


class Recording(NamedTuple):
    inputs: Inputs
    layers: tuple
    """One *Activations per layer (rnn, gru, lstm) or block (xLSTM and Mamba families), bottom to top."""
    output: np.ndarray
    """The model's output for the sequence: (O,) for regress and classify, (T, O) for tag."""


def inputs_for(run, text: str | None = None, cache_dir=None, seed: int = 0) -> Inputs:
    """`text` encoded for the run; without text, one sequence of the run's task's test split."""
    from lstmkit.experiment import task_of

    if text is not None:
        return encode_text(run, text)
    return sample_sequence(task_of(run, cache_dir), run.meta.get("vocab"), seed)


def encode_text(run, text: str) -> Inputs:
    """A character model's ids from its stored vocabulary, or a byte model's UTF-8 bytes; else a ValueError."""
    task = run.meta["task"]["name"]
    if not isinstance(text, str) or not text:
        raise ValueError("the text is empty, expected at least one character")
    if len(text) > MAX_TEXT:
        raise ValueError(f"the text has {len(text)} characters, expected at most {MAX_TEXT}")
    if "vocab" in run.meta:
        ids = CharVocab("".join(run.meta["vocab"])).encode(text)  # names any character outside it
        return Inputs(ids[None], tuple(text), text, tuple(range(len(text))), "your text")
    if task in BYTE_TASKS:
        data = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)
        return byte_inputs(data, "your text")
    reads = "vectors" if run.spec.vocab_size is None else "token ids"
    raise ValueError(f"task {task} reads {reads}, not text; leave the text out to use a sequence of its test split")


def byte_inputs(data: Tensor, source: str) -> Inputs:
    """(T,) byte ids -> Inputs whose labels and text are the characters they spell (bad bytes: U+FFFD)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    labels, chars, ends = [], [], []
    for t, byte in enumerate(data.tolist()):
        out = decoder.decode(bytes([byte]), final=t == len(data) - 1)
        labels.append(out)
        chars.append(out)
        ends.extend([t] * len(out))
    return Inputs(data[None], tuple(labels), "".join(chars), tuple(ends), source)


def sample_sequence(task, vocab: list[str] | None, seed: int = 0) -> Inputs:
    """One row of the task's test split drawn with `seed`, cut to its length."""
    batch = task.batch(1, torch.Generator().manual_seed(seed), "test")
    T = batch.x.shape[1] if batch.lengths is None else max(int(batch.lengths[0]), 1)
    x, source = batch.x[:, :T], f"test split, seed {seed}"
    if vocab is not None:
        text = "".join(vocab[int(k)] for k in x[0])
        return Inputs(x, tuple(text), text, tuple(range(T)), source)
    if task.spec.name in BYTE_TASKS:
        return byte_inputs(x[0], source)
    labels = ("",) * T if task.spec.vocab_size is None else tuple(str(int(k)) for k in x[0])
    return Inputs(x, labels, None, None, source)


@torch.no_grad()
def record(model, inputs: Inputs) -> Recording:
    """Run `model` (a SequenceModel) on the one sequence and keep every layer's gates and states."""
    if isinstance(model.body, CausalTransformer):
        raise ValueError(
            "explain shows a recurrent model's gates and states; a transformer has none (its state is every past "
            "position's attention input), so there is nothing of this kind to draw"
        )
    parameter = next(model.parameters())
    x = inputs.x.to(parameter.device)
    x = x.to(parameter.dtype) if x.is_floating_point() else x
    was_training = model.training
    model.eval()
    try:
        embedded = model.encoder(x)  # (1, T, H)
        if isinstance(model.body, nn.RNNBase):
            layers = trace_layers(model.body, embedded)
        elif isinstance(model.body, MambaStack):
            layers = step_mamba(model.body, embedded)
        else:
            layers = step_blocks(model.body, embedded)
        output = model(x)[0]
    finally:
        model.train(was_training)
    return Recording(inputs, layers, to_numpy(output))


def to_numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


TRACE_KINDS = {"LSTMTrace": LSTMActivations, "GRUTrace": GRUActivations, "RNNTrace": RNNActivations}


def trace_layers(body, embedded: Tensor) -> tuple:
    """body.trace gives each field as (L, T, B, ·); keep one array (T, ·) per field and layer."""
    _, _, trace = body.trace(embedded)
    Kind = TRACE_KINDS[type(trace).__name__]
    return tuple(
        Kind(*(to_numpy(getattr(trace, name)[layer, :, 0]) for name in Kind._fields))
        for layer in range(body.num_layers)
    )


def step_blocks(body, embedded: Tensor) -> tuple:
    """Feed the body one step at a time with the state carried; read every block's cell state after each."""
    state, cells = None, []
    for t in range(embedded.shape[1]):
        _, state = body(embedded[:, t : t + 1], state)
        cells.append([cell_of(block_state) for block_state in state.blocks])
    layers = []
    for per_step in zip(*cells, strict=True):  # one block's cell states, step by step
        Kind = sLSTMActivations if isinstance(per_step[0], sLSTMState) else mLSTMActivations
        layers.append(Kind(*(to_numpy(torch.stack([getattr(s, name)[0] for s in per_step])) for name in Kind._fields)))
    return tuple(layers)


def cell_of(block_state):
    """The cell's state inside a block's state: sLSTMState or mLSTMState (xlstm-large blocks carry it bare)."""
    return block_state if isinstance(block_state, mLSTMState) else block_state.cell


def step_mamba(body: MambaStack, embedded: Tensor) -> tuple:
    """Feed the body one step at a time with the state carried; each mixer's Δ from a hook, ‖h‖ after each step."""
    deltas = [[] for _ in body.blocks]  # per block: one (1, 1, U) per step
    hooks = [delta_hook(block.layer, into) for block, into in zip(body.blocks, deltas, strict=True)]
    state, sizes = None, []
    try:
        for t in range(embedded.shape[1]):
            _, state = body(embedded[:, t : t + 1], state)
            sizes.append([state_size(block_state.ssm.h[0]) for block_state in state.blocks])
    finally:
        for hook in hooks:
            hook.remove()
    layers = []
    for block, per_step, size in zip(body.blocks, deltas, zip(*sizes, strict=True), strict=True):
        Kind = MambaActivations if isinstance(block.layer, MambaMixer) else Mamba2Activations
        layers.append(Kind(to_numpy(torch.cat(per_step, dim=1)[0]), to_numpy(torch.stack(size))))
    return tuple(layers)


def delta_hook(layer, into: list):
    """A forward hook that appends the mixer's Δ (1, T, U) to `into` each time the mixer runs."""
    if isinstance(layer, MambaMixer):  # Δ = softplus(W_dt δ + b_dt), as MambaMixer.selection
        return layer.dt_proj.register_forward_hook(lambda _module, _args, out: into.append(F.softplus(out)))
    H = layer.config.num_heads  # in_proj's output is [z | x B C | δ], δ its last H columns
    return layer.in_proj.register_forward_hook(lambda _module, _args, out: into.append(layer.delta(out[..., -H:])))


def state_size(h: Tensor) -> Tensor:
    """‖h‖ per channel over N (Mamba: h (I, N) -> (I,)) or per head over P × N (Mamba-2: (NH, P, N) -> (NH,))."""
    return torch.linalg.vector_norm(h, dim=-1 if h.dim() == 2 else (-2, -1))
