"""Render the gradient-by-lag curves of `lstmkit.explain.gradients` as a table (text, Markdown, JSON)."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from lstmkit.explain.gradients import GradientCurve, default_lags
from lstmkit.explain.numbers import dumps

TITLE = "Gradient reaching earlier inputs: ‖∂L/∂x_(T-lag)‖ / ‖∂L/∂x_T‖"


def summary(curves: list[GradientCurve], lag: int = 50) -> str:
    """One sentence: how many times the RNN's gradient (the first curve) each other curve keeps at `lag` (or the
    longest lag available), the best first."""
    lag = min(lag, len(curves[0].ratios) - 1)
    rnn, others = curves[0], curves[1:]
    if not others:
        return f"At lag {lag} the {rnn.name} keeps {rnn.ratios[lag]:.1e} of its gradient at lag 0."
    factors = sorted(
        ((c.ratios[lag] / max(rnn.ratios[lag], np.finfo(float).tiny), c.name) for c in others), reverse=True
    )
    (best, name), rest = factors[0], factors[1:]
    sentence = f"At lag {lag} the {name} keeps {best:.1e} times the gradient of the {rnn.name}"
    if not rest:
        return sentence + "."
    return sentence + " (the others: " + "; ".join(f"{n}: {f:.1e}" for f, n in rest) + ")."


def renderables(curves: list[GradientCurve]):
    table = Table(title=TITLE, title_justify="left")
    table.add_column("lag", justify="right")
    for c in curves:
        table.add_column(c.name, justify="right")
    for lag in default_lags(len(curves[0].ratios)):
        table.add_row(str(lag), *(f"{c.ratios[lag]:.1e}" for c in curves))
    return Group(table, Text(summary(curves)))


def to_text(curves: list[GradientCurve], width: int = 100) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None).print(renderables(curves))
    return buffer.getvalue()


def to_markdown(curves: list[GradientCurve]) -> str:
    lines = [TITLE, "", "| lag | " + " | ".join(c.name for c in curves) + " |", "|---:|" + "---:|" * len(curves)]
    for lag in default_lags(len(curves[0].ratios)):
        lines.append(f"| {lag} | " + " | ".join(f"{c.ratios[lag]:.1e}" for c in curves) + " |")
    return "\n".join([*lines, "", summary(curves), ""])


def to_json(curves: list[GradientCurve]) -> str:
    """{"schema": "lstmkit.gradients/1", "curves": [{"name": ..., "ratios": [ratio at lag 0, 1, ...]}]}"""
    data = {"schema": "lstmkit.gradients/1", "curves": [{"name": c.name, "ratios": c.ratios.tolist()} for c in curves]}
    return dumps(data)


FORMATS = {"text": to_text, "markdown": to_markdown, "json": to_json}
