"""`lstmkit bench`: every family, one table each, printed as the rows arrive, then JSON and Markdown.

    run(families, quick, repeats, out_dir, threads=(1, 2))  ->  out_dir/bench.json, out_dir/bench.md

Families run in this order (names for `--only`): rnn, mlstm, slstm, lm, generation, memory, mamba, gpu.
A family whose peer package is missing, and the GPU rows without CUDA, are skipped with one line.

Every family runs once per thread count in `threads` (torch.set_num_threads; None: torch's count as it is), each
in tables of its own, except those in ONCE (peak memory does not depend on threads; the GPU's kernels hardly).
Every timed table starts with its control row: the peer of its first row raced against itself
(`timing.control`, on the very call of the family's own race), which should read 1.00; a control outside
1 ± `results.CONTROL_TOLERANCE` flags every row of its table (⚠, and `control_off` in the JSON).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from lstmkit.bench import gpu, language_models, large_decode, mamba, memory, rnn_layers, xlstm_cells, xlstm_vs_lstm
from lstmkit.bench.machine import check_threads, describe, gemm_rates, header_lines
from lstmkit.bench.peers import PeerMissing
from lstmkit.bench.results import Row, control_note, heading, markdown, table_header, table_row, to_json
from lstmkit.bench.timing import AGAIN, Race, candidate_of, control, median_ms, watching

FAMILIES: dict[str, Callable] = {
    "rnn": rnn_layers.rows,
    "mlstm": xlstm_cells.mlstm_rows,
    "slstm": xlstm_cells.slstm_rows,
    "lm": language_models.training_rows,
    "generation": language_models.generation_rows,
    "memory": memory.rows,
    "mamba": mamba.rows,
    "large-decode": large_decode.decode_rows,
    "xlstm-vs-lstm": xlstm_vs_lstm.rows,
}
ALL = [*FAMILIES, "gpu"]
SELF_CONTROLLED = {"large-decode"}
"""Families that race their own control in the same rounds as each case (and flag their rows): no suite control."""


ONCE = {"memory", "gpu"}
"""Families measured at the first thread count only."""


def run(
    families: list[str],
    quick: bool,
    repeats: int,
    out_dir: Path,
    say: Callable[[str], None] = print,
    threads: tuple[int | None, ...] = (None,),
) -> dict:
    """Measure, print each family's table as it fills, write bench.json and bench.md; returns the JSON's dict.
    `out_dir` is checked writable before anything is measured (`lstmkit.files.check_output_dir`); torch's
    thread count is given back afterwards."""
    from lstmkit.files import check_output_dir, make_output_dir, write_into

    unknown = [f for f in families if f not in ALL]
    if unknown:
        raise ValueError(f"unknown benchmark family {unknown[0]!r}, expected some of {', '.join(ALL)}")
    for n in threads:
        check_threads(n)
    check_output_dir(out_dir)
    before = torch.get_num_threads()
    counts = list(dict.fromkeys(before if n is None else n for n in threads))
    settings = {"quick": quick, "repeats": repeats, "families": families, "gemm_n": 256 if quick else 2048}
    settings["threads"] = counts
    machine = describe()
    rows: list[Row] = []
    skipped: list[str] = []
    try:
        gemm = {n: _gemm_at(n, settings["gemm_n"]) for n in counts}
        header = header_lines(machine, gemm, settings)
        for line in header:
            say(line)
        for n in counts:
            torch.set_num_threads(n)
            for k, family in enumerate(families, 1):
                if n != counts[0] and family in ONCE:
                    continue
                progress(f"[{k}/{len(families)}] {family}" + (f", {n} threads" if len(counts) > 1 else "") + " …")
                start = time.perf_counter()
                rows += _family(family, quick, repeats, len(counts) > 1, gemm[n], skipped, say)
                progress(f"[{k}/{len(families)}] {family} done in {time.perf_counter() - start:.0f} s")
    finally:
        torch.set_num_threads(before)
    by_table: dict[str, list[Row]] = {}
    for row in rows:
        by_table.setdefault(heading(row, len(counts) > 1), []).append(row)
    make_output_dir(out_dir)
    text = to_json(machine, settings, rows, skipped, gemm)
    write_into(out_dir, "bench.json", text)
    write_into(out_dir, "bench.md", markdown(header, by_table, skipped, gemm))
    say(f"\nresults written to {out_dir / 'bench.json'} and {out_dir / 'bench.md'}")
    return json.loads(text)


def _gemm_at(threads: int, n: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    return gemm_rates(n)


def _family(family: str, quick: bool, repeats: int, several: bool, gemm: dict, skipped: list[str], say) -> list[Row]:
    """One family's rows (with their control rows), printed as they come; a missing peer is one skipped line."""
    if family == "gpu":
        if gpu.available() is None:
            skipped.append("GPU rows: no CUDA device here (torch.cuda.is_available() is False)")
            say(f"* skipped: {skipped[-1]}")
            return []
        produced = gpu.rows(quick, repeats, skipped)
    else:
        produced = FAMILIES[family](quick, repeats)
    rows: list[Row] = []
    shown = None
    try:
        tagged = (dataclasses.replace(r, threads=torch.get_num_threads()) for r in produced)
        for row in tagged if family in SELF_CONTROLLED else controlled(produced, repeats, several):
            if heading(row, several) != shown:
                shown = heading(row, several)
                note = [control_note(row) + "\n"] if row.control and row.off else []
                say("\n".join(["", *note, f"### {shown}", "", table_header(row.unit)]))
            say(table_row(row, gemm))
            rows.append(row)
    except PeerMissing as e:
        skipped.append(f"{family}: {e}")
        say(f"* skipped: {skipped[-1]}")
    return rows


def controlled(produced: Iterator[Row], repeats: int, several: bool) -> Iterator[Row]:
    """The rows, each tagged with torch's thread count; before a table's first row its control row (when the
    row was timed by a race whose candidates include its peer), and a control that is off flags the table."""
    threads = torch.get_num_threads()
    with watching() as seen:
        shown, flagged = None, False
        for row in produced:
            latest = seen.take()  # the race this row came from, if one ran since the previous row
            row = dataclasses.replace(row, threads=threads)
            if heading(row, several) != shown:
                shown = heading(row, several)
                check = control_row(row, latest, repeats)
                flagged = check is not None and check.off
                if check is not None:
                    yield check
            yield dataclasses.replace(row, control_off=flagged) if flagged else row


def control_row(row: Row, latest: Race | None, repeats: int) -> Row | None:
    """`row.peer`'s call raced against itself, as many rounds as the row had; None where that call is not known
    (no race ran for the row: peak memory, or a row made of other rows' rounds)."""
    name = None if latest is None or row.unit != "ms" else candidate_of(latest, row.peer_runs)
    if name is None:
        return None
    runs = control(latest, name, len(row.peer_runs) or repeats)
    return Row(
        family=row.family,
        case=row.case,
        mode=row.mode,
        ours=row.peer + AGAIN,
        ours_value=median_ms(runs[name + AGAIN]),
        peer=row.peer,
        peer_value=median_ms(runs[name]),
        ours_runs=runs[name + AGAIN],
        peer_runs=runs[name],
        threads=row.threads,
        control=True,
    )


def progress(line: str) -> None:
    """Where the suite is, on stderr (the tables on stdout stay clean to redirect)."""
    print(line, file=sys.stderr, flush=True)
