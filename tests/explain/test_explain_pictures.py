"""`lstmkit explain`: the recorded activations of tiny trained runs, and the pictures drawn from them.

Seven runs are trained once per module through `lstmkit train` (3 steps, 8 units): an LSTM of 2 layers on
the adding problem (vectors), a GRU on parity (token ids), an LSTM on Shakespeare (characters), an LSTM
on sentiment (UTF-8 bytes), an xLSTM "ms", a Mamba of 2 blocks and a Mamba-2 on Shakespeare. The real datasets
come from the test cache that tests/tasks/test_tasks_real.py fills. The activations are checked against
independent paths in float64 (the NumPy reference cells; one whole-sequence forward of the xLSTM and Mamba
bodies), the pictures by their PNG header, pixel size and, for the text pictures, the colour behind each
character.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lstmkit.cli import main
from lstmkit.experiment import load_run
from lstmkit.explain.gradients import gradient_by_lag
from lstmkit.explain.trained.pictures import (
    COLUMNS,
    ROWS,
    SIZES,
    TEXT_AXES,
    cell_picture,
    delta_picture,
    gradient_plot,
)
from lstmkit.explain.trained.recording import (
    GRUActivations,
    LSTMActivations,
    Mamba2Activations,
    MambaActivations,
    encode_text,
    inputs_for,
    mLSTMActivations,
    record,
    sLSTMActivations,
)
from lstmkit.nn.mamba.mixer import MambaMixer
from lstmkit.reference import gru, lstm
from tests.helpers import CACHE, largest_difference, lstmkit, png_size

TINY = ["--hidden-size", 8, "--batch-size", 8, "--eval-every", 5, "--eval-batches", 1, "--quiet", "--steps", 3]
BARD = ("--task", "shakespeare", "--task-arg", "seq_len=16", "--cache-dir", CACHE)
RUNS = {
    "adding-lstm": ("--task", "adding", "--task-arg", "length=12", "--model", "lstm", "--num-layers", "2"),
    "parity-gru": ("--task", "parity", "--task-arg", "max_length=12", "--model", "gru"),
    "bard-lstm": (*BARD, "--model", "lstm"),
    "sentiment-lstm": ("--task", "sentiment", "--task-arg", "max_len=40", "--cache-dir", CACHE, "--model", "lstm"),
    "bard-xlstm": (*BARD, "--model", "xlstm", "--blocks", "ms"),
    "bard-mamba": (*BARD, "--model", "mamba", "--num-layers", "2", "--state-size", "4"),
    "bard-mamba2": (*BARD, "--model", "mamba2", "--state-size", "4"),
}
TRICKY = '<script>alert("x")</script> I loved it, $5 off $x$ -- a café & 100% fun!\n'


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    for name, argv in RUNS.items():
        code = main([str(a) for a in ("train", *argv, *TINY, "--run-dir", base / name)])
        assert code == 0, f"training {name} failed"
    return {name: base / name for name in RUNS}


def as_float64(run_dir: Path):
    run = load_run(run_dir)
    return run._replace(model=run.model.double())


def embedded(model, x: torch.Tensor) -> np.ndarray:
    """The encoder's output, computed here in NumPy from its weights: a row lookup or x Wᵀ + b."""
    W = model.encoder.weight.detach().numpy()
    if x.is_floating_point():
        return x[0].double().numpy() @ W.T + model.encoder.bias.detach().numpy()
    return W[x[0].numpy()]


@pytest.mark.parametrize(
    ("name", "cell", "Activations"), [("adding-lstm", lstm, LSTMActivations), ("parity-gru", gru, GRUActivations)]
)
def test_recorded_gates_equal_the_numpy_reference(runs, name, cell, Activations):
    """Every gate and state of every layer, in float64, equals the reference cell run on that layer's weights
    (layer 1 reads the reference's layer-0 outputs)."""
    run = as_float64(runs[name])
    inputs = inputs_for(run)
    recording = record(run.model, inputs)
    assert len(recording.layers) == run.model.body.num_layers
    xs = embedded(run.model, inputs.x)  # (T, H)
    state_dict = run.model.body.state_dict()
    for k, layer in enumerate(recording.layers):
        assert isinstance(layer, Activations)
        steps = cell.run(cell.from_torch(state_dict, f"_l{k}"), xs)
        for field in Activations._fields:
            expected = np.stack([getattr(s, field) for s in steps])
            difference = largest_difference(getattr(layer, field), expected)
            assert difference < 1e-12, f"{name} layer {k} {field}: largest difference {difference:.3g}"
        xs = np.stack([s.h for s in steps])
    output = run.model(inputs.x.double() if inputs.x.is_floating_point() else inputs.x)[0]
    assert largest_difference(recording.output, output.detach().numpy()) == 0


def test_xlstm_states_stepped_equal_whole_sequence_forwards(runs):
    """The state each block holds after step t, recorded by stepping one token at a time, equals the final
    state of one forward over the first t tokens (chunkwise mLSTM, whole-sequence sLSTM), in float64."""
    run = as_float64(runs["bard-xlstm"])
    inputs = encode_text(run, "ROMEO: What say you?")
    recording = record(run.model, inputs)
    assert [type(layer) for layer in recording.layers] == [mLSTMActivations, sLSTMActivations]
    T = inputs.x.shape[1]
    for t in (2, 11, T):
        with torch.no_grad():
            _, state = run.model.body(run.model.encoder(inputs.x[:, :t]))
        for b, (layer, block_state) in enumerate(zip(recording.layers, state.blocks, strict=True)):
            for field in type(layer)._fields:
                whole = getattr(block_state.cell, field)[0].numpy()
                difference = largest_difference(getattr(layer, field)[t - 1], whole)
                assert difference < 1e-10, f"block {b} {field} after step {t}: largest difference {difference:.3g}"
    C = recording.layers[0].C
    assert C.shape == (T, 4, 16, 16) and np.abs(C[-1]).max() > 0, "the memory holds something"


def whole_sequence_delta(mixer, u: torch.Tensor) -> torch.Tensor:
    """Δ (T, U) as the mixer computes it in one call over the whole of its input u (1, T, E)."""
    c = mixer.config
    if isinstance(mixer, MambaMixer):
        x, _ = mixer.in_proj(u).chunk(2, dim=-1)
        x_c = F.silu(mixer.conv1d(x)[0])
        return mixer.selection(x_c)[0][0]
    _, _, dt = mixer.in_proj(u).split([c.inner_size, c.conv_size, c.num_heads], dim=-1)
    return mixer.delta(dt)[0]


@pytest.mark.parametrize(
    ("name", "kinds"), [("bard-mamba", [MambaActivations] * 2), ("bard-mamba2", [Mamba2Activations])]
)
@torch.no_grad()
def test_mamba_delta_and_state_sizes_equal_whole_sequence_calls(runs, name, kinds):
    """Δ, recorded one step at a time, equals what each mixer's own selection (Mamba) or delta (Mamba-2) gives
    on its whole input at once; the state size after step t is the norm (over N, or over P × N per head) of the
    state one whole-sequence forward over the first t tokens returns. Float64."""
    run = as_float64(runs[name])
    inputs = encode_text(run, "ROMEO: What say you?")
    recording = record(run.model, inputs)
    body, T = run.model.body, inputs.x.shape[1]
    assert [type(layer) for layer in recording.layers] == kinds
    mixer_inputs = []
    hooks = [
        block.layer.register_forward_pre_hook(lambda _m, args: mixer_inputs.append(args[0])) for block in body.blocks
    ]
    _, final = body(run.model.encoder(inputs.x))
    for hook in hooks:
        hook.remove()
    for b, (layer, block, u) in enumerate(zip(recording.layers, body.blocks, mixer_inputs, strict=True)):
        delta = whole_sequence_delta(block.layer, u).numpy()
        units = block.layer.config.inner_size if kinds[0] is MambaActivations else block.layer.config.num_heads
        assert layer.delta.shape == layer.size.shape == (T, units)
        difference = largest_difference(layer.delta, delta)
        assert difference < 1e-12, f"block {b} Δ: largest difference {difference:.3g}"
        assert delta.std(axis=0).max() > 1e-6, "Δ changes with the input"
    for t in (1, 7, T):
        state = final if t == T else body(run.model.encoder(inputs.x[:, :t]))[1]
        for b, (layer, block_state) in enumerate(zip(recording.layers, state.blocks, strict=True)):
            h = block_state.ssm.h[0].numpy()  # (I, N) or (NH, P, N)
            size = np.sqrt((h**2).sum(axis=tuple(range(1, h.ndim))))
            difference = largest_difference(layer.size[t - 1], size)
            assert difference < 1e-10, f"block {b} ‖h‖ after step {t}: largest difference {difference:.3g}"
    assert all(layer.size[-1].max() > 0 for layer in recording.layers), "the states hold something"


def test_text_encodings(runs):
    bard, sentiment = load_run(runs["bard-lstm"]), load_run(runs["sentiment-lstm"])
    chars = encode_text(bard, "ROMEO:\nhi")
    assert chars.labels == tuple("ROMEO:\nhi") and chars.char_ends == tuple(range(9))
    assert "".join(bard.meta["vocab"][int(k)] for k in chars.x[0]) == "ROMEO:\nhi"
    data = encode_text(sentiment, "café <b>")
    assert data.x[0].tolist() == list("café <b>".encode()) and data.text == "café <b>"
    assert data.labels[3:5] == ("", "é") and data.char_ends == (0, 1, 2, 4, 5, 6, 7, 8)
    sample = inputs_for(sentiment, cache_dir=CACHE)
    assert sample.source == "test split, seed 0" and sample.text.encode() == bytes(sample.x[0].tolist())
    assert torch.equal(inputs_for(sentiment, cache_dir=CACHE).x, sample.x), "the same seed gives the same input"


@pytest.mark.parametrize(
    ("name", "argv", "expected"),
    [
        ("adding-lstm", [], {"layer0-gates.png", "layer1-gates.png"}),
        ("adding-lstm", ["--layer", "1"], {"layer1-gates.png"}),
        ("parity-gru", [], {"layer0-gates.png"}),
        (
            "bard-lstm",
            ["--text", "ROMEO: What say you?\nJULIET: Nothing.", "--cell", 3],
            {"layer0-gates.png", "layer0-cell3.png"},
        ),
        ("sentiment-lstm", ["--text", TRICKY], {"layer0-gates.png", "layer0-cell*.png", "layer0-words.png"}),
        (
            "bard-xlstm",
            ["--text", "To be, or not to be", "--steps", 1, 5, 19],
            {"block0-mlstm.png", "block0-memory.png", "block1-slstm.png", "block1-cell*.png"},
        ),
        (
            "bard-mamba",
            ["--text", "To be, or not to be"],
            {"block0-ssm.png", "block0-delta*.png", "block1-ssm.png", "block1-delta*.png"},
        ),
        ("bard-mamba2", ["--text", "To be, or not to be", "--cell", 2], {"block0-ssm.png", "block0-delta2.png"}),
        ("bard-mamba2", ["--layer", 0], {"block0-ssm.png", "block0-delta*.png"}),
    ],
)
def test_explain_writes_pngs_of_the_right_size(runs, tmp_path, capsys, name, argv, expected):
    out = tmp_path / "pictures"
    code, stdout, err = lstmkit(capsys, "explain", runs[name], *argv, "--cache-dir", CACHE, "-o", out)
    assert code == 0, err
    written = sorted(p.name for p in out.iterdir())
    patterns = [re.compile(e.replace(".", r"\.").replace("*", r"\d+")) for e in expected]
    assert len(written) == len(expected) and all(any(p.fullmatch(w) for w in written) for p in patterns), written
    assert stdout.count("\n") == 1 and str(out) in stdout and all(w in stdout for w in written)
    for file in written:
        kind = re.fullmatch(r"(?:layer|block)\d+-([a-z]+)\d*\.png", file).group(1)
        assert png_size((out / file).read_bytes(), at_least=1001) == SIZES[kind], file


def test_default_output_folder_is_inside_the_run(runs, capsys):
    code, stdout, err = lstmkit(capsys, "explain", runs["adding-lstm"], "--layer", "0")
    assert code == 0, err
    assert (runs["adding-lstm"] / "explain" / "layer0-gates.png").is_file() and "test split, seed 0" in stdout


def test_each_character_sits_on_the_colour_of_its_cell(runs):
    """Read the PNG back: the corner of character k's box has the colour map's colour of tanh(c_k[unit])."""
    run = load_run(runs["bard-lstm"])
    inputs = encode_text(run, "First Citizen:\nBefore we proceed any further, hear me speak.")
    layer = record(run.model, inputs).layers[0]
    unit = 5
    data = cell_picture("layer 0", layer, unit, inputs)
    width, height = SIZES["cell"]
    assert png_size(data, at_least=1001) == (width, height)
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=int)
    left, bottom, w, h = TEXT_AXES
    box_w, box_h = w * width / COLUMNS, h * height / ROWS
    top = (1 - bottom - h) * height
    cmap, row, column = mpl.colormaps["RdBu_r"], 0, 0
    for k, ch in enumerate(inputs.text):
        x, y = int(left * width + column * box_w + 2), int(top + row * box_h + 2)
        expected = np.array(cmap((np.tanh(layer.c[k, unit]) + 1) / 2)[:3]) * 255
        assert np.abs(pixels[y, x] - expected).max() <= 3, f"character {k} {ch!r}: {pixels[y, x]} != {expected}"
        row, column = (row + 1, 0) if ch == "\n" else (row, column + 1)


def test_each_character_sits_on_the_colour_of_its_delta(runs):
    """The Δ picture read back: character k's box has viridis' colour of log Δ_k of the head, scaled to the text."""
    run = load_run(runs["bard-mamba2"])
    inputs = encode_text(run, "First Citizen:\nBefore we proceed")
    layer = record(run.model, inputs).layers[0]
    head = 3
    data = delta_picture("block 0", layer, head, inputs)
    width, height = SIZES["delta"]
    assert png_size(data, at_least=1001) == (width, height)
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=int)
    left, bottom, w, h = TEXT_AXES
    box_w, box_h = w * width / COLUMNS, h * height / ROWS
    top = (1 - bottom - h) * height
    log_delta = np.log(layer.delta[:, head])
    low, high = log_delta.min(), log_delta.max()
    cmap, row, column = mpl.colormaps["viridis"], 0, 0
    for k, ch in enumerate(inputs.text):
        x, y = int(left * width + column * box_w + 2), int(top + row * box_h + 2)
        expected = np.array(cmap((log_delta[k] - low) / (high - low))[:3]) * 255
        assert np.abs(pixels[y, x] - expected).max() <= 3, f"character {k} {ch!r}: {pixels[y, x]} != {expected}"
        row, column = (row + 1, 0) if ch == "\n" else (row, column + 1)


def test_gradient_plot():
    curves = gradient_by_lag(length=30, hidden_size=8, input_size=4)
    assert png_size(gradient_plot(curves), at_least=1001) == SIZES["gradients"]
    with pytest.raises(ValueError, match="no gradient curves"):
        gradient_plot([])


@pytest.mark.parametrize(
    ("name", "argv", "needles"),
    [
        (None, ["/no/such/run"], ["no checkpoint in /no/such/run"]),
        ("empty", [], ["no checkpoint in"]),
        ("bard-lstm", ["--text", TRICKY], ["characters outside the vocabulary", "<>"]),
        ("bard-lstm", ["--text", ""], ["the text is empty"]),
        ("bard-lstm", ["--text", "ROMEO", "--cell", 8], ["cell 8 is out of range, expected 0 to 7"]),
        ("bard-lstm", ["--text", "ROMEO", "--steps", 2], ["no chosen layer is an mLSTM block"]),
        ("adding-lstm", ["--layer", 2], ["layer 2 is out of range, expected 0 to 1", "2 layers"]),
        ("adding-lstm", ["--text", "hello"], ["task adding reads vectors, not text"]),
        ("adding-lstm", ["--cell", 0], ["is not text"]),
        ("bard-xlstm", ["--text", "ROMEO", "--steps", 0, 6], ["step 0 is out of range, expected 1 to 5"]),
        ("bard-xlstm", ["--text", "ROMEO", "--layer", 0, "--cell", 1], ["mLSTM blocks", "sLSTM block"]),
        ("bard-xlstm", ["--text", "ROMEO", "--layer", -1], ["layer -1 is out of range", "2 blocks"]),
        ("bard-mamba", ["--text", "ROMEO", "--cell", 16], ["cell 16 is out of range, expected 0 to 15", "16 channels"]),
        ("bard-mamba2", ["--text", "ROMEO", "--cell", 4], ["cell 4 is out of range, expected 0 to 3", "4 heads"]),
        ("bard-mamba", ["--text", "ROMEO", "--layer", 2], ["layer 2 is out of range", "2 blocks"]),
        ("bard-mamba2", ["--text", "ROMEO", "--steps", 2], ["no chosen layer is an mLSTM block"]),
    ],
)
def test_bad_input_is_one_line(runs, tmp_path, capsys, name, argv, needles):
    (tmp_path / "empty").mkdir()
    run_dir = [] if name is None else [tmp_path / "empty" if name == "empty" else runs[name]]
    out = tmp_path / "out"
    code, _, err = lstmkit(capsys, "explain", *run_dir, *argv, "--cache-dir", CACHE, "-o", out)
    assert code == 2, f"expected exit status 2, got {code}: {err}"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(needle in err for needle in needles), err
    assert not out.exists(), "nothing is written when the input is bad"
