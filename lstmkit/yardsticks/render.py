"""The formal-language table's files, from its cells: table.json, table.md and a colour-coded table.png.

    scores = rank_normalised(cells)            # {(task, row): score in [0, 1]}, per task over the rows
    write_table(cells, out, tasks, rows, levels)

A cell is the record lstmkit.yardsticks.formal_table.run_cell writes: task, row, accuracy, chance, steps, seconds.
The picture colours each cell by its normalised score (the xLSTM paper's Figure 4 colours its cells by a
rank-normalised accuracy; here the scale runs from chance to the best row, see `rank_normalised`) and prints the
test accuracy in it; the last column is the row's mean score.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from lstmkit.checkpoint import write_bytes_atomic, write_text_atomic


def rank_normalised(cells: list[dict]) -> dict[tuple[str, str], float]:
    """Per task, (accuracy - chance) / (best - chance) over the rows, clipped to [0, 1]: the best row 1, a row at
    chance or below 0. A task whose best row is within NOISE of chance counts as learned by none: 0 for every row
    (min-max over rows all at chance would only rank the noise)."""
    scores = {}
    for task in {c["task"] for c in cells}:
        mine = [c for c in cells if c["task"] == task]
        best, chance = max(c["accuracy"] for c in mine), mine[0]["chance"]
        for c in mine:
            learned = best - chance >= NOISE
            scores[task, c["row"]] = min(1.0, max(0.0, (c["accuracy"] - chance) / (best - chance))) if learned else 0.0
    return scores


NOISE = 0.05
"""About 2.5 standard errors of an accuracy near 0.5 measured on 512 words: a best row closer than this to chance
has learned nothing we can tell apart from chance."""


def row_means(scores: dict[tuple[str, str], float], tasks: list[str], rows: list[str]) -> dict[str, float]:
    means = {}
    for row in rows:
        mine = [scores[t, row] for t in tasks if (t, row) in scores]
        means[row] = sum(mine) / len(mine) if mine else float("nan")
    return means


def write_table(cells: list[dict], out: Path, tasks: list[str], rows: list[str], levels: dict) -> None:
    by = {(c["task"], c["row"]): c for c in cells}
    tasks = [t for t in tasks if any((t, r) in by for r in rows)]
    scores = rank_normalised(cells)
    means = row_means(scores, tasks, rows)
    record = {"cells": cells, "rank_normalised": {f"{t}--{r}": s for (t, r), s in scores.items()}, "row_means": means}
    write_text_atomic(out / "table.json", json.dumps(record, indent=2) + "\n")
    write_text_atomic(out / "table.md", markdown(by, scores, means, tasks, rows, levels))
    write_bytes_atomic(out / "table.png", picture(by, scores, means, tasks, rows, levels))


def level_of(task: str, levels: dict) -> str:
    return next((level for level, names in levels.items() if task in names), "other")


def markdown(by, scores, means, tasks: list[str], rows: list[str], levels: dict) -> str:
    """Rows = models, columns = tasks (grouped by level): test accuracy, then the mean rank-normalised score."""
    short = {"regular": "R", "context-free": "CF", "context-sensitive": "CS"}
    header = ["model", *(f"{t} ({short.get(level_of(t, levels), '?')})" for t in tasks), "score"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        values = [f"{by[t, row]['accuracy']:.2f}" if (t, row) in by else "–" for t in tasks]
        lines.append(f"| {row} | " + " | ".join(values) + f" | {means[row]:.2f} |")
    chances = [f"{by[t, rows[0]]['chance']:.2f}" if (t, rows[0]) in by else "–" for t in tasks]
    lines.append("| *chance* | " + " | ".join(chances) + " | |")
    seconds = sum(c["seconds"] for c in by.values())
    lines.append("")
    lines.append(
        f"Test accuracy on words of 40–256 symbols after training on 3–40; score = mean accuracy normalised per task "
        f"between chance (0) and the best row (1). "
        f"{len(by)} cells, {seconds / 60:.0f} CPU-minutes of training in all (one thread per cell)."
    )
    return "\n".join(lines) + "\n"


def picture(by, scores, means, tasks: list[str], rows: list[str], levels: dict) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global state

    grid = [[scores.get((t, r), float("nan")) for t in tasks] + [means[r]] for r in rows]
    figure = Figure(figsize=(1.0 + 0.75 * (len(tasks) + 1), 0.9 + 0.42 * len(rows)), dpi=120)
    axes = figure.add_subplot()
    axes.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for i, row in enumerate(rows):
        for j, task in enumerate(tasks):
            if (task, row) in by:
                axes.text(j, i, f"{by[task, row]['accuracy']:.2f}", ha="center", va="center", fontsize=7)
        axes.text(len(tasks), i, f"{means[row]:.2f}", ha="center", va="center", fontsize=7, weight="bold")
    axes.set_xticks(range(len(tasks) + 1), [*tasks, "score"], rotation=60, ha="right", fontsize=7)
    axes.set_yticks(range(len(rows)), rows, fontsize=8)
    edges = [j for j in range(1, len(tasks)) if level_of(tasks[j], levels) != level_of(tasks[j - 1], levels)]
    for j in [*edges, len(tasks)]:
        axes.axvline(j - 0.5, color="black", linewidth=1.2)
    axes.set_title("test accuracy, lengths 40-256 (colour: per task, chance 0 to best row 1)", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
