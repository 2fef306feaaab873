"""`lstmkit bench`: every family, one table each, printed as the rows arrive, then JSON and Markdown.

    run(families, quick, repeats, out_dir)  ->  out_dir/bench.json, out_dir/bench.md

Families run in this order (names for `--only`): rnn, mlstm, slstm, lm, generation, memory, mamba, gpu.
A family whose peer package is missing, and the GPU rows without CUDA, are skipped with one line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lstmkit.bench import gpu, language_models, mamba, memory, rnn_layers, xlstm_cells
from lstmkit.bench.machine import describe, gemm_rates, header_lines
from lstmkit.bench.peers import PeerMissing
from lstmkit.bench.results import Row, markdown, table_header, table_row, to_json

FAMILIES: dict[str, Callable] = {
    "rnn": rnn_layers.rows,
    "mlstm": xlstm_cells.mlstm_rows,
    "slstm": xlstm_cells.slstm_rows,
    "lm": language_models.training_rows,
    "generation": language_models.generation_rows,
    "memory": memory.rows,
    "mamba": mamba.rows,
}
ALL = [*FAMILIES, "gpu"]


def run(families: list[str], quick: bool, repeats: int, out_dir: Path, say: Callable[[str], None] = print) -> dict:
    """Measure, print each family's table as it fills, write bench.json and bench.md; returns the JSON's dict.
    `out_dir` is checked writable before anything is measured (`lstmkit.files.check_output_dir`)."""
    from lstmkit.files import check_output_dir, make_output_dir, write_into

    unknown = [f for f in families if f not in ALL]
    if unknown:
        raise ValueError(f"unknown benchmark family {unknown[0]!r}, expected some of {', '.join(ALL)}")
    check_output_dir(out_dir)
    settings = {"quick": quick, "repeats": repeats, "families": families, "gemm_n": 256 if quick else 2048}
    gemm = gemm_rates(settings["gemm_n"])
    machine = describe()
    header = header_lines(machine, gemm, settings)
    for line in header:
        say(line)
    rows: list[Row] = []
    skipped: list[str] = []
    for k, family in enumerate(families, 1):
        progress(f"[{k}/{len(families)}] {family} …")
        start = time.perf_counter()
        if family == "gpu":
            if gpu.available() is None:
                skipped.append("GPU rows: no CUDA device here (torch.cuda.is_available() is False)")
                say(f"* skipped: {skipped[-1]}")
                continue
            produced = gpu.rows(quick, repeats, skipped)
        else:
            produced = FAMILIES[family](quick, repeats)
        try:
            shown = None
            for row in produced:
                if row.family != shown:
                    say(f"\n### {row.family}\n\n{table_header(row.unit)}")
                    shown = row.family
                say(table_row(row, gemm))
                rows.append(row)
        except PeerMissing as e:
            skipped.append(f"{family}: {e}")
            say(f"* skipped: {skipped[-1]}")
        progress(f"[{k}/{len(families)}] {family} done in {time.perf_counter() - start:.0f} s")
    by_family: dict[str, list[Row]] = {}
    for row in rows:
        by_family.setdefault(row.family, []).append(row)
    make_output_dir(out_dir)
    text = to_json(machine, settings, rows, skipped, gemm)
    write_into(out_dir, "bench.json", text)
    write_into(out_dir, "bench.md", markdown(header, by_family, skipped, gemm))
    say(f"\nresults written to {out_dir / 'bench.json'} and {out_dir / 'bench.md'}")
    return json.loads(text)


def progress(line: str) -> None:
    """Where the suite is, on stderr (the tables on stdout stay clean to redirect)."""
    print(line, file=sys.stderr, flush=True)


MAX_THREADS = 1024
"""More torch threads than this is a typo, not a machine (torch would try to start them all)."""


def check_threads(threads: int | None) -> None:
    """None (torch's own choice) or 1..MAX_THREADS, else one line naming --threads."""
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"--threads is {threads}, expected 1 to {MAX_THREADS} (or leave it out for torch's own)")


def set_threads(threads: int | None) -> None:
    check_threads(threads)
    if threads is not None:
        torch.set_num_threads(threads)
