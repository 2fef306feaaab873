"""One benchmark row, and the tables and JSON made of the rows.

A row compares *ours* with a *peer* measured in the same race:

    ratio = peer / ours        above 1: ours is faster (or, for memory, smaller)
    target                     the ratio the benchmarks issue asks for (met when ratio ≥ target);
                               "at most 2.5× slower" is the target 1/2.5 = 0.4
    GEMM %                     ours' FLOP rate (`flops` / its median time) as a fraction of the
                               machine's float32 GEMM rate, measured by `machine.gemm_rates`

Times are medians in milliseconds; every round is kept in the JSON (`ours_runs`, `peer_runs`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field


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

    @property
    def ratio(self) -> float:
        return self.peer_value / self.ours_value if self.ours_value > 0 else math.nan

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
        d.update(ratio=self.ratio, met=self.met)
        d["gemm_fraction"] = {name: self.gemm_fraction(rate) for name, rate in gemm.items()}
        return d


HEADER = "| case | mode | ours | {u} | peer | {u} | ratio | target | GEMM % (mm / oneDNN) |"
RULE = "|---|---|---|---:|---|---:|---:|---:|---:|"


def table_header(unit: str) -> str:
    return HEADER.format(u=unit) + "\n" + RULE


def table_row(row: Row, gemm: dict[str, float]) -> str:
    """One Markdown line; the target cell says whether it was met."""
    target = ""
    if row.target is not None:
        target = f"≥ {row.target:.2f} " + ("met" if row.met else "**missed**")
    fractions = [row.gemm_fraction(gemm.get(k, 0.0)) for k in ("torch.mm", "oneDNN")]
    gemm_cell = " / ".join(f"{100 * f:.0f}" for f in fractions if f is not None)
    return (
        f"| {row.case} | {row.mode} | {row.ours} | {_num(row.ours_value)} | {row.peer} | {_num(row.peer_value)} "
        f"| {row.ratio:.2f} | {target} | {gemm_cell} |"
    )


def _num(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def markdown(header: list[str], families: dict[str, list[Row]], skipped: list[str], gemm: dict[str, float]) -> str:
    """The whole report: machine lines, then one table per family, then what was skipped."""
    lines = [*header, ""]
    for family, rows in families.items():
        if not rows:
            continue
        unit = rows[0].unit
        lines += [f"### {family}", "", table_header(unit), *(table_row(r, gemm) for r in rows), ""]
    lines += [f"* skipped: {line}" for line in skipped]
    return "\n".join(lines).rstrip() + "\n"


def to_json(machine: dict, settings: dict, rows: list[Row], skipped: list[str], gemm: dict[str, float]) -> str:
    return (
        json.dumps(
            {
                "machine": machine,
                "settings": settings,
                "gemm_gflops": gemm,
                "skipped": skipped,
                "rows": [r.as_dict(gemm) for r in rows],
            },
            indent=1,
            allow_nan=True,
        )
        + "\n"
    )
