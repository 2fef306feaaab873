"""Render a `Walkthrough` as text (rich tables), Markdown, or JSON.

The JSON schema (`"schema": "lstmkit.walkthrough/1"`) is stable; fields are only ever added:

    {
      "schema": "lstmkit.walkthrough/1",
      "cell": "lstm" | "gru" | "rnn" | "slstm" | "mlstm" | "ssm" | "mamba",
      "mode": "hand" | "exact",
      "spec": {...},            the example itself; a valid --spec file (see lstmkit.explain.walkthrough.example_file)
      "steps": [                one object per time step, t = 1..T
        {"t": 1, "<name>": [numbers], ...}
      ],
      "kernel": [[...]], "y_conv": [[...]]      ssm only: K (T, C) and y = K * x + D x (T, C)
      "matrix": [[[...]]], "y_matrix": [[...]]  mamba only: M (C, T, T) and y = M x + D x (T, C)
    }

Every step carries every named intermediate of the cell's trace as a list of numbers:

    lstm  x h_prev c_prev hx pre_i pre_f pre_g pre_o i f g o forget_term input_term c tanh_c h
    gru   x h_prev hx pre_r pre_z xn hn r z reset_term pre_n n new_term keep_term h
    rnn   x h_prev hx pre h
    slstm x (= W x_t, the gates' input part) h_prev c_prev n_prev m_prev rh pre_i pre_f pre_z pre_o log_f
          restart m i f z o c n c_over_n h
    mlstm q k v pre_i pre_f C_prev n_prev m_prev log_f m i f kv C n q_scaled num qn den h
    ssm   x h_prev delta dA A_bar B_bar A_bar_h B_bar_x h Ch Dx y
    mamba x h_prev pre_delta delta B C dA A_bar B_bar B_bar_x A_bar_h h y_ssm Dx y, and with a gate z also
          gate silu_gate y_gated (y_gated = y ⊙ SiLU(z) is then the output)

The state-space cells' h_prev, dA, A_bar, B_bar, A_bar_h, B_bar_x, h are C × N (lists of lists; B and C are
Mamba's B_t, C_t, N long); their kernel, y_conv, matrix and y_matrix come from the reference's convolution
and matrix views in the same mode, y_conv and y_matrix equal to the steps' y in exact mode.

(g is the seeds' candidate memory C̃; tanh_c their candidate output o'). In hand mode the numbers are
the rounded values the walkthrough carries; in exact mode they are float64 at full precision.
"""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from lstmkit.explain.numbers import dumps, matrix_rows, number, vector
from lstmkit.explain.walkthrough import ALL_STEPS, Row, Stage, Walkthrough
from lstmkit.explain.walkthrough.example_file import to_dict
from lstmkit.reference import MODES, mamba, ssm

SCHEMA = "lstmkit.walkthrough/1"
TITLES = {
    "lstm": "LSTM",
    "gru": "GRU",
    "rnn": "RNN (tanh)",
    "slstm": "sLSTM",
    "mlstm": "mLSTM (one head)",
    "ssm": "Diagonal SSM (S4D-style)",
    "mamba": "Mamba selective SSM (S6)",
}


def _shown(row: Row, mode: str) -> str:
    if np.ndim(row.value) == 0:
        shown = number(row.value, mode)
        return shown if row.source is None else f"{number(row.source, mode)} → {shown}"
    if np.ndim(row.value) == 2 and row.source is not None:  # source → value, side by side, row by row
        pairs = zip(matrix_rows(row.source, mode), matrix_rows(row.value, mode), strict=True)
        return "\n".join(f"{a} {'→' if k == 0 else ' '} {b}" for k, (a, b) in enumerate(pairs))
    if np.ndim(row.value) == 2:
        return "\n".join(matrix_rows(row.value, mode))
    if row.source is not None:
        return f"{vector(row.source, mode)} → {vector(row.value, mode)}"
    return vector(row.value, mode)


def _heading(w: Walkthrough) -> str:
    return f"{TITLES[w.cell]} walkthrough, {w.mode} mode, t = 1..{len(w.steps)}"


def when(t: int, steps: int) -> str:
    """A stage's time: '' for [1] Given, 't = 1..T' for a stage about the whole sequence, else 't = 2'."""
    return "" if t == 0 else f"t = 1..{steps}" if t == ALL_STEPS else f"t = {t}"


def _stage_title(stage: Stage, steps: int) -> str:
    return f"[{stage.number}] {stage.title}" + (f"  ({when(stage.t, steps)})" if stage.t else "")


def renderables(w: Walkthrough):
    """The text walkthrough as rich objects (a title, then one table per stage)."""
    parts = [Text(_heading(w), style="bold")]
    if w.mode == "hand":
        parts.append(Text("Hand mode: every value is rounded to one decimal and carried forward, as on paper."))
    for stage in w.stages:
        parts.append(Text(_stage_title(stage, len(w.steps)), style="bold"))
        table = Table(show_header=False)
        table.add_column("what", style="cyan", no_wrap=True)
        table.add_column("how")
        table.add_column("value", no_wrap=True)
        for row in stage.rows:
            table.add_row(Text(row.label), Text(row.formula), Text(_shown(row, w.mode)))  # Text: no markup
        parts.append(table)
        if stage.note:
            parts.append(Text("  " + stage.note, style="italic"))
    return Group(*parts)


def to_text(w: Walkthrough, width: int = 100) -> str:
    """Plain text (no colour codes), the same tables the terminal shows."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, legacy_windows=False).print(renderables(w))
    return buffer.getvalue()


def to_markdown(w: Walkthrough) -> str:
    lines = [f"# {_heading(w)}", ""]
    if w.mode == "hand":
        lines += ["Hand mode: every value is rounded to one decimal and carried forward, as on paper.", ""]
    for stage in w.stages:
        lines += [f"## {_stage_title(stage, len(w.steps))}", "", "| what | how | value |", "|---|---|---|"]
        for row in stage.rows:
            value = _shown(row, w.mode).replace("\n", "<br>")
            lines.append(f"| {_md(row.label)} | {_md(row.formula)} | `{value}` |")
        lines.append("")
        if stage.note:
            lines += [f"*{_md(stage.note)}*", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def to_json_dict(w: Walkthrough) -> dict:
    steps = [
        {"t": t, **{k: np.asarray(v).tolist() for k, v in s._asdict().items() if v is not None}}
        for t, s in enumerate(w.steps, 1)
    ]
    data = {"schema": SCHEMA, "cell": w.cell, "mode": w.mode, "spec": to_dict(w.example), "steps": steps}
    return data | {name: np.asarray(v).tolist() for name, v in _views(w).items()}


def _views(w: Walkthrough) -> dict:
    """The state-space cells' whole-sequence outputs, from the reference in the walkthrough's mode."""
    ex, rounding = w.example, MODES[w.mode]
    if w.cell == "ssm":
        conv = ssm.convolution(ex.params, ex.xs, ex.state0, rounding)
        return {"kernel": conv.kernel, "y_conv": conv.y}
    if w.cell == "mamba":
        view = mamba.matrix_view(ex.params, w.steps, rounding)
        return {"matrix": view.matrix, "y_matrix": view.y}
    return {}


def to_json(w: Walkthrough) -> str:
    return dumps(to_json_dict(w))


FORMATS = {"text": to_text, "markdown": to_markdown, "json": to_json}
