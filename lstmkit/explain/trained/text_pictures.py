"""Pictures of a text input: each character on the colour of one value, wrapped into lines.

    cell_picture(name, layer, unit, inputs)            # unit's tanh(c) (LSTM) or h after each character
    words_picture(name, layer, inputs, output)         # sentiment, LSTM: words on their mean input gate i
    delta_picture(name, layer, unit, inputs)           # Mamba, Mamba-2: log Δ of one channel or head

The cell picture is Karpathy's "interpretable cell": values in [-1, 1], blue -1, red +1. The Δ picture
colours from the smallest log Δ over the text (dark: the unit keeps its state) to the largest (bright: it
takes in this character and forgets). A text longer than the grid (COLUMNS · ROWS characters) shows its
beginning and says so in the title.
"""

from __future__ import annotations

import re

import numpy as np

from lstmkit.explain.trained.figures import DPI, figure, png, visible
from lstmkit.explain.trained.recording import Inputs, LSTMActivations, MambaActivations

COLUMNS, ROWS = 64, 24
"""The text pictures' grid of characters; a longer text shows its first COLUMNS · ROWS characters."""
TEXT_AXES = (0.01, 0.12, 0.98, 0.8)
"""Where the cell picture's grid of characters lies: left, bottom, width, height, as fractions of the figure."""
TOP_WORDS = 12


def text_grid(ax, chars: list[str], values: np.ndarray, *, cmap: str, vmin: float, vmax: float) -> int:
    """Characters COLUMNS to a line (a newline ends one), each on its value's colour (NaN: none).
    Returns how many characters fit in ROWS lines."""
    places, row, column = [], 0, 0
    for k, ch in enumerate(chars):
        if column == COLUMNS:
            row, column = row + 1, 0
        if row == ROWS:
            break
        places.append((row, column, "" if ch == " " else visible(ch), values[k]))
        column += 1
        if ch == "\n":
            row, column = row + 1, 0
    grid = np.full((ROWS, COLUMNS), np.nan)
    for row, column, _, value in places:
        grid[row, column] = value
    ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    height_px = ax.get_position().height * ax.figure.get_figheight() * DPI / ROWS
    middle, half = (vmax + vmin) / 2, (vmax - vmin) / 2
    for row, column, glyph, value in places:
        dark = np.isfinite(value) and abs(value - middle) > 0.6 * half  # white ink on the darkest colours
        ax.text(
            column,
            row,
            glyph,
            ha="center",
            va="center",
            family="monospace",
            fontsize=0.45 * height_px,
            color="white" if dark else "black",
            parse_math=False,
        )
    ax.set_axis_off()
    return len(places)


def cell_picture(name: str, layer, unit: int, inputs: Inputs) -> bytes:
    """The text, each character on the colour of `unit`'s value once the character is read."""
    if isinstance(layer, LSTMActivations):
        values, what = np.tanh(layer.c[:, unit]), f"tanh(c) of unit {unit}"
    else:
        values, what = layer.h[:, unit], f"h of unit {unit}"
    per_char = values[list(inputs.char_ends)]
    fig = figure("cell", layout=None)
    ax = fig.add_axes(TEXT_AXES)
    shown = text_grid(ax, list(inputs.text), per_char, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    bar = fig.add_axes((0.3, 0.05, 0.4, 0.025))
    fig.colorbar(ax.images[0], cax=bar, orientation="horizontal")
    cut = "" if shown == len(inputs.text) else f", first {shown} of {len(inputs.text)} characters"
    fig.suptitle(f"{name}: {what} after each character (blue -1, red +1){cut}")
    return png(fig)


def safe_log(values: np.ndarray) -> np.ndarray:
    """log of positive values; NaN (no colour) where a value is 0, such as a Δ that underflowed or an empty state."""
    return np.log(np.where(values > 0, values, np.nan))


def delta_picture(name: str, layer, unit: int, inputs: Inputs) -> bytes:
    """The text, each character on the colour of log Δ of `unit` (a channel, or a Mamba-2 head) at it."""
    what = f"{'channel' if isinstance(layer, MambaActivations) else 'head'} {unit}"
    per_char = safe_log(layer.delta[:, unit])[list(inputs.char_ends)]
    low, high = float(np.nanmin(per_char)), float(np.nanmax(per_char))
    fig = figure("delta", layout=None)
    ax = fig.add_axes(TEXT_AXES)
    shown = text_grid(ax, list(inputs.text), per_char, cmap="viridis", vmin=low, vmax=max(high, low + 1e-12))
    bar = fig.add_axes((0.3, 0.05, 0.4, 0.025))
    fig.colorbar(ax.images[0], cax=bar, orientation="horizontal")
    cut = "" if shown == len(inputs.text) else f", first {shown} of {len(inputs.text)} characters"
    fig.suptitle(f"{name}: log step size Δ of {what} at each character (dark: keeps its state, bright: takes in){cut}")
    return png(fig)


def words_of(inputs: Inputs, per_step: np.ndarray) -> list[tuple[str, int, int, float]]:
    """Each word (a run of non-space characters) as (word, start, end, mean of per_step over its steps)."""
    words = []
    for match in re.finditer(r"\S+", inputs.text):
        a, b = match.span()
        first = inputs.char_ends[a - 1] + 1 if a > 0 else 0
        last = inputs.char_ends[b - 1]
        words.append((match.group(), a, b, float(per_step[first : last + 1].mean())))
    return words


def words_picture(name: str, layer: LSTMActivations, inputs: Inputs, output: np.ndarray) -> bytes:
    """Words on the colour of their mean input gate; a bar chart of the words that open it most."""
    words = words_of(inputs, layer.i.mean(axis=1))
    per_char = np.full(len(inputs.text), np.nan)
    for _, a, b, value in words:
        per_char[a:b] = value
    fig = figure("words", layout=None)
    text_ax = fig.add_axes((0.01, 0.45, 0.98, 0.47))
    shown = text_grid(text_ax, list(inputs.text), per_char, cmap="viridis", vmin=0.0, vmax=1.0)
    fig.colorbar(text_ax.images[0], cax=fig.add_axes((0.3, 0.41, 0.4, 0.02)), orientation="horizontal")
    best: dict[str, float] = {}
    for word, _, _, value in words:
        best[word] = max(value, best.get(word, 0.0))
    top = sorted(best.items(), key=lambda item: -item[1])[:TOP_WORDS]
    bars = fig.add_axes((0.2, 0.05, 0.75, 0.3))
    bars.barh(range(len(top)), [value for _, value in top], color="tab:green")
    bars.set_yticks(range(len(top)), labels=[word for word, _ in top], fontsize=8)
    for tick in bars.get_yticklabels():
        tick.set_parse_math(False)
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.set_xlabel("mean input gate i over the word's bytes and the units")
    probability = np.exp(output - output.max())
    positive = float(probability[1] / probability.sum())
    cut = "" if shown == len(inputs.text) else f"; first {shown} of {len(inputs.text)} characters shown"
    fig.suptitle(f"{name}: which words open the input gate (model: P(positive) = {positive:.2f}){cut}")
    return png(fig)
