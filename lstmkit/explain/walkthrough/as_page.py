"""The walkthrough as one self-contained web page: coloured grids, hand and exact side by side, a navigator.

    page = to_html(walkthrough.build(example, "hand"), walkthrough.build(example, "exact"))

Layout: one <section class="stage"> per numbered stage, shown one at a time. The navigator (Previous /
Next buttons, the ← → keys, Home / End, and one button per stage grouped by time step, "all t" for the
state-space cells' whole-sequence stages, headed t = 1..T) switches between
them and keeps the address's #stage-N in step, so a stage can be linked (the sections carry no matching
id, so the browser never scrolls a stage under the sticky navigator). Printing shows every stage.

Each row shows its label and formula, then two panels, "by hand" (rounded to one decimal and carried
forward) and "exact" (float64, six decimals). A row computed from other numbers draws its equation as
grids, e.g. W_f · [h0, X1] + b_f = pre f1, with 1-D arrays as columns like the seeds' figures. Every
number is a <td> coloured blue (negative) to red (positive), with its full value in `data-v`, so a test
(or a reader's script) can read the page back exactly. The stage [1] Given is the same in both modes
and is shown once.

Structure a test can rely on: section.stage[data-stage][data-t], .row[data-label], .panel[data-mode],
table.grid[data-role=value] (the row's value) and table.grid[data-role=term] (equation terms).
"""

from __future__ import annotations

import numpy as np

from lstmkit.explain.html import cell_style, esc, page
from lstmkit.explain.numbers import number
from lstmkit.explain.walkthrough import ALL_STEPS, Row, Stage, Walkthrough
from lstmkit.explain.walkthrough.as_text import TITLES, when

CSS = """
nav.steps { position: sticky; top: 0; z-index: 2; background: var(--band); padding: .6rem 0; border-bottom: 1px solid
  var(--line); }
nav.steps .bar { display: flex; align-items: center; gap: .8rem; }
nav.steps button { font: inherit; padding: .35rem .8rem; border: 1px solid #aab2c0; border-radius: 6px;
  background: #fff; cursor: pointer; }
nav.steps button:disabled { opacity: .4; cursor: default; }
#where { font-weight: 600; }
.pills { display: flex; flex-wrap: wrap; gap: .3rem .9rem; margin-top: .5rem; font-size: 12px; }
.pills .group { display: flex; gap: 3px; align-items: center; }
.pills .group span { color: var(--muted); margin-right: 2px; }
.pills button { padding: 1px 7px; font-size: 12px; }
.pills button.active { background: #1d2330; color: #fff; border-color: #1d2330; }
section.stage h2 { margin-top: .2rem; }
p.note { font-style: italic; color: var(--muted); }
.row { border-top: 1px solid var(--line); padding: .6rem 0; }
.row .head { display: flex; gap: 1rem; align-items: baseline; }
.row .label { font-weight: 600; min-width: 9rem; }
.row .formula { color: var(--muted); font-family: ui-monospace, Menlo, Consolas, monospace; }
.panels { display: flex; gap: 1.2rem; flex-wrap: wrap; margin-top: .35rem; }
.panel { background: #fafbfd; border: 1px solid var(--line); border-radius: 6px; padding: .4rem .6rem; }
.panel h3 { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 0 0 .3rem; }
.eq { display: flex; align-items: center; gap: .45rem; flex-wrap: wrap; }
.eq .op { font-size: 1.2rem; color: var(--muted); }
.term { display: flex; flex-direction: column; align-items: center; gap: 2px; }
.term .name { font-size: 11px; color: var(--muted); }
.legend span { display: inline-block; min-width: 2.6em; padding: 1px 5px; text-align: right; font-size: 13px;
  border: 1px solid #c9ced8; }
@media print { nav.steps { display: none; } section.stage[hidden] { display: block !important; }
  section.stage { break-inside: avoid; } }
"""

SCRIPT = """
const stages = Array.from(document.querySelectorAll("section.stage"));
const pills = Array.from(document.querySelectorAll(".pills button"));
const prev = document.getElementById("prev"), next = document.getElementById("next");
const where = document.getElementById("where");
let current = 0;
function show(k) {
  current = Math.max(0, Math.min(stages.length - 1, k));
  stages.forEach((s, j) => { s.hidden = j !== current; });
  pills.forEach((p, j) => p.classList.toggle("active", j === current));
  const s = stages[current];
  where.textContent = "Stage " + (current + 1) + " of " + stages.length + " \\u00b7 " + s.dataset.title;
  prev.disabled = current === 0;
  next.disabled = current === stages.length - 1;
  history.replaceState(null, "", "#stage-" + (current + 1));
}
prev.addEventListener("click", () => show(current - 1));
next.addEventListener("click", () => show(current + 1));
pills.forEach((p, j) => p.addEventListener("click", () => show(j)));
document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.key === "ArrowRight") { show(current + 1); e.preventDefault(); }
  if (e.key === "ArrowLeft") { show(current - 1); e.preventDefault(); }
  if (e.key === "Home") { show(0); e.preventDefault(); }
  if (e.key === "End") { show(stages.length - 1); e.preventDefault(); }
});
function fromAddress() {
  const m = /^#stage-(\\d+)$/.exec(location.hash);
  show(m ? Number(m[1]) - 1 : 0);
}
window.addEventListener("hashchange", fromAddress);
fromAddress();
window.scrollTo(0, 0);
"""


def to_html(hand: Walkthrough, exact: Walkthrough) -> str:
    """The page for one example, built from its hand-mode and exact-mode walkthroughs."""
    if (hand.mode, exact.mode) != ("hand", "exact") or hand.example is not exact.example:
        raise ValueError("to_html needs the hand-mode and the exact-mode walkthrough of the same example")
    title = f"{TITLES[hand.cell]} walkthrough"
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="lead">Every intermediate of every step, t = 1..{len(hand.steps)}. <b>By hand</b>: each result '
        "rounded to one decimal (half away from zero) and carried forward, as on paper. <b>Exact</b>: float64. "
        f"Colours: {_legend()} &nbsp; Keys: ← → (Home, End).</p>",
        _navigator(hand.stages),
    ]
    body += [_stage(h, e, len(hand.steps)) for h, e in zip(hand.stages, exact.stages, strict=True)]
    return page(title, "\n".join(body), css=CSS, script=SCRIPT)


def _legend() -> str:
    cells = "".join(f'<span style="{cell_style(v, 1)}">{v:g}</span>' for v in (-1, -0.5, 0, 0.5, 1))
    return f'<span class="legend mono">{cells}</span>'


def _navigator(stages: list[Stage]) -> str:
    groups: dict[int, list[str]] = {}
    for stage in stages:
        groups.setdefault(stage.t, []).append(
            f'<button type="button" title="{esc(stage.title)}" data-go="{stage.number}">{stage.number}</button>'
        )
    names = {0: "given", ALL_STEPS: "all t"}
    pills = "".join(
        f'<div class="group"><span>{names.get(t, f"t = {t}")}</span>{"".join(buttons)}</div>'
        for t, buttons in groups.items()
    )
    return (
        '<nav class="steps" aria-label="steps"><div class="bar">'
        '<button type="button" id="prev" aria-label="previous stage">◀ Previous</button>'
        '<button type="button" id="next" aria-label="next stage">Next ▶</button>'
        f'<span id="where" aria-live="polite"></span></div><div class="pills">{pills}</div></nav>'
    )


def _stage(hand: Stage, exact: Stage, steps: int) -> str:
    heading = f"[{hand.number}] {hand.title}" + (f" ({when(hand.t, steps)})" if hand.t else "")
    modes = [("given", hand)] if hand.t == 0 else [("hand", hand), ("exact", exact)]
    rows = []
    for k, row in enumerate(hand.rows):
        panels = "".join(_panel(mode, stage.rows[k]) for mode, stage in modes)
        rows.append(
            f'<div class="row" data-label="{esc(row.label)}"><div class="head"><span class="label">{esc(row.label)}'
            f'</span><span class="formula">{esc(row.formula)}</span></div><div class="panels">{panels}</div></div>'
        )
    note = f'<p class="note">{esc(hand.note)}</p>' if hand.note else ""
    return (
        f'<section class="stage card" data-stage="{hand.number}" data-t="{hand.t}" '
        f'data-title="{esc(heading)}"><h2>{esc(heading)}</h2>{"".join(rows)}{note}</section>'
    )


def _panel(mode: str, row: Row) -> str:
    """One mode's view of a row: its equation as grids (when it has one), then = and the value."""
    fmt = "hand" if mode == "hand" else "exact"
    parts = []
    for term in row.terms:
        if term.op:
            parts.append(f'<span class="op">{esc(term.op)}</span>')
        parts.append(_term(term.label, term.value, fmt, "term"))
    if row.source is not None:  # a squashing step: σ( source ) = value
        function = row.formula.split("(")[0].strip() or row.formula
        parts += [
            f'<span class="op">{esc(function)}(</span>',
            _term("", row.source, fmt, "source"),
            '<span class="op">)</span>',
        ]
    if parts:
        parts.append('<span class="op">=</span>')
    parts.append(_term(row.label, row.value, fmt, "value"))
    name = {"hand": "by hand", "exact": "exact", "given": "given"}[mode]
    return f'<div class="panel" data-mode="{mode}"><h3>{name}</h3><div class="eq">{"".join(parts)}</div></div>'


def _scale_of(value) -> float:
    """Colour scale of one grid: its largest magnitude, at least 1 (so gates in [0, 1] keep their shade)."""
    a = np.abs(np.asarray(value, dtype=float))
    return max(1.0, float(a.max())) if a.size else 1.0


def _term(label: str, value, fmt: str, role: str) -> str:
    return f'<div class="term"><span class="name">{esc(label)}</span>{grid(value, fmt, _scale_of(value), role)}</div>'


def grid(value, fmt: str, scale: float, role: str = "value") -> str:
    """A table of numbers: 0-D one cell, 1-D a column, 2-D as it is; `data-v` holds each full value."""
    a = np.asarray(value, dtype=float)
    rows = a.reshape(1, 1) if a.ndim == 0 else a.reshape(-1, 1) if a.ndim == 1 else a
    body = "".join(
        "<tr>"
        + "".join(f'<td style="{cell_style(v, scale)}" data-v="{float(v)!r}">{number(v, fmt)}</td>' for v in r)
        + "</tr>"
        for r in rows
    )
    return f'<table class="grid" data-role="{role}" data-shape="{"x".join(map(str, a.shape))}">{body}</table>'
