"""What every picture shares: a figure of a fixed size in pixels, its PNG bytes, the time axis, stacked heatmaps.

    heatmaps("gates", title, [gate("input gate i", i), signed("cell state c", c)], labels)   # PNG bytes

A Panel's values are (T, U): one row per step, one column per unit; steps are counted from 1.
Figures are `matplotlib.figure.Figure`s drawn by Agg, never pyplot: no global state, nothing to close.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np

DPI = 100
SIZES = {
    "gates": (1200, 900),
    "cell": (1200, 700),
    "words": (1200, 900),
    "slstm": (1200, 900),
    "mlstm": (1200, 700),
    "memory": (1200, 450),
    "ssm": (1200, 700),
    "delta": (1200, 700),
    "gradients": (900, 500),
}
"""Width and height in pixels of each kind of picture."""
MAX_TICK_LABELS = 64
"""Time axes show each step's token up to this many steps, plain step numbers beyond."""
VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥"}


class Panel(NamedTuple):
    title: str
    values: np.ndarray
    """(T, U): one row per step, one column per unit."""
    cmap: str
    vmin: float
    vmax: float


def gate(title: str, values: np.ndarray) -> Panel:
    """A σ gate, coloured over its whole range [0, 1]."""
    return Panel(title, values, "viridis", 0.0, 1.0)


def signed(title: str, values: np.ndarray) -> Panel:
    """A signed quantity, white at 0, symmetric limits."""
    bound = max(float(np.nanmax(np.abs(values))), 1e-12)
    return Panel(title, values, "RdBu_r", -bound, bound)


def spread(title: str, values: np.ndarray) -> Panel:
    """Any quantity, coloured from its smallest to its largest finite value."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return Panel(title, values, "magma", low, max(high, low + 1e-12))


def figure(kind: str, layout: str | None = "constrained"):
    """A figure of SIZES[kind] pixels; layout None when the caller places its axes itself."""
    from matplotlib.figure import Figure

    width, height = SIZES[kind]
    return Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout=layout)


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def visible(label: str) -> str:
    return "".join(VISIBLE.get(ch, "·" if not ch.isprintable() else ch) for ch in label)


def time_axis(ax, labels: tuple[str, ...]) -> None:
    """Steps 1..T on the x axis; each step's token under it when there are few enough."""
    T = len(labels)
    if T <= MAX_TICK_LABELS and any(labels):
        ax.set_xticks(range(1, T + 1), labels=[visible(s) for s in labels], fontsize=8 if T <= 32 else 6)
        for tick in ax.get_xticklabels():
            tick.set_parse_math(False)
    ax.set_xlabel("step")


def heatmaps(kind: str, title: str, panels: list[Panel], labels: tuple[str, ...], unit: str = "unit") -> bytes:
    """One units × time heatmap per panel, stacked, each with its colour bar; `unit` names the rows."""
    from matplotlib.ticker import MaxNLocator

    fig = figure(kind)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    T = len(labels)
    for ax, panel in zip(axes, panels, strict=True):
        U = panel.values.shape[1]
        image = ax.imshow(
            panel.values.T,
            aspect="auto",
            interpolation="nearest",
            cmap=panel.cmap,
            vmin=panel.vmin,
            vmax=panel.vmax,
            extent=(0.5, T + 0.5, U - 0.5, -0.5),
        )
        ax.set_title(panel.title, fontsize=10, loc="left")
        ax.set_ylabel(unit)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # no tick between two units
        fig.colorbar(image, ax=ax, pad=0.01)
    time_axis(axes[-1], labels)
    fig.suptitle(title)
    return png(fig)
