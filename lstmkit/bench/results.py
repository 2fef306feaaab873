"""One benchmark row, and the tables and JSON made of the rows.

A row compares *ours* with a *peer* measured in the same race:

    ratio = peer / ours        above 1: ours is faster (or, for memory, smaller)
    target                     the ratio the benchmarks issue asks for (met when ratio ≥ target);
                               "at most 2.5× slower" is the target 1/2.5 = 0.4
    GEMM %                     ours' FLOP rate (`flops` / its median time) as a fraction of the
                               machine's float32 GEMM rate, measured by `machine.gemm_rates`
    IQR                        the spread of the per-round ratios peer_r / ours_r (the two ran side by side
                               in round r): their interquartile range, q1–q3; a ratio inside a wide IQR is noise

Times are medians in milliseconds; every round is kept in the JSON (`ours_runs`, `peer_runs`).

Each timed table starts with a control row: the table's first peer raced against itself (`timing.control`), so
it should read 1.00. When it reads outside 1 ± CONTROL_TOLERANCE (in ratio: below 1/(1 + tol) or above 1 + tol)
the machine was too noisy for that table: every row of it is flagged (`control_off`, ⚠ beside its ratio).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field

CONTROL_TOLERANCE = 0.10
"""A control ratio outside [1/1.1, 1.1] flags its table."""
FLAG = "⚠"


@dataclass
class Row:
    family: str
    case: str
    """The sizes, e.g. "T256 B32 I128 H256"."""
    mode: str
    """fwd, fwd+bwd, train step, per token, peak."""
    ours: str
    ours_value: float
    peer: str
    peer_value: float
    unit: str = "ms"
    target: float | None = None
    flops: float | None = None
    """FLOPs of one call of ours (matrix products only; see bench/flops.py)."""
    ours_runs: list[float] = field(default_factory=list)
    peer_runs: list[float] = field(default_factory=list)
    threads: int | None = None
    """torch threads during the measurement (set by the suite; None: not recorded)."""
    control: bool = False
    """This row is its table's control: the peer raced against itself, ideally 1.00."""
    control_off: bool = False
    """Its table's control read outside 1 ± CONTROL_TOLERANCE: this ratio may be the machine's noise."""

    @property
    def ratio(self) -> float:
        return self.peer_value / self.ours_value if self.ours_value > 0 else math.nan

    @property
    def ratio_iqr(self) -> tuple[float, float] | None:
        """(q1, q3) of the per-round ratios peer_r / ours_r; None without paired rounds."""
        pairs = [p / o for o, p in zip(self.ours_runs, self.peer_runs, strict=False) if o > 0]
        if len(pairs) != len(self.ours_runs) or len(pairs) != len(self.peer_runs) or not pairs:
            return None
        if len(pairs) == 1:
            return pairs[0], pairs[0]
        q1, _, q3 = statistics.quantiles(pairs, n=4, method="inclusive")
        return q1, q3

    @property
    def off(self) -> bool:
        """For a control row: whether it reads outside 1 ± CONTROL_TOLERANCE."""
        return not 1 / (1 + CONTROL_TOLERANCE) <= self.ratio <= 1 + CONTROL_TOLERANCE

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target

    def gemm_fraction(self, gflops: float) -> float | None:
        """Achieved FLOP rate / `gflops` (GFLOP/s); None without a FLOP count or a time."""
        if self.flops is None or self.unit != "ms" or not gflops:
            return None
        return self.flops / (self.ours_value * 1e-3) / (gflops * 1e9)

    def as_dict(self, gemm: dict[str, float]) -> dict:
        d = asdict(self)
        d.update(ratio=self.ratio, met=self.met, ratio_iqr=self.ratio_iqr)
        d["gemm_fraction"] = {name: self.gemm_fraction(rate) for name, rate in gemm.items()}
        return d


HEADER = "| case | mode | ours | {u} | peer | {u} | ratio | IQR | target | GEMM % (mm / oneDNN) |"
RULE = "|---|---|---|---:|---|---:|---:|---:|---:|---:|"


def table_header(unit: str) -> str:
    return HEADER.format(u=unit) + "\n" + RULE


def table_row(row: Row, gemm: dict[str, float]) -> str:
    """One Markdown line; the target cell says whether it was met."""
    target = ""
    if row.target is not None:
        target = f"≥ {row.target:.2f} " + ("met" if row.met else "**missed**")
    fractions = [row.gemm_fraction(gemm.get(k, 0.0)) for k in ("torch.mm", "oneDNN")]
    gemm_cell = " / ".join(f"{100 * f:.0f}" for f in fractions if f is not None)
    flag = f" {FLAG}" if row.control_off or (row.control and row.off) else ""
    iqr = row.ratio_iqr
    spread = "" if iqr is None else f"{iqr[0]:.2f}–{iqr[1]:.2f}"
    return (
        f"| {row.case} | {row.mode} | {row.ours} | {_num(row.ours_value)} | {row.peer} | {_num(row.peer_value)} "
        f"| {row.ratio:.2f}{flag} | {spread} | {target} | {gemm_cell} |"
    )


def heading(row: Row, several_thread_counts: bool) -> str:
    """A table's title: the family, and the thread count when the suite measured at more than one."""
    if not several_thread_counts or row.threads is None:
        return row.family
    return f"{row.family} · {row.threads} thread" + ("s" if row.threads != 1 else "")


def control_note(control: Row) -> str:
    """The line under a table whose control is off."""
    return (
        f"{FLAG} control {control.peer} vs itself read {control.ratio:.2f}, outside 1 ± {CONTROL_TOLERANCE:.0%}: "
        "the machine was noisy; this table's ratios are flagged and may be noise"
    )


def _num(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


GemmRates = dict[int | None, dict[str, float]]
"""The GEMM rates (GFLOP/s by name, see machine.gemm_rates) at each thread count the suite measured at."""


def markdown(header: list[str], families: dict[str, list[Row]], skipped: list[str], gemm: GemmRates) -> str:
    """The whole report: machine lines, then one table per family (and thread count), then what was skipped."""
    lines = [*header, ""]
    for family, rows in families.items():
        if not rows:
            continue
        unit = rows[0].unit
        lines += [f"### {family}", "", table_header(unit), *(table_row(r, gemm[r.threads]) for r in rows), ""]
        lines += [control_note(r) + "\n" for r in rows if r.control and r.off]
    lines += [f"* skipped: {line}" for line in skipped]
    return "\n".join(lines).rstrip() + "\n"


def to_json(machine: dict, settings: dict, rows: list[Row], skipped: list[str], gemm: GemmRates) -> str:
    """`gemm_gflops`: the rates at the first thread count; with several, `gemm_gflops_by_threads` has each."""
    first = next(iter(gemm.values()))
    several = {"gemm_gflops_by_threads": {str(t): rates for t, rates in gemm.items()}} if len(gemm) > 1 else {}
    return (
        json.dumps(
            {
                "machine": machine,
                "settings": settings,
                "gemm_gflops": first,
                **several,
                "skipped": skipped,
                "rows": [r.as_dict(gemm[r.threads]) for r in rows],
            },
            indent=1,
            allow_nan=True,
        )
        + "\n"
    )
