"""A run folder has one writer and is confined to itself; resume means resume.

Locks: a second `lstmkit train` into a folder whose lock another process holds is refused with one line, and
works once that process is killed (the OS releases a dead process's flock). Confinement: a planted `latest`
(absolute, '..', a symlink, huge, binary) or a symlinked step folder is corrupt, never followed, and its content
is never echoed; a symlinked metrics.jsonl is refused, its target untouched. Resume: a checkpoint folder given as
--run-dir says how to resume its run; a folder with a log but no checkpoint is not appended to; a finished run
resumed writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from lstmkit.checkpoint import CheckpointError, RunLock
from lstmkit.experiment import fresh_run_dir, load_run
from lstmkit.models import ModelConfig, SequenceModel
from lstmkit.tasks.synthetic import SYNTHETIC
from lstmkit.train import TrainConfig, train
from tests.helpers import ROOT, TINY_EVERY_2, lstmkit, one_line_error


def train_tiny(capsys, run_dir: Path, steps: int = 4, *extra) -> None:
    code, _, err = lstmkit(capsys, "train", *TINY_EVERY_2, "--steps", steps, "--run-dir", run_dir, *extra)
    assert code == 0, err


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (symlinks by target) -> a hash of its bytes."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(folder))] = "-> " + os.readlink(path)
        elif path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# ---- one writer -----------------------------------------------------------------------------------------------

HOLDER = """
import sys, time
from lstmkit.checkpoint import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_writer_is_refused_until_the_first_dies(tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = lstmkit(capsys, "train", *TINY_EVERY_2, "--steps", 2, "--run-dir", run)
        one_line_error(
            code, err, f"run folder {run} is in use by another lstmkit train (pid {holder.pid})", "--run-dir"
        )
        task = SYNTHETIC["adding"](length=8)
        with pytest.raises(ValueError, match="is in use by another lstmkit train"):
            train(
                SequenceModel(ModelConfig("rnn", hidden_size=4), task.spec),
                task,
                TrainConfig(steps=1),
                run,
                progress=False,
            )
        assert not (run / "metrics.jsonl").exists() and not (run / "latest").exists()
    finally:
        holder.kill()  # SIGKILL: the lock goes with the process
        holder.wait()
    train_tiny(capsys, run, 2)
    assert load_run(run).meta["step"] == 2


def test_the_lock_is_held_while_training_and_released_after(tmp_path):
    task = SYNTHETIC["adding"](length=8)
    seen = []

    class Probe:
        spec = task.spec

        def batch(self, batch_size, generator, split="train"):
            if split == "train" and not seen:  # during training: another process cannot take the lock
                code = (
                    "import sys; from lstmkit.checkpoint import RunLock\n"
                    "try:\n    RunLock(sys.argv[1]).__enter__()\nexcept ValueError as e:\n    print(e)"
                )
                done = subprocess.run(
                    [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT
                )
                seen.append(done.stdout)
            return task.batch(batch_size, generator, split)

    train(
        SequenceModel(ModelConfig("rnn", hidden_size=4), task.spec),
        Probe(),
        TrainConfig(steps=2, eval_batches=1),
        tmp_path,
        progress=False,
    )
    assert "is in use by another lstmkit train" in seen[0]
    with RunLock(tmp_path):  # released when train returned
        pass


def test_the_default_run_folder_is_claimed_atomically(tmp_path):
    """Two starts that choose runs/TASK-MODEL at the same moment get two folders."""
    base = tmp_path / "runs" / "adding-lstm"
    assert fresh_run_dir(base) == base
    assert fresh_run_dir(base) == base.with_name("adding-lstm-2"), "a claimed (still empty) folder is taken"
    found: list[Path] = []
    threads = [threading.Thread(target=lambda: found.append(fresh_run_dir(base))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 8 and base not in found


def test_a_default_run_folder_that_cannot_be_made_is_one_error(tmp_path):
    (tmp_path / "runs").write_text("a file where the folder would go")
    with pytest.raises(ValueError, match=r"cannot write .*runs/adding-lstm"):
        fresh_run_dir(tmp_path / "runs" / "adding-lstm")


# ---- confinement ----------------------------------------------------------------------------------------------


def plant_latest(run: Path, text: bytes) -> None:
    (run / "latest").write_bytes(text)


def plant_link(run: Path, target: str) -> None:
    (run / "latest").unlink()
    (run / "latest").symlink_to(target)


@pytest.mark.parametrize(
    ("plant", "needle"),
    [
        (lambda run, other: plant_latest(run, f"{other}/step-00000004\n".encode()), "expected a name step-N"),
        (lambda run, other: plant_latest(run, b"../other/step-00000004\n"), "expected a name step-N"),
        (lambda run, other: plant_latest(run, b"step-00000004/../../other/step-00000004"), "expected a name step-N"),
        (lambda run, other: plant_link(run, "/etc/passwd"), "is a symlink"),
        (lambda run, other: plant_link(run, str(other / "latest")), "is a symlink"),
        (lambda run, other: plant_latest(run, b""), "holds ''"),
        (lambda run, other: plant_latest(run, b"\xff\xfe\x00step"), "is not text"),
        (lambda run, other: plant_latest(run, b"step-1" * 100_000), "bytes, expected at most 256"),
        (lambda run, other: plant_latest(run, b"step-00000099\n"), "which does not exist"),
        (
            lambda run, other: (
                shutil.rmtree(run / "step-00000004"),
                (run / "step-00000004").symlink_to(other / "step-00000004"),
            ),
            "which is not a folder",
        ),
    ],
    ids=[
        "absolute",
        "up",
        "dotdot-inside",
        "link-passwd",
        "link-other",
        "empty",
        "binary",
        "huge",
        "missing",
        "step-symlink",
    ],
)
def test_a_planted_latest_is_corrupt_and_never_followed(plant, needle, tmp_path, capsys):
    run, other = tmp_path / "run", tmp_path / "other"
    train_tiny(capsys, run)
    train_tiny(capsys, other, 4, "--model", "gru")
    plant(run, other)
    before = digest(tmp_path)
    for argv in (["eval", run], ["train", "--resume", "--run-dir", run, "--quiet"]):
        code, _, err = lstmkit(capsys, *argv)
        line = one_line_error(code, err, "latest", needle)
        assert "root:" not in line and len(line) < 300, line
    with pytest.raises(CheckpointError, match="latest"):
        load_run(run)
    assert digest(tmp_path) == before, "a refused command changed a file"


def test_a_symlinked_lock_file_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "victim").write_text("mine")
    (run / ".lock").symlink_to(tmp_path / "victim")
    with pytest.raises(ValueError, match=r"cannot lock run folder .*\.lock cannot be opened"):
        RunLock(run).__enter__()
    assert (tmp_path / "victim").read_text() == "mine"


def test_a_symlinked_log_is_never_appended_to(tmp_path, capsys):
    run = tmp_path / "run"
    train_tiny(capsys, run, 2)
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(victim)
    code, _, err = lstmkit(capsys, "train", "--resume", "--run-dir", run, "--steps", 4, "--quiet")
    assert code == 2 and "metrics.jsonl" in err and "symlink" in err, err
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "metrics.jsonl").symlink_to(victim)
    code, _, err = lstmkit(capsys, "train", *TINY_EVERY_2, "--steps", 2, "--run-dir", fresh)
    one_line_error(code, err, "metrics.jsonl", "symlink")
    assert victim.read_text() == "the user's file\n"


# ---- resume means resume --------------------------------------------------------------------------------------


def test_a_checkpoint_folder_as_run_dir_says_how_to_resume(tmp_path, capsys):
    run = tmp_path / "run"
    train_tiny(capsys, run)
    before = digest(tmp_path)
    code, _, err = lstmkit(capsys, "train", "--resume", "--run-dir", run / "step-00000002", "--quiet")
    one_line_error(code, err, f"{run / 'step-00000002'} is a checkpoint folder", f"resume its run with --run-dir {run}")
    code, _, err = lstmkit(capsys, "train", *TINY_EVERY_2, "--steps", 2, "--run-dir", run / "step-00000004")
    one_line_error(code, err, "is a checkpoint folder, not a run folder")
    assert digest(tmp_path) == before


def test_a_failed_runs_log_is_not_appended_to(tmp_path, capsys):
    """A log without a checkpoint (a run that stopped early): a fresh train refuses it; train(resume=True) starts
    over, and its log equals an uninterrupted run's."""
    run, straight = tmp_path / "run", tmp_path / "straight"
    train_tiny(capsys, straight, 4)
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 9.0, "lr": 0.1}\n')
    code, _, err = lstmkit(capsys, "train", *TINY_EVERY_2, "--steps", 4, "--run-dir", run)
    one_line_error(code, err, "holds a training log (metrics.jsonl) but no checkpoint")
    assert (run / "metrics.jsonl").read_text().count("\n") == 1
    task = SYNTHETIC["adding"](length=8)
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig("lstm", hidden_size=4), task.spec)
    config = TrainConfig(steps=4, batch_size=4, eval_every=2, eval_batches=1, checkpoint_every=2)
    torch.manual_seed(0)
    reference = SequenceModel(ModelConfig("lstm", hidden_size=4), task.spec)
    train(reference, task, config, tmp_path / "reference", progress=False)
    train(model, task, config, run, resume=True, progress=False)
    assert (run / "metrics.jsonl").read_text() == (tmp_path / "reference" / "metrics.jsonl").read_text()


def test_resuming_a_finished_run_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    train_tiny(capsys, run, 4)
    before = digest(run)
    inode = os.stat(run / "step-00000004").st_ino
    code, out, err = lstmkit(capsys, "train", "--resume", "--run-dir", run, "--quiet")
    assert code == 0 and "step 4: valid mse" in out, err
    assert digest(run) == before, "the log or the checkpoint was written again"
    assert os.stat(run / "step-00000004").st_ino == inode
