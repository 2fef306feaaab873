"""The benchmark scripts run (a smoke run; speed itself is never asserted in tests)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_rnn_quick_prints_a_table():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_rnn.py"), "--quick", "--kinds", "RNN", "GRU"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| RNN") or line.startswith("| GRU")]
    assert len(rows) == 2 * 2 * 2 * 3  # kinds × quick shapes × (fwd, fwd+bwd) × candidates
    assert all(float(row.split("|")[-2]) > 0 for row in rows)


def test_bench_xlstm_cells_quick_prints_tables():
    pytest.importorskip("mlstm_kernels")
    pytest.importorskip("xlstm")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_xlstm_cells.py"), "--quick"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    assert out.count("| mLSTM ") == 2 * 2 * 4 and out.count("| sLSTM ") == 2 * 2
    assert "chunkwise peak MB" in out


def test_bench_xlstm_lm_quick_prints_tables():
    pytest.importorskip("xlstm")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_xlstm_lm.py"), "--quick"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| authors") or line.startswith("| lstmkit")]
    assert len(rows) == 2 and all(float(row.split("|")[-2].replace(",", "")) > 0 for row in rows)
    ratios = [float(line.rsplit(":", 1)[1]) for line in out.splitlines() if line.startswith("ratio")]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)
