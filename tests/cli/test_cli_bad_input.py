"""Every verb against a table of bad inputs: exit status 2, one line on stderr naming the culprit, no traceback,
and nothing created or changed on disk.

Each row is (verb and arguments, words the one line must contain). A new verb is covered by adding rows. In the
arguments, {tmp} is the test's working folder (also the current directory), {run} a tiny trained run (an LSTM on
the adding problem), {bard} a tiny character model, {file} an existing file, {dir} an existing empty folder and
{planted-...} a run folder damaged by one of the PLANTS below. The whole working folder is compared before and after
the command: a refused command leaves every file, folder and byte where it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from lstmkit.cli import main
from tests.helpers import CACHE, TINY

BIG = str(10**8)

ROWS = {
    "walkthrough": [
        (["--spec", "{tmp}/nope.json"], ["nope.json"]),
        (["--spec", "{file}"], ["afile.txt"]),
        (["--spec", "{dir}"], ["adir"]),
        (["-o", ""], ["cannot write ''"]),
        (["-o", "{dir}"], ["cannot write", "adir", "folder"]),
        (["-o", "{tmp}/no/such/page.txt"], ["cannot write", "does not exist"]),
        (["-o", "/proc/lstmkit.txt"], ["cannot write /proc/lstmkit.txt"]),
        (["--format", "html", "-o", "{dir}"], ["cannot write", "adir"]),
        (["--cell", "lstn"], ["--cell", "lstn"]),
    ],
    "gradients": [
        (["--length", "0"], ["length"]),
        (["--seed", "-1"], ["seed"]),
        (["--length", "-3"], ["length"]),
        (["--length", BIG], ["length"]),
        (["--hidden-size", "0"], ["hidden"]),
        (["--hidden-size", BIG], ["hidden"]),
        (["--input-size", "0"], ["input"]),
        (["--forget-bias", "nan"], ["forget bias", "nan"]),
        (["--state-size", "0"], ["state_size"]),
        (["--state-size", BIG], ["state_size"]),
        (["--format", "png"], ["-o"]),
        (["--format", "png", "-o", "{dir}"], ["cannot write", "adir"]),
        (["-o", "{tmp}/no/such/g.txt"], ["cannot write", "does not exist"]),
    ],
    "exercise": [
        (["--steps", "0"], ["steps"]),
        (["--steps", BIG], ["steps"]),
        (["--hidden-size", "0"], ["hidden"]),
        (["--input-size", "99"], ["input"]),
        (["--cell", "ssm", "--state-size", "0"], ["state"]),
        (["--cell", "ssm", "--hidden-size", "2"], ["--hidden-size", "--state-size"]),
        (["--cell", "mamba", "--discretization", "zoh"], ["--discretization"]),
        (["--cell", "ssm", "--discretization", "euler"], ["--discretization", "euler"]),
        (["-o", "{dir}"], ["adir", "folder"]),
        (["-o", "{tmp}/ex.json"], ["ex.json"]),
        (["-o", "{tmp}/no/such/ex.md"], ["cannot write", "does not exist"]),
        (["-o", "{tmp}/ex.md", "--answers"], ["--answers"]),
        (["-o", "{tmp}/mine.md"], ["mine.json"], "mine.json"),
    ],
    "train": [
        (["--steps", "0"], ["steps"]),
        (["--model", "mamba", "--state-size", "0"], ["state_size"]),
        (["--model", "mamba2", "--num-heads", "3"], ["num_heads 3", "mamba2"]),
        (["--lr", "-1"], ["lr"]),
        (["--lr", "nan"], ["lr"]),
        (["--warmup", "-1"], ["warmup"]),
        (["--min-lr-ratio", "2"], ["min_lr_ratio"]),
        (["--clip", "0"], ["clip"]),
        (["--seed", str(10**23)], ["seed"]),
        (["--seed", "-1"], ["seed"]),
        (["--hidden-size", "0"], ["hidden_size"]),
        (["--hidden-size", "200000"], ["hidden_size"]),
        (["--batch-size", BIG], ["batch_size"]),
        (["--num-layers", "100000"], ["num_layers"]),
        (["--forget-bias", "nan"], ["forget_bias"]),
        (["--task", "addition"], ["addition"]),
        (["--task-arg", "length=abc"], ["length"]),
        (["--task-arg", "length=8.5"], ["length"]),
        (["--task-arg", f"length={10**9}"], ["length"]),
        (["--task", "shakespeare", "--task-arg", "seq_len=abc", "--cache-dir", "{tmp}/cache"], ["seq_len"]),
        (["--task", "sentiment", "--task-arg", "max_len=8.5", "--cache-dir", "{tmp}/cache"], ["max_len"]),
        (["--task", "timeseries", "--task-arg", "horizon=1.5", "--cache-dir", "{tmp}/cache"], ["horizon"]),
        (["--model", "gpt"], ["gpt"]),
        (["--run-dir", "{file}"], ["afile.txt"]),
        (["--resume"], ["--run-dir"]),
        (["--resume", "--run-dir", "{tmp}/nothing"], ["nothing"]),
        (["--resume", "--run-dir", "{run}/step-00000004"], ["step-00000004", "--run-dir"]),
        (["--resume", "--run-dir", "{planted-up}"], ["latest"]),
        (["--resume", "--run-dir", "{planted-abs}"], ["latest"]),
        (["--run-dir", "{run}"], ["--resume"]),
        (["--nproc", "0"], ["--nproc"]),
        (["--nproc", "2", "--batch-size", "3"], ["batch"]),
        (["--device", "tpu"], ["tpu"]),
        (["--cache-dir", "{file}", "--task", "vowels"], ["afile.txt"]),
    ],
    "eval": [
        (["{tmp}/nothing"], ["nothing"]),
        (["{file}"], ["afile.txt"]),
        (["{run}", "--batches", "0"], ["--batches"]),
        (["{run}", "--batches", str(10**9)], ["--batches"]),
        (["{run}", "--batch-size", "0"], ["batch"]),
        (["{planted-up}"], ["latest"]),
        (["{planted-abs}"], ["latest"]),
        (["{planted-link}"], ["latest"]),
        (["{planted-empty}"], ["latest"]),
        (["{planted-meta-list}"], ["meta.json"]),
        (["{planted-meta-step}"], ["meta.json", "step"]),
        (["{planted-meta-model}"], ["meta.json", "model"]),
    ],
    "compare": [
        (["--models", "lstm:ms"], ["lstm:ms"]),
        (["--models", "bogus"], ["bogus"]),
        (["--steps", "0"], ["steps"]),
        (["--out", "{file}"], ["afile.txt"]),
        (["--hidden-size", "200000"], ["hidden_size"]),
    ],
    "generate": [
        (["{tmp}/nothing"], ["nothing"]),
        (["{run}"], ["adding"]),
        (["{bard}", "--tokens", "-1"], ["tokens"]),
        (["{bard}", "--tokens", str(10**12)], ["tokens"]),
        (["{bard}", "--temperature", "-1"], ["temperature"]),
        (["{bard}", "--temperature", "nan"], ["temperature"]),
        (["{bard}", "--top-p", "0"], ["top_p"]),
        (["{bard}", "--top-p", "2"], ["top_p"]),
        (["{bard}", "--top-k", "0"], ["top_k"]),
        (["{bard}", "--prompt", ""], ["prompt"]),
        (["{bard}", "--prompt", "☃"], ["☃"]),
        (["{bard}", "--dtype", "bfloat16"], ["--dtype"]),
        (["{bard}", "--dtype", "float8"], ["--dtype"]),
        (["{planted-up}"], ["latest"]),
    ],
    "data": [
        (["show", "imdb"], ["imdb"]),
        (["fetch", "imdb"], ["imdb"]),
        (["show", "vowels", "--cache-dir", "{file}"], ["afile.txt"]),
    ],
    "explain": [
        (["{tmp}/nothing"], ["nothing"]),
        (["{run}", "-o", "{file}"], ["afile.txt"]),
        (["{run}", "--layer", "99"], ["layer"]),
        (["{run}", "--steps", "0"], ["steps"]),
        (["{planted-abs}"], ["latest"]),
    ],
    "report": [
        (["{tmp}/nothing"], ["nothing"]),
        (["{run}", "-o", "{dir}"], ["adir"]),
        (["{run}", "-o", "{tmp}/no/such/r.html"], ["does not exist"]),
        (["{run}", "-o", ""], ["cannot write ''"]),
        (["{planted-link}"], ["latest"]),
    ],
    "bench": [
        (["--repeats", "0"], ["repeats"]),
        (["--threads", "0"], ["threads"]),
        (["--only", "lstm"], ["lstm"]),
        (["-o", "{file}", "--quick", "--only", "rnn"], ["afile.txt"]),
    ],
}


def _plant_latest(text: str):
    def plant(run: Path) -> None:
        (run / "latest").write_text(text)

    return plant


def _plant_symlinked_latest(run: Path) -> None:
    (run / "latest").unlink()
    (run / "latest").symlink_to("/etc/passwd")


def _plant_meta(edit):
    def plant(run: Path) -> None:
        import json

        path = run / (run / "latest").read_text().strip() / "meta.json"
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))

    return plant


PLANTS = {
    "up": _plant_latest("../other/step-00000008\n"),
    "abs": _plant_latest("/tmp\n"),
    "empty": _plant_latest(""),
    "link": _plant_symlinked_latest,
    "meta-list": _plant_meta(lambda meta: [meta]),
    "meta-step": _plant_meta(lambda meta: {**meta, "step": "eight"}),
    "meta-model": _plant_meta(lambda meta: {**meta, "model": {**meta["model"], "hidden_size": "wide"}}),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny adding run and a tiny character model, trained once for the module (copied into each test)."""
    root = tmp_path_factory.mktemp("trained")
    runs = {"run": root / "run", "bard": root / "bard"}
    task = {
        "run": ["--task", "adding", "--task-arg", "length=12"],
        "bard": ["--task", "shakespeare", "--task-arg", "seq_len=16", "--cache-dir", str(CACHE)],
    }
    for name, folder in runs.items():
        code = main(["train", *task[name], *TINY, "--steps", "8", "--checkpoint-every", "4", "--run-dir", str(folder)])
        assert code == 0
    return runs


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its kind, size, mode and content hash (symlinks by their target)."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                seen[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                seen[rel] = ("dir", path.stat().st_mode)
            else:
                stat = path.stat()
                seen[rel] = ("file", stat.st_size, stat.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return seen


def substitute(argv: list[str], places: dict[str, str]) -> list[str]:
    out = []
    for arg in argv:
        for key, value in places.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


CASES = [(verb, *row) for verb, rows in ROWS.items() for row in rows]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{' '.join(c[1])[:50]}" for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, trained, tmp_path, monkeypatch, capsys):
    verb, argv, needles, *existing = case
    monkeypatch.chdir(tmp_path)
    places = {"tmp": str(tmp_path), "file": str(tmp_path / "afile.txt"), "dir": str(tmp_path / "adir")}
    (tmp_path / "afile.txt").write_text("a file the user owns\n")
    (tmp_path / "adir").mkdir()
    for name in existing:  # files the user already has under names a verb would like to use
        (tmp_path / name).write_text("the user's own work\n")
    for name, folder in trained.items():
        shutil.copytree(folder, tmp_path / name)
        places[name] = str(tmp_path / name)
    for name, plant in PLANTS.items():
        if f"{{planted-{name}}}" in " ".join(argv):
            folder = tmp_path / f"planted-{name}"
            shutil.copytree(trained["run"], folder)
            plant(folder)
            places[f"planted-{name}"] = str(folder)
    before = snapshot(tmp_path)
    try:
        code = main([verb, *substitute(argv, places)])
    except SystemExit as stop:  # argparse's own refusals (an unknown choice) exit from inside parse_args
        code = stop.code
    _, err = capsys.readouterr()
    assert code == 2, f"expected exit status 2, got {code}; stderr: {err!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, f"expected one line on stderr, got {len(lines)}: {err[:2000]}"
    assert lines[0].startswith(f"lstmkit {verb}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert len(lines[0]) < 400, f"the line quotes too much: {lines[0]!r}"
    assert "root:" not in err and "weights_only=False" not in err, err
    after = snapshot(tmp_path)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a refused command changed {changed[:8]}"
