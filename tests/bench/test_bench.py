"""`lstmkit bench`: the quick suite produces every row with a finite ratio; the pieces behave.

Speed itself is never asserted (STYLE §7): these tests check that every row of every family is
measured, that each ratio is the peer's median over ours, that every timed table starts with its control
row (the peer raced against itself) and a control that is off flags its table, and that bad input gets one
line.
"""

import json
import math
import time

import pytest

from lstmkit.bench import (
    language_models,
    large_decode,
    mamba,
    mamba_models,
    memory,
    rnn_layers,
    suite,
    xlstm_cells,
    xlstm_vs_lstm,
)
from lstmkit.bench.peers import PeerMissing, need
from lstmkit.bench.results import CONTROL_TOLERANCE, FLAG, Row, markdown, table_row
from lstmkit.bench.timing import AGAIN, median_ms, race
from lstmkit.cli import main

pytest.importorskip("xlstm")
pytest.importorskip("mlstm_kernels")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", "--quick", "-o", str(out)]) == 0
    return out, json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


UNCONTROLLED = (memory.FAMILY, mamba_models.MEMORY)
"""Tables of peak memory: no race, no control row."""


SELF_CONTROLLED = (large_decode.DECODE, large_decode.PREFILL)
"""Tables whose family races a control per case in the same rounds (first in each case's rows), none from the suite."""
PER_TOKEN = (language_models.GENERATION, mamba_models.GENERATION, large_decode.FLOOR, *SELF_CONTROLLED)
"""Tables whose rows time many tokens' rounds, not `repeats`."""


def expected_rows() -> dict[str, int]:
    """How many rows each family's quick run makes, counted from the families' own size lists, and one control
    row per timed table (the large-decode family's own: one per size in each of its peer tables)."""
    counts = measured_rows()
    own = (*UNCONTROLLED, large_decode.FLOOR, *SELF_CONTROLLED)
    return {family: n + (family not in own) for family, n in counts.items()}


def measured_rows() -> dict[str, int]:
    modes = 2
    mlstm_cases = [*xlstm_cells.QUICK_LENGTHS, xlstm_cells.QUICK_LARGEST[2]]
    return {
        rnn_layers.FAMILY: len(rnn_layers.QUICK_SHAPES) * modes * (4 + 2 + 2),
        xlstm_cells.MLSTM: sum(modes * (3 if T <= xlstm_cells.PARALLEL_UP_TO else 2) for T in mlstm_cases),
        xlstm_cells.SLSTM: len(xlstm_cells.QUICK_SLSTM_SHAPES) * modes,
        language_models.TRAINING: 2,
        language_models.GENERATION: len(language_models.QUICK_CONTEXTS) + 1,
        memory.FAMILY: len(memory.QUICK_LENGTHS),
        **mamba_expected_rows(),
        large_decode.FLOOR: 1 + len(large_decode.QUICK_SIZES),  # the bandwidth, then a row per size
        large_decode.DECODE: 3 * len(large_decode.QUICK_SIZES),  # per size: the control, transformers, the authors
        large_decode.PREFILL: 5 * len(large_decode.QUICK_SIZES),  # and against each peer with its last logits only
        xlstm_vs_lstm.FAMILY: len(xlstm_vs_lstm.QUICK_CASES),
    }


def mamba_expected_rows() -> dict[str, int]:
    """The mamba family's quick rows: per T and mode the control and mambapy rows, the parallel form's and the
    sequential loop's where they run; SSD per T and mode; 2 training peers; generation as the xLSTM's; memory:
    one peer row and the linearity row."""
    scan = sum(
        2 + (T <= mamba.PARALLEL_UP_TO) + (T <= mamba.SEQUENTIAL_UP_TO and mode == "fwd")
        for T in mamba.QUICK_LENGTHS
        for mode in ("fwd", "fwd+bwd")
    )
    return {
        mamba.SCAN: scan,
        mamba.SSD: len(mamba.QUICK_SSD_LENGTHS) * 2,
        mamba_models.TRAINING: 2,
        mamba_models.GENERATION: len(mamba_models.QUICK_CONTEXTS) + 1,
        mamba_models.MEMORY: 2,
    }


def test_quick_suite_makes_every_row_with_a_finite_ratio(quick):
    _, data, md = quick
    rows = data["rows"]
    counts = {}
    for row in rows:
        counts[row["family"]] = counts.get(row["family"], 0) + 1
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
        assert row["ours_value"] > 0 and row["peer_value"] > 0, row
        assert row["ratio"] == pytest.approx(row["peer_value"] / row["ours_value"])
        if row["unit"] == "ms":
            assert len(row["ours_runs"]) == data["settings"]["repeats"] or row["family"] in PER_TOKEN
    assert counts == expected_rows()
    assert all(rate > 0 for rate in data["gemm_gflops"].values())
    for family in expected_rows():
        assert f"### {family}" in md
    if data["machine"]["gpu"] is None:
        assert any(line.startswith("GPU rows: no CUDA device") for line in data["skipped"])


def test_targets_and_gemm_fractions_are_where_the_issue_puts_them(quick):
    _, data, _ = quick
    measured = [r for r in data["rows"] if not r["control"]]
    targets = {(r["family"], r["ours"].split(" (")[0], r["peer"], r["mode"]): r["target"] for r in measured}
    assert targets[(rnn_layers.FAMILY, "lstmkit LSTM", "torch.nn.LSTM", "fwd")] == 0.95
    assert targets[(rnn_layers.FAMILY, "lstmkit LSTM.trace", "torch.nn.LSTM", "fwd")] == pytest.approx(0.4)
    assert targets[(xlstm_cells.SLSTM, "lstmkit slstm", "authors sLSTMCell vanilla", "fwd+bwd")] == 5.0
    chunk_rows = [r for r in measured if r["family"] == xlstm_cells.MLSTM and "chunkwise" in r["ours"]]
    assert chunk_rows and all(r["gemm_fraction"]["torch.mm"] > 0 for r in chunk_rows)
    lstm = [r for r in measured if r["ours"] == "lstmkit LSTM"]
    assert all(r["gemm_fraction"]["oneDNN"] > 0 for r in lstm)


def test_mamba_rows_have_their_control_targets_and_gemm_fractions(quick):
    _, data, _ = quick
    rows = [r for r in data["rows"] if r["family"] in mamba_expected_rows() and not r["control"]]
    control = [r for r in rows if r["peer"] == mamba.CONTROL]
    assert control and all(r["ours"] == mamba.AUTO for r in control)
    targets = {(r["family"], r["ours"], r["peer"], r["mode"], r["case"]): r["target"] for r in rows}
    for T in mamba.QUICK_LENGTHS:
        case = f"B2 T{T} D256 N16"
        assert targets[(mamba.SCAN, mamba.AUTO, mamba.PSCAN, "fwd+bwd", case)] == (2.0 if T >= 1024 else None)
    assert {r["target"] for r in rows if r["family"] == mamba_models.TRAINING} == {2.0}
    assert all(r["gemm_fraction"]["torch.mm"] > 0 for r in rows if r["family"] in (mamba.SSD, mamba_models.TRAINING))
    flat = [r for r in rows if r["case"].startswith(("flatness", "linearity"))]
    assert [r["target"] for r in flat] == [pytest.approx(1 / 1.2), 1.0]


def test_every_timed_table_starts_with_its_control(quick):
    _, data, md = quick
    assert data["settings"]["threads"] == [1] and {r["threads"] for r in data["rows"]} == {1}  # --quick: 1 thread
    tables: dict[str, list[dict]] = {}
    for row in data["rows"]:
        tables.setdefault(row["family"], []).append(row)
    for family, rows in tables.items():
        controls = [r for r in rows if r["control"]]
        if family in (*UNCONTROLLED, large_decode.FLOOR):
            assert controls == []
            continue
        if family in SELF_CONTROLLED:  # each case: its control, then ours against each peer, flagged by it
            starts = [i for i, r in enumerate(rows) if r["control"]]
            assert starts and starts[0] == 0
            for control, *measured in (rows[a:b] for a, b in zip(starts, [*starts[1:], len(rows)], strict=True)):
                assert control["control"] and control["case"] == measured[0]["case"] + ", control"
                off = not 1 / (1 + CONTROL_TOLERANCE) <= control["ratio"] <= 1 + CONTROL_TOLERANCE
                assert all(r["control_off"] == off for r in measured)
            continue
        (control,) = controls
        first = next(r for r in rows if not r["control"])
        assert rows[0] is control and control["peer"] == first["peer"] and control["ours"] == first["peer"] + AGAIN
        assert (control["case"], control["mode"]) == (first["case"], first["mode"])
        assert len(control["peer_runs"]) == len(first["peer_runs"]) and math.isfinite(control["ratio"])
        off = not 1 / (1 + CONTROL_TOLERANCE) <= control["ratio"] <= 1 + CONTROL_TOLERANCE
        assert all(r["control_off"] == off for r in rows if not r["control"])
        q1, q3 = control["ratio_iqr"]
        assert 0 < q1 <= q3
    assert "| ratio | IQR | target |" in md


def trivial_family(peer_seconds: float):
    """A family of one row whose candidates sleep: ours 1 ms, the peer `peer_seconds`."""

    def rows(quick: bool, repeats: int):
        runs = race({"fake ours": lambda: time.sleep(0.001), "fake peer": lambda: time.sleep(peer_seconds)}, repeats)
        yield Row(
            "fake",
            "case",
            "fwd",
            "fake ours",
            median_ms(runs["fake ours"]),
            "fake peer (label)",  # a label that is not the race's name: the control finds it by its rounds
            median_ms(runs["fake peer"]),
            ours_runs=runs["fake ours"],
            peer_runs=runs["fake peer"],
        )

    return rows


def test_the_control_of_a_trivial_kernel_reads_close_to_1(tmp_path, monkeypatch):
    monkeypatch.setitem(suite.FAMILIES, "slstm", trivial_family(0.01))
    data = suite.run(["slstm"], quick=True, repeats=5, out_dir=tmp_path, say=lambda line: None, threads=(1,))
    control, row = data["rows"]
    assert control["control"] and not row["control"]
    assert control["ours"] == "fake peer (label)" + AGAIN and len(control["peer_runs"]) == 5
    assert 0.75 < control["ratio"] < 1.33, control  # the same 10 ms sleep twice: only wake-up jitter differs
    assert control["threads"] == row["threads"] == 1


def test_a_control_that_is_off_flags_its_table(tmp_path, monkeypatch):
    def unequal(latest, name, repeats):  # a deliberately unequal fake: the "same" call twice as slow once
        return {name: [0.002] * repeats, name + AGAIN: [0.001] * repeats}

    monkeypatch.setitem(suite.FAMILIES, "slstm", trivial_family(0.001))
    monkeypatch.setattr(suite, "control", unequal)
    lines = []
    data = suite.run(["slstm"], quick=True, repeats=2, out_dir=tmp_path, say=lines.append, threads=(1,))
    control, row = data["rows"]
    assert control["ratio"] == pytest.approx(2.0) and control["ratio_iqr"] == [2.0, 2.0]
    assert row["control_off"] and not control["control_off"]
    md = (tmp_path / "bench.md").read_text()
    assert f"| 2.00 {FLAG} |" in md and f"| {FLAG} |" not in md
    assert "control fake peer (label) vs itself read 2.00, outside 1 ± 10%" in md
    assert any("vs itself read 2.00" in line for line in lines)
    assert sum(f" {FLAG} |" in line for line in md.splitlines()) == 2  # the control and the row it flags


def test_two_thread_counts_make_two_tables(tmp_path, monkeypatch):
    monkeypatch.setitem(suite.FAMILIES, "slstm", trivial_family(0.001))
    data = suite.run(["slstm"], quick=True, repeats=1, out_dir=tmp_path, say=lambda line: None, threads=(1, 2))
    assert [(r["threads"], r["control"]) for r in data["rows"]] == [(1, True), (1, False), (2, True), (2, False)]
    assert set(data["gemm_gflops_by_threads"]) == {"1", "2"} and data["settings"]["threads"] == [1, 2]
    md = (tmp_path / "bench.md").read_text()
    assert "### fake · 1 thread\n" in md and "### fake · 2 threads\n" in md and "measured at 1 and 2 threads" in md


def test_race_interleaves_and_rotates():
    order = []
    race({"a": lambda: order.append("a"), "b": lambda: order.append("b"), "c": lambda: order.append("c")}, 3)
    assert order == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]  # warm-up, then rotations


def test_row_ratio_target_and_table():
    row = Row("f", "case", "fwd", "ours", 2.0, "peer", 3.0, target=1.3, flops=2e9)
    assert row.ratio == 1.5 and row.met
    assert row.gemm_fraction(100.0) == pytest.approx(2e9 / 2e-3 / 100e9)
    line = table_row(row, {"torch.mm": 100.0, "oneDNN": 200.0})
    assert "| 1.50 |  | ≥ 1.30 met | 1000 / 500 |" in line
    assert "**missed**" in table_row(Row("f", "c", "fwd", "o", 2.0, "p", 1.0, target=0.95), {})


def test_the_spread_is_the_iqr_of_the_per_round_ratios():
    row = Row("f", "c", "fwd", "o", 1.0, "p", 1.0, ours_runs=[1.0, 1.0, 1.0, 1.0, 1.0], peer_runs=[1, 2, 3, 4, 5])
    assert row.ratio_iqr == (2.0, 4.0)
    assert "| 1.00 | 2.00–4.00 |" in table_row(row, {})
    assert Row("f", "c", "fwd", "o", 1.0, "p", 1.0, ours_runs=[1.0], peer_runs=[1.0, 2.0]).ratio_iqr is None
    flagged = Row("f", "c", "fwd", "o", 1.0, "p", 3.0, control_off=True)
    assert f"| 3.00 {FLAG} |" in markdown([], {"f": [flagged]}, [], {None: {}})


def test_missing_peer_is_one_skipped_line(tmp_path, monkeypatch):
    with pytest.raises(PeerMissing, match=r"no-such-peer is not installed.*lstmkit\[peers\]"):
        need("no_such_peer.torch")

    def missing(*args, **kwargs):
        raise PeerMissing("xlstm is not installed (test)")
        yield

    monkeypatch.setitem(suite.FAMILIES, "slstm", missing)
    data = suite.run(["slstm"], quick=True, repeats=1, out_dir=tmp_path, say=lambda line: None)
    assert data["rows"] == [] and data["skipped"] == ["slstm: xlstm is not installed (test)"]
    assert "skipped: slstm: xlstm is not installed" in (tmp_path / "bench.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--repeats", "0"], "--repeats is 0, expected at least 1"), (["--threads", "0"], "--threads is 0")],
)
def test_bad_numbers_are_one_line(argv, message, capsys):
    assert main(["bench", "--quick", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_family_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--only", "nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="unknown benchmark family 'nope', expected some of rnn, mlstm"):
        suite.run(["nope"], quick=True, repeats=1, out_dir=None)


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["bench", "--quick", "--only", "slstm", "-o", str(target)]) == 2
    assert "it is a file, expected a folder" in capsys.readouterr().err
