"""Render a `Walkthrough` as text (rich tables), Markdown, or JSON.

The JSON schema (`"schema": "lstmkit.walkthrough/1"`) is stable; fields are only ever added:

    {
      "schema": "lstmkit.walkthrough/1",
      "cell": "lstm" | "gru" | "rnn" | "slstm" | "mlstm",
      "mode": "hand" | "exact",
      "spec": {...},            the example itself; a valid --spec file (see lstmkit.explain.walkthrough.example_file)
      "steps": [                one object per time step, t = 1..T
        {"t": 1, "<name>": [numbers], ...}
      ]
    }

Every step carries every named intermediate of the cell's trace as a list of numbers:

    lstm  x h_prev c_prev hx pre_i pre_f pre_g pre_o i f g o forget_term input_term c tanh_c h
    gru   x h_prev hx pre_r pre_z xn hn r z reset_term pre_n n new_term keep_term h
    rnn   x h_prev hx pre h
    slstm x (= W x_t, the gates' input part) h_prev c_prev n_prev m_prev rh pre_i pre_f pre_z pre_o log_f
          restart m i f z o c n c_over_n h
    mlstm q k v pre_i pre_f C_prev n_prev m_prev log_f m i f kv C n q_scaled num qn den h

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
from lstmkit.explain.walkthrough import Row, Stage, Walkthrough
from lstmkit.explain.walkthrough.example_file import to_dict

SCHEMA = "lstmkit.walkthrough/1"
TITLES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN (tanh)", "slstm": "sLSTM", "mlstm": "mLSTM (one head)"}


def _shown(row: Row, mode: str) -> str:
    if np.ndim(row.value) == 0:
        shown = number(row.value, mode)
        return shown if row.source is None else f"{number(row.source, mode)} → {shown}"
    if np.ndim(row.value) == 2:
        return "\n".join(matrix_rows(row.value, mode))
    if row.source is not None:
        return f"{vector(row.source, mode)} → {vector(row.value, mode)}"
    return vector(row.value, mode)


def _heading(w: Walkthrough) -> str:
    return f"{TITLES[w.cell]} walkthrough, {w.mode} mode, t = 1..{len(w.steps)}"


def _stage_title(stage: Stage) -> str:
    return f"[{stage.number}] {stage.title}" + (f"  (t = {stage.t})" if stage.t else "")


def renderables(w: Walkthrough):
    """The text walkthrough as rich objects (a title, then one table per stage)."""
    parts = [Text(_heading(w), style="bold")]
    if w.mode == "hand":
        parts.append(Text("Hand mode: every value is rounded to one decimal and carried forward, as on paper."))
    for stage in w.stages:
        parts.append(Text(_stage_title(stage), style="bold"))
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
        lines += [f"## {_stage_title(stage)}", "", "| what | how | value |", "|---|---|---|"]
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
    steps = [{"t": t, **{k: np.asarray(v).tolist() for k, v in s._asdict().items()}} for t, s in enumerate(w.steps, 1)]
    return {"schema": SCHEMA, "cell": w.cell, "mode": w.mode, "spec": to_dict(w.example), "steps": steps}


def to_json(w: Walkthrough) -> str:
    return dumps(to_json_dict(w))


FORMATS = {"text": to_text, "markdown": to_markdown, "json": to_json}
