"""Pictures of what a trained model does with one input: PNG bytes, drawn from a Recording (recording.py).

    run = load_run("runs/bard")
    pictures = explain_run(run, inputs_for(run, text="ROMEO: What say you?"))   # {file name: PNG bytes}

One set of pictures per layer (rnn, gru, lstm: "layerL") or block (xLSTM family: "blockB"), as applies:

    PREFIX-gates.png    units × time heatmaps: LSTM i, f, o and c; GRU r, z, n, h; RNN h
    PREFIX-cellN.png    a text model's input, each character on the colour of unit N's tanh(c) (LSTM) or h
                        (GRU, RNN, sLSTM), in [-1, 1], wrapped into lines: Karpathy's "interpretable cell"
    PREFIX-words.png    sentiment, LSTM: each word on the colour of the input gate i, averaged over its bytes
                        and the units, and a bar chart of the words that open it most
    PREFIX-slstm.png    sLSTM: cell c, normalizer n, stabilizer m and output h, units × time heatmaps
    PREFIX-mlstm.png    mLSTM: stabilizer m and normalizer size ‖n‖ of every head over time
    PREFIX-memory.png   mLSTM: head 0's memory C (DK × DV) after chosen steps
    PREFIX-ssm.png      Mamba, Mamba-2: log step size Δ and log state size ‖h‖ of every channel (Mamba-2: head),
                        units × time heatmaps
    PREFIX-deltaN.png   Mamba, Mamba-2, a text model: each character on the colour of channel (head) N's log Δ

`gradient_plot(curves)` draws `lstmkit gradients`' curves. Every figure has a fixed size in pixels
(SIZES, keyed by the name after PREFIX-); steps are counted from 1 (step t: after reading t tokens).
figures.py holds what every picture shares (size, PNG, time axis, heatmaps), text_pictures.py the cell, words
and Δ text pictures.
"""

from __future__ import annotations

import numpy as np

from lstmkit.explain.trained.figures import SIZES, figure, gate, heatmaps, png, signed, spread, time_axis, visible
from lstmkit.explain.trained.recording import (
    GRUActivations,
    Inputs,
    LSTMActivations,
    Mamba2Activations,
    MambaActivations,
    Recording,
    RNNActivations,
    mLSTMActivations,
    record,
    sLSTMActivations,
)
from lstmkit.explain.trained.text_pictures import (
    COLUMNS,
    ROWS,
    TEXT_AXES,
    cell_picture,
    delta_picture,
    safe_log,
    words_picture,
)

__all__ = [
    "COLUMNS",
    "ROWS",
    "SIZES",
    "TEXT_AXES",
    "cell_picture",
    "delta_picture",
    "explain_run",
    "gate_pictures",
    "gradient_plot",
    "memory_picture",
    "mlstm_picture",
    "slstm_picture",
    "ssm_picture",
    "words_picture",
]

MAX_MEMORY_STEPS = 8
BLOCKS = sLSTMActivations | mLSTMActivations | MambaActivations | Mamba2Activations
"""What a block (not a layer) of the xLSTM and Mamba families records."""


def gate_pictures(name: str, layer, labels: tuple[str, ...]) -> bytes:
    """LSTM i, f, o, c; GRU r, z, n, h; RNN h."""
    if isinstance(layer, LSTMActivations):
        panels = [
            gate("input gate i", layer.i),
            gate("forget gate f", layer.f),
            gate("output gate o", layer.o),
            signed("cell state c", layer.c),
        ]
    elif isinstance(layer, GRUActivations):
        panels = [
            gate("reset gate r", layer.r),
            gate("update gate z (share of the old h kept)", layer.z),
            signed("candidate n", layer.n),
            signed("hidden state h", layer.h),
        ]
    else:
        panels = [signed("hidden state h", layer.h)]
    return heatmaps("gates", f"{name}: gates and state, units × time", panels, labels)


def slstm_picture(name: str, layer: sLSTMActivations, labels: tuple[str, ...]) -> bytes:
    panels = [
        signed("cell state c", layer.c),
        spread("normalizer n (|c / n| ≤ 1)", layer.n),
        spread("stabilizer m (running max of the log gates)", layer.m),
        signed("hidden state h", layer.h),
    ]
    return heatmaps("slstm", f"{name} (sLSTM): cell, normalizer, stabilizer, output", panels, labels)


def mlstm_picture(name: str, layer: mLSTMActivations, labels: tuple[str, ...]) -> bytes:
    """m per head, and the size ‖n‖ of each head's normalizer, over time."""
    fig = figure("mlstm")
    top, bottom = fig.subplots(2, 1, sharex=True)
    steps = np.arange(1, len(labels) + 1)
    norms = np.linalg.norm(layer.n, axis=-1)  # (T, NH)
    for head in range(layer.m.shape[1]):
        top.plot(steps, layer.m[:, head], marker=".", label=f"head {head}")
        bottom.plot(steps, norms[:, head], marker=".", label=f"head {head}")
    top.set_title("stabilizer m (the running max of the log gates)", fontsize=10, loc="left")
    bottom.set_title("normalizer size ‖n‖ (stabilized)", fontsize=10, loc="left")
    top.legend(fontsize=8, ncols=min(layer.m.shape[1], 8))
    time_axis(bottom, labels)
    fig.suptitle(f"{name} (mLSTM): stabilizer and normalizer per head")
    return png(fig)


def ssm_picture(name: str, layer: MambaActivations | Mamba2Activations, labels: tuple[str, ...]) -> bytes:
    """log Δ and log ‖h‖ of every channel (Mamba) or head (Mamba-2), units × time (blank where 0)."""
    unit, over, family = (
        ("channel", "N", "Mamba") if isinstance(layer, MambaActivations) else ("head", "P × N", "Mamba-2")
    )
    panels = [
        spread(
            "log step size Δ (large: takes in the input and forgets; small: keeps the state)", safe_log(layer.delta)
        ),
        spread(f"log state size ‖h‖ (over {over}) after each step", safe_log(layer.size)),
    ]
    title = f"{name} ({family}): step size and state size per {unit}, {unit}s × time"
    return heatmaps("ssm", title, panels, labels, unit=unit)


def memory_picture(
    name: str, layer: mLSTMActivations, labels: tuple[str, ...], steps: list[int], head: int = 0
) -> bytes:
    """Heatmaps of one head's C (DK × DV) after each of `steps` (1-based), on one colour scale."""
    fig = figure("memory")
    axes = fig.subplots(1, len(steps), squeeze=False)[0]
    memories = layer.C[[t - 1 for t in steps], head]  # (S, DK, DV)
    bound = max(float(np.abs(memories).max()), 1e-12)
    for ax, t, C in zip(axes, steps, memories, strict=True):
        image = ax.imshow(C, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        token = visible(labels[t - 1])
        ax.set_title(f"step {t}" + (f" ({token})" if token else ""), fontsize=9, parse_math=False)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel("key dimension")
    axes[0].set_xlabel("value dimension")
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    fig.suptitle(f"{name} (mLSTM): memory C of head {head}")
    return png(fig)


def gradient_plot(curves) -> bytes:
    """`gradient_by_lag`'s curves: ratio ‖∂L/∂x_(T-lag)‖ / ‖∂L/∂x_T‖ against lag, log y axis."""
    if not curves:
        raise ValueError("there are no gradient curves to plot, expected at least one")
    fig = figure("gradients")
    ax = fig.subplots()
    for curve in curves:
        ratios = np.asarray(curve.ratios, dtype=float)
        ax.plot(np.arange(len(ratios)), np.where(ratios > 0, ratios, np.nan), label=curve.name)
    ax.set_yscale("log")
    ax.set_xlabel("lag (steps back from the last input)")
    ax.set_ylabel("gradient norm ratio")
    ax.set_title("How much gradient reaches earlier inputs")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return png(fig)


def layer_name(index: int, layer) -> str:
    if isinstance(layer, BLOCKS):
        return f"block{index}"
    return f"layer{index}"


def has_units(layer) -> bool:
    return not isinstance(layer, mLSTMActivations)


def explain_run(
    run, inputs: Inputs, cell: int | None = None, layer: int | None = None, steps: list[int] | None = None
) -> dict[str, bytes]:
    """Every picture that applies to the run's model and task, for one input: {file name: PNG bytes}.

    layer: only this layer or block (default: all). cell: the unit of the text pictures (default: the one
    that varies most over the text). steps: when to show the mLSTM memory, 1..T (default: 4 spread evenly).
    """
    recording = record(run.model, inputs)
    chosen = choose_layers(recording, layer)
    check_cell(chosen, cell, inputs)
    memory_steps = check_steps(chosen, steps, len(inputs.labels))
    return pictures_of(recording, chosen, cell, memory_steps, run.spec.kind)


def pictures_of(
    recording: Recording, chosen: list[tuple[int, object]], cell: int | None, steps: list[int], kind: str
) -> dict[str, bytes]:
    inputs, labels = recording.inputs, recording.inputs.labels
    pictures = {}
    for index, layer in chosen:
        prefix = layer_name(index, layer)
        name = prefix.replace("layer", "layer ").replace("block", "block ")
        if isinstance(layer, LSTMActivations | GRUActivations | RNNActivations):
            pictures[f"{prefix}-gates.png"] = gate_pictures(name, layer, labels)
        if isinstance(layer, sLSTMActivations):
            pictures[f"{prefix}-slstm.png"] = slstm_picture(name, layer, labels)
        if isinstance(layer, mLSTMActivations):
            pictures[f"{prefix}-mlstm.png"] = mlstm_picture(name, layer, labels)
            pictures[f"{prefix}-memory.png"] = memory_picture(name, layer, labels, steps)
        if isinstance(layer, MambaActivations | Mamba2Activations):
            pictures[f"{prefix}-ssm.png"] = ssm_picture(name, layer, labels)
        if inputs.text is not None and isinstance(layer, MambaActivations | Mamba2Activations):
            unit = most_varying_unit(layer) if cell is None else cell
            pictures[f"{prefix}-delta{unit}.png"] = delta_picture(name, layer, unit, inputs)
        elif inputs.text is not None and has_units(layer):
            unit = most_varying_unit(layer) if cell is None else cell
            pictures[f"{prefix}-cell{unit}.png"] = cell_picture(name, layer, unit, inputs)
        if inputs.text is not None and kind == "classify" and isinstance(layer, LSTMActivations):
            pictures[f"{prefix}-words.png"] = words_picture(name, layer, inputs, recording.output)
    return pictures


def choose_layers(recording: Recording, layer: int | None) -> list[tuple[int, object]]:
    layers = list(enumerate(recording.layers))
    if layer is None:
        return layers
    what = "blocks" if isinstance(layers[0][1], BLOCKS) else "layers"
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(layers):
        raise ValueError(
            f"layer {layer} is out of range, expected 0 to {len(layers) - 1} (the model has {len(layers)} {what})"
        )
    return [layers[layer]]


def check_cell(chosen: list[tuple[int, object]], cell: int | None, inputs: Inputs) -> None:
    if cell is None:
        return
    if inputs.text is None:
        raise ValueError(
            f"cell {cell} picks the unit of the text picture, but this input ({inputs.source}) is "
            "not text; leave the cell out"
        )
    with_units = [(index, layer) for index, layer in chosen if has_units(layer)]
    if not with_units:
        raise ValueError(
            f"cell {cell} picks a unit, but the chosen blocks are mLSTM blocks, whose memory is a "
            "matrix per head; choose an sLSTM block with the layer"
        )
    index, layer = with_units[0]
    units, word = units_of(layer)
    if isinstance(cell, bool) or not isinstance(cell, int) or not 0 <= cell < units:
        raise ValueError(
            f"cell {cell} is out of range, expected 0 to {units - 1} ({layer_name(index, layer)} has {units} {word})"
        )


def units_of(layer) -> tuple[int, str]:
    """How many units the text picture can show, and what they are."""
    if isinstance(layer, MambaActivations):
        return layer.delta.shape[1], "channels"
    if isinstance(layer, Mamba2Activations):
        return layer.delta.shape[1], "heads"
    return layer.h.shape[1], "units"


def check_steps(chosen: list[tuple[int, object]], steps: list[int] | None, T: int) -> list[int]:
    """The 1-based steps of the memory pictures: `steps`, checked, or up to 4 spread evenly over 1..T."""
    if steps is None:
        return sorted({int(t) for t in np.linspace(1, T, min(4, T)).round()})
    if not any(isinstance(layer, mLSTMActivations) for _, layer in chosen):
        raise ValueError(
            "steps pick when to show the mLSTM memory, but no chosen layer is an mLSTM block; leave the steps out"
        )
    if not 1 <= len(steps) <= MAX_MEMORY_STEPS:
        raise ValueError(f"{len(steps)} steps given, expected 1 to {MAX_MEMORY_STEPS}")
    for t in steps:
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= T:
            raise ValueError(f"step {t} is out of range, expected 1 to {T} (the input has {T} steps)")
    return list(steps)


def most_varying_unit(layer) -> int:
    """The unit whose picture shows the most: the largest standard deviation over time of its coloured value."""
    if isinstance(layer, MambaActivations | Mamba2Activations):
        values = np.log(np.maximum(layer.delta, np.finfo(layer.delta.dtype).tiny))  # log Δ, finite
    else:
        values = np.tanh(layer.c) if isinstance(layer, LSTMActivations) else layer.h
    return int(np.argmax(values.std(axis=0)))
