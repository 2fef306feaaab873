"""An `Exercise` as a worksheet and an answer key, in Markdown and in HTML (one printable page each).

Both follow the walkthrough's numbered stages (`lstmkit.explain.walkthrough`):

    [1] Given            in full on both: sizes, inputs, initial state, weights as grids
    [2] ... [N]          one row per value: label, formula, then
                           worksheet   an empty box per number (a vector of 2 gets 2 boxes)
                           answer key  the hand-mode number in each box, the exact value in small print
                                       (where it differs)

    [N+1] ...            the state-space cells' stages about the whole sequence (the convolution or
                         matrix view), titled (t = 1..T)

with the rules (round to 0.1 half away from zero, carry the rounded value forward), function tables,
the command that makes the exercise again, and the spec (JSON) with the line that checks answers:
`lstmkit walkthrough --spec FILE.json`. The function tables (three decimals):

    gated cells   σ and tanh (and log σ, exp for the sLSTM) at a few points, to check a calculator
    ssm           Ā as a function of ΔA, exp(z) (zoh, zoh-euler) or (1 + z/2) / (1 - z/2) (bilinear), at
                  every multiple of 0.1 from 0 to -1.9: a grid, row -1 and column .3 hold z = -1.3
    mamba         exp(z) on the same grid from 0 to -2.9 (a hand-mode ΔA is always a multiple of 0.1, and
                  exp(z) rounds to 0 from z = -3), and softplus and SiLU at the whole numbers -3..3 (a
                  hand-mode pre-Δ and a drawn gate are whole numbers; beyond ±3 softplus rounds to max(z, 0))

The worksheet leaves out a note that quotes the example's values (a decimal number or a bracketed list:
Mamba's selection note, the whole-sequence views' agreement); the answer key has every note.

Reading the answers back: in the Markdown answer key each number of a computed row is its own code span
in the last column, before the `<sub>` holding the exact values; in the HTML each number is
`<span class="box" data-value="0.7" data-exact="0.700713">0.7</span>`. The worksheet has the same spans
empty (`<span class="box"></span>`, Markdown `____`), in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from lstmkit.explain.exercise import Exercise, spec_text
from lstmkit.explain.html import cell_style, esc, page
from lstmkit.explain.numbers import matrix_rows, number, vector
from lstmkit.explain.walkthrough import SEED_TYPO, Row, Stage
from lstmkit.explain.walkthrough.as_text import TITLES
from lstmkit.explain.walkthrough.stages import ALL_STEPS

BOX_MD = "`____`"
"""One empty answer box in the Markdown worksheet."""
POINTS = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)
"""Where the gated cells' function table gives σ, tanh (and log σ, exp)."""
WHOLE = (-3, -2, -1, 0, 1, 2, 3)
"""Where Mamba's table gives softplus and SiLU."""
GRID_ROWS = {"ssm": 2, "mamba": 3}
"""Rows of the tenths grid: 2 covers z = 0..-1.9, 3 covers 0..-2.9."""
RULES = (
    "Work through the stages in order; each box holds one number.",
    "Round every result to one decimal, half away from zero: 0.25 → 0.3, -0.25 → -0.3, 0.04 → 0.",
    "Carry the rounded value forward: later steps use your rounded numbers, not the calculator's longer ones.",
)
CALCULATOR = {
    "gated": "A calculator is fine: σ(z) = 1 / (1 + e^(-z)), tanh(z) = (e^z - e^(-z)) / (e^z + e^(-z)). "
    "The table below is there to check a few values.",
    "zoh": "A calculator is fine; the table below gives Ā = exp(ΔA) at every ΔA a multiple of 0.1 down to -1.9.",
    "zoh-euler": "A calculator is fine; the table below gives Ā = exp(ΔA) at every ΔA a multiple of 0.1 down to -1.9.",
    "bilinear": "A calculator is fine; the table below gives Ā = (1 + ΔA/2) / (1 - ΔA/2) at every ΔA a multiple "
    "of 0.1 down to -1.9.",
    "mamba": "A calculator is fine: softplus(z) = log(1 + e^z), SiLU(z) = z / (1 + e^(-z)). The tables below "
    "give exp at every multiple of 0.1 down to -2.9 (it rounds to 0 from -3 down), softplus and SiLU at -3..3 "
    "(softplus(z) rounds to z from 3 up and to 0 from -3 down).",
}
"""The last rule, by cell (the ssm's by its discretization)."""
MADE_BY = "Made by the command below; the same command always gives the same exercise (add --answers for the key)."


# --- what both formats share --------------------------------------------------------------------------


def _title(ex: Exercise, what: str) -> str:
    return f"{TITLES[ex.example.cell]} exercise, seed {ex.seed}: {what}"


CHECK = "To check: {command} prints every answer (hand mode), where {file} holds the example below ({o} writes it)."
"""The line on both pages that says how to check; {command} is `lstmkit walkthrough --spec FILE.json`."""


class Table(NamedTuple):
    """One function table: a caption (may be empty), the header, the rows (as text)."""

    caption: str
    header: list[str]
    rows: list[list[str]]


def _kind(ex: Exercise) -> str:
    """The key of CALCULATOR: the ssm's discretization, mamba, or gated."""
    cell = ex.example.cell
    return ex.example.params.discretization if cell == "ssm" else cell if cell == "mamba" else "gated"


def _rules(ex: Exercise) -> tuple[str, ...]:
    return (*RULES, CALCULATOR[_kind(ex)])


def _functions(ex: Exercise) -> list[Table]:
    """The function tables of the exercise's cell (three decimals)."""
    kind = _kind(ex)
    if kind == "gated":
        header = ["z", "σ(z)", "tanh(z)"]
        columns = [lambda z: 1 / (1 + np.exp(-z)), np.tanh]
        if ex.example.cell == "slstm":
            header += ["log σ(z)", "exp(z)"]
            columns += [lambda z: -np.logaddexp(0.0, -z), np.exp]
        return [Table("", header, [[number(z, "hand")] + [f"{float(f(z)):.3f}" for f in columns] for z in POINTS])]
    if kind == "bilinear":
        grid = _tenths("(1 + z/2) / (1 - z/2)", lambda z: (1 + z / 2) / (1 - z / 2), GRID_ROWS["ssm"])
    else:
        grid = _tenths("exp(z)", np.exp, GRID_ROWS[ex.example.cell])
    if kind != "mamba":
        return [grid]
    rows = [[str(z), f"{float(np.logaddexp(0.0, z)):.3f}", f"{z / (1 + np.exp(-z)):.3f}"] for z in WHOLE]
    return [grid, Table("", ["z", "softplus(z)", "SiLU(z)"], rows)]


def _tenths(name: str, f: Callable, count: int) -> Table:
    """f(z) at z = -(row + column): the row is the whole part, the column the tenths."""
    header = ["z"] + [f".{k}" for k in range(10)]
    rows = [[f"-{r}"] + [f"{float(f(-(r + k / 10))):.3f}" for k in range(10)] for r in range(count)]
    return Table(f"{name} at z = -(row + column): z = -1.3 is row -1, column .3", header, rows)


def _formula(row: Row, earlier: list[Row]) -> str:
    """'σ' becomes 'σ(pre f1)', naming the earlier row whose value the function acts on."""
    if row.source is None or row.formula not in ("σ", "tanh"):
        return row.formula
    for before in reversed(earlier):
        if before.value is row.source:
            return f"{row.formula}({before.label})"
    return row.formula


def _computed(ex: Exercise):
    """(stage, [(row, formula, exact value)]) for every stage after [1] Given."""
    earlier: list[Row] = []
    for stage, exact_stage in zip(ex.hand.stages[1:], ex.exact.stages[1:], strict=True):
        rows = []
        for row, exact_row in zip(stage.rows, exact_stage.rows, strict=True):
            rows.append((row, _formula(row, earlier), exact_row.value))
            earlier.append(row)
        yield stage, rows


QUOTES_VALUES = re.compile(r"\d\.\d|\[")
"""A note with a decimal number or a bracketed list quotes the example's values."""


def _note(stage: Stage, what: str) -> str:
    """The stage's note; none for the seeds' typo (it means nothing in a fresh exercise), and on the worksheet
    none that quotes values (Mamba's selection, the views' agreement), which would give answers away."""
    if stage.note == SEED_TYPO or (what == "worksheet" and QUOTES_VALUES.search(stage.note)):
        return ""
    return stage.note


def _stage_title(stage: Stage, steps: int) -> str:
    """'[3] Update state  (t = 1)'; a stage about the whole sequence says (t = 1..T)."""
    when = f"1..{steps}" if stage.t == ALL_STEPS else str(stage.t)
    return f"[{stage.number}] {stage.title}" + (f"  (t = {when})" if stage.t else "")


# --- Markdown -------------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def _md_laid_out(value: np.ndarray, slot: Callable[[int], str]) -> str:
    """Slots laid out in the value's shape: `x`, [`x`, `y`], or one bracketed line per matrix row."""
    value = np.asarray(value)
    if value.ndim == 0:
        return slot(0)
    rows = np.arange(value.size).reshape(value.shape if value.ndim == 2 else (1, -1))
    return "<br>".join("[" + ", ".join(slot(int(k)) for k in r) + "]" for r in rows)


def _md_given(value: np.ndarray) -> str:
    if np.ndim(value) == 2:
        return "<br>".join(f"`{line}`" for line in matrix_rows(value, "hand"))
    return f"`{number(value, 'hand')}`" if np.ndim(value) == 0 else f"`{vector(value, 'hand')}`"


def _md_box(hand: np.ndarray, exact: np.ndarray) -> str:
    return _md_laid_out(hand, lambda k: BOX_MD)


def _md_answer(hand: np.ndarray, exact: np.ndarray) -> str:
    numbers = np.ravel(hand)
    shown = _md_laid_out(hand, lambda k: f"`{number(numbers[k], 'hand')}`")
    if np.array_equal(hand, exact):
        return shown
    precise = number(exact, "exact") if np.ndim(exact) == 0 else vector(exact, "exact")
    return f"{shown} <sub>exact {precise}</sub>"


def _markdown(ex: Exercise, what: str, column: str, answer: Callable, spec_file: str) -> str:
    lines = [f"# {_title(ex, what)}", "", MADE_BY, "", f"    {ex.command}", "", "## How to work", ""]
    lines += [f"- {_md(rule)}" for rule in _rules(ex)] + [""]
    for table in _functions(ex):
        lines += [_md(table.caption), ""] if table.caption else []
        lines += ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
        lines += ["| " + " | ".join(r) + " |" for r in table.rows] + [""]
    given, steps = ex.hand.stages[0], len(ex.hand.steps)
    lines += [f"## {_stage_title(given, steps)}", "", "| what | how | value |", "|---|---|---|"]
    lines += [f"| {_md(r.label)} | {_md(r.formula)} | {_md_given(r.value)} |" for r in given.rows] + [""]
    for stage, rows in _computed(ex):
        lines += [f"## {_stage_title(stage, steps)}", "", f"| what | how | {column} |", "|---|---|---|"]
        lines += [f"| {_md(r.label)} | {_md(formula)} | {answer(r.value, exact)} |" for r, formula, exact in rows]
        lines.append("")
        if _note(stage, what):
            lines += [f"*{_md(_note(stage, what))}*", ""]
    check = CHECK.format(command=f"`lstmkit walkthrough --spec {spec_file}`", file=spec_file, o="`-o`")
    lines += ["## Check your answers", "", check, "", "```json", spec_text(ex.example), "```", ""]
    return "\n".join(lines)


def worksheet_markdown(ex: Exercise, spec_file: str = "exercise.json") -> str:
    """The worksheet: [1] Given in full, an empty box `____` per number of every later value."""
    return _markdown(ex, "worksheet", "your answer", _md_box, spec_file)


def answers_markdown(ex: Exercise, spec_file: str = "exercise.json") -> str:
    """The answer key: the worksheet's boxes filled with the hand-mode numbers, exact values in <sub>."""
    return _markdown(ex, "answer key", "answer", _md_answer, spec_file)


# --- HTML -----------------------------------------------------------------------------------------------

CSS = """
.command { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: .4rem .7rem;
           display: inline-block; }
ul.rules li { margin: .15rem 0; }
table.kv td.what { font-weight: 600; white-space: nowrap; }
table.kv td.how { color: var(--muted); padding-right: 1.4rem; }
tr[data-label] td.what, tr[data-label] td.how { padding-top: .6rem; }
.vec { white-space: nowrap; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.box { display: inline-block; min-width: 3.4em; height: 1.9em; line-height: 1.9em; margin: 2px 3px;
       border: 1.5px solid #7a8294; border-radius: 3px; text-align: center; vertical-align: middle;
       background: #fff; }
.exact { font-size: .75em; color: var(--muted); margin-top: 1px; }
.note { font-style: italic; color: var(--muted); margin: .5rem 0 0; }
p.caption { margin: .6rem 0 .2rem; color: var(--muted); }
table.functions { margin-bottom: .6rem; }
table.functions td, table.functions th { padding: 2px 10px; text-align: right; border-bottom: 1px solid var(--line); }
details.spec pre { background: var(--band); padding: .6rem; border-radius: 6px; overflow-x: auto; }
@media print {
  body { background: #fff; font-size: 12px; }
  main { max-width: none; padding: 0; }
  h1 { font-size: 1.2rem; }
  h2 { font-size: 1rem; margin: .3rem 0 .2rem; }
  table.kv td { padding: 1px 10px 1px 0; }
  section.card { border: none; border-radius: 0; padding: .2rem 0; margin: .3rem 0; break-inside: avoid; }
  details.spec { display: none; }
  .box { border-color: #000; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _html_given_value(value: np.ndarray) -> str:
    """A given matrix as a lightly coloured grid (pale, so it prints); a vector or a number as text."""
    if np.ndim(value) == 0:
        return f'<span class="mono">{esc(number(value, "hand"))}</span>'
    if np.ndim(value) == 1:
        return f'<span class="mono">{esc(vector(value, "hand"))}</span>'
    scale = 2.0 * float(np.max(np.abs(value))) or 1.0  # twice the largest: at most half-saturated colours
    body = "".join(
        "<tr>" + "".join(f'<td style="{cell_style(x, scale)}">{esc(number(x, "hand"))}</td>' for x in row) + "</tr>"
        for row in value
    )
    return f'<table class="grid">{body}</table>'


def _html_laid_out(value: np.ndarray, slot: Callable[[int], str]) -> str:
    value = np.asarray(value)
    if value.ndim == 0:
        return f'<span class="vec">{slot(0)}</span>'
    rows = np.arange(value.size).reshape(value.shape if value.ndim == 2 else (1, -1))
    return "<br>".join('<span class="vec">[' + ",".join(slot(int(k)) for k in r) + "]</span>" for r in rows)


def _html_box(hand: np.ndarray, exact: np.ndarray) -> str:
    return _html_laid_out(hand, lambda k: '<span class="box"></span>')


def _html_answer(hand: np.ndarray, exact: np.ndarray) -> str:
    numbers, precise = np.ravel(hand), np.ravel(exact)

    def slot(k: int) -> str:
        shown, full = esc(number(numbers[k], "hand")), esc(number(precise[k], "exact"))
        return f'<span class="box" data-value="{shown}" data-exact="{full}">{shown}</span>'

    if np.array_equal(hand, exact):
        return _html_laid_out(hand, slot)
    written = number(exact, "exact") if np.ndim(exact) == 0 else vector(exact, "exact")
    return _html_laid_out(hand, slot) + f'<div class="exact">exact {esc(written)}</div>'


def _html_rules(ex: Exercise) -> str:
    tables = "".join(
        (f'<p class="caption">{esc(t.caption)}</p>' if t.caption else "")
        + '<table class="functions"><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in t.header)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in t.rows)
        + "</table>"
        for t in _functions(ex)
    )
    rules = "".join(f"<li>{esc(rule)}</li>" for rule in _rules(ex))
    return f'<section class="card"><h2>How to work</h2><ul class="rules">{rules}</ul>{tables}</section>'


def _html_given(stage: Stage) -> str:
    rows = "".join(
        f'<tr><td class="what">{esc(r.label)}</td><td class="how">{esc(r.formula)}</td>'
        f"<td>{_html_given_value(r.value)}</td></tr>"
        for r in stage.rows
    )
    return f'<section class="card"><h2>{esc(_stage_title(stage, 0))}</h2><table class="kv">{rows}</table></section>'


def _html(ex: Exercise, what: str, answer: Callable, spec_file: str) -> str:
    parts = [
        f"<h1>{esc(_title(ex, what))}</h1>",
        f'<p class="lead">{esc(MADE_BY)}<br><code class="command">{esc(ex.command)}</code></p>',
        _html_rules(ex),
        _html_given(ex.hand.stages[0]),
    ]
    for stage, rows in _computed(ex):
        cells = "".join(
            f'<tr data-label="{esc(r.label)}" data-size="{np.size(r.value)}"><td class="what">{esc(r.label)}</td>'
            f'<td class="how">{esc(formula)}</td><td>{answer(r.value, exact)}</td></tr>'
            for r, formula, exact in rows
        )
        note = f'<p class="note">{esc(_note(stage, what))}</p>' if _note(stage, what) else ""
        parts.append(
            f'<section class="card" data-stage="{stage.number}"><h2>{esc(_stage_title(stage, len(ex.hand.steps)))}</h2>'
            f'<table class="kv">{cells}</table>{note}</section>'
        )
    spec = f'<details class="spec"><summary>{esc(spec_file)}</summary><pre>{esc(spec_text(ex.example))}</pre></details>'
    command = f"<code>{esc(f'lstmkit walkthrough --spec {spec_file}')}</code>"
    check = CHECK.format(command=command, file=esc(spec_file), o="<code>-o</code>")
    parts.append(f'<section class="card"><h2>Check your answers</h2><p>{check}</p>{spec}</section>')
    return page(_title(ex, what), "\n".join(parts), css=CSS)


def worksheet_html(ex: Exercise, spec_file: str = "exercise.json") -> str:
    """The worksheet as one self-contained, printable page: an empty box per number to fill in."""
    return _html(ex, "worksheet", _html_box, spec_file)


def answers_html(ex: Exercise, spec_file: str = "exercise.json") -> str:
    """The answer key as one self-contained, printable page: hand-mode numbers, exact ones in small print."""
    return _html(ex, "answer key", _html_answer, spec_file)


WORKSHEETS = {"markdown": worksheet_markdown, "html": worksheet_html}
ANSWER_KEYS = {"markdown": answers_markdown, "html": answers_html}
