"""The checkpoint writer's crash windows: a death at each of its filesystem steps leaves `latest` naming a complete
checkpoint that `load_run` reads; rotation orders steps by number; hidden leftovers are cleaned; a finished run
resumed writes nothing.

A death is simulated two ways. In-process: every call that changes the run folder (rename, replace, unlink, rmdir,
rmtree, the atomic swap) is counted, and from the Nth on each one raises, as if the process were gone (its
cleanup handlers cannot change anything either); N runs over every point of every transition. For real: a forked
child kills itself with SIGKILL at the Nth such call.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from lstmkit import checkpoint
from lstmkit.checkpoint import read_state, save_checkpoint, step_folders
from lstmkit.experiment import load_run
from lstmkit.models import ModelConfig, SequenceModel
from lstmkit.tasks.base import TaskSpec
from lstmkit.train import TrainConfig

SPEC = TaskSpec("adding", "regress", num_outputs=1, input_size=2)
CONFIG = ModelConfig("rnn", hidden_size=4)


class Killed(BaseException):
    """The simulated death (a BaseException, like KeyboardInterrupt: nothing catches it by accident)."""


def model_with(value: float) -> torch.nn.Module:
    model = SequenceModel(CONFIG, SPEC)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def save(run_dir: Path, step: int, keep: int = 2) -> Path:
    """A checkpoint whose weights are all `step` (so which one was loaded is visible)."""
    model = model_with(float(step))
    optimizer = torch.optim.AdamW(model.parameters())
    meta = {
        "task": {"name": "adding", "args": {}},
        "spec": asdict(SPEC),
        "model": CONFIG.to_dict(),
        "train": asdict(TrainConfig()),
        "metrics": {},
    }
    rng = {"data": torch.Generator().get_state(), "torch": torch.get_rng_state()}
    return save_checkpoint(run_dir, step, model, optimizer, meta, rng, keep=keep)


def loaded_step(run_dir: Path) -> int:
    """The step of the checkpoint `latest` names, after checking it is complete and its weights are its own."""
    run = load_run(run_dir)
    read_state(run.path)
    step = run.meta["step"]
    assert all(torch.all(p == float(step)) for p in run.model.parameters()), "weights of another checkpoint"
    return step


SCENARIOS = {
    # name: (steps saved before, the step saved under test, keep, exchange available)
    "first": ([], 5, 2, True),
    "second": ([5], 10, 2, True),
    "rotation": ([5, 10], 15, 2, True),
    "rewrite latest (swap)": ([5, 10], 10, 2, True),
    "rewrite latest (no swap)": ([5, 10], 10, 2, False),
    "rewrite only checkpoint (swap)": ([10], 10, 1, True),
    "rewrite older (swap)": ([5, 10], 5, 3, True),
}

MUTATORS = [(os, "rename"), (os, "replace"), (os, "unlink"), (os, "rmdir"), (shutil, "rmtree")]


def inject(monkeypatch, kill_at: int, action) -> list[str]:
    """Count every mutating call; at the `kill_at`-th call `action()` (raise or SIGKILL). Returns the calls seen."""
    seen: list[str] = []

    def wrap(name, real):
        def counted(*args, **kwargs):
            seen.append(name)
            if len(seen) >= kill_at:
                action()
            return real(*args, **kwargs)

        return counted

    for module, name in MUTATORS:
        monkeypatch.setattr(module, name, wrap(name, getattr(module, name)))
    real_exchange = checkpoint.exchange
    monkeypatch.setattr(checkpoint, "exchange", wrap("exchange", real_exchange))
    return seen


def prepare(run_dir: Path, before: list[int], keep: int, monkeypatch, swap: bool) -> None:
    for step in before:
        save(run_dir, step, keep=keep)
    if not swap:
        monkeypatch.setattr(checkpoint, "exchange", lambda a, b: False)


def die() -> None:
    raise Killed


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_death_at_any_point_leaves_a_complete_latest(scenario, tmp_path, monkeypatch):
    before, step, keep, swap = SCENARIOS[scenario]
    kill_at, points = 1, None
    while points is None or kill_at <= points:
        run_dir = tmp_path / f"kill-{kill_at}"
        with monkeypatch.context() as patch:
            prepare(run_dir, before, keep, patch, swap)
            seen = inject(patch, kill_at, die)
            try:
                save(run_dir, step, keep=keep)
                points = len(seen)  # the number of points in this transition: the loop stops after the last
            except Killed:
                pass
        if before or os.path.exists(run_dir / "latest"):
            assert loaded_step(run_dir) in {*before, step}, f"{scenario}: death at call {kill_at} of {seen}"
        save(run_dir, step + 100, keep=keep)  # the next writer recovers: a complete checkpoint, no leftovers
        assert loaded_step(run_dir) == step + 100
        assert not [p for p in os.listdir(run_dir) if p.startswith(".step-")], os.listdir(run_dir)
        kill_at += 1
    assert points >= 2, f"{scenario}: too few points were tried ({points})"


@pytest.mark.parametrize("scenario", ["second", "rewrite latest (swap)", "rewrite latest (no swap)"])
def test_sigkill_at_each_point(scenario, tmp_path, monkeypatch):
    """The same with a real SIGKILL in a forked child: no exception handler runs at all."""
    before, step, keep, swap = SCENARIOS[scenario]
    for kill_at in range(1, 30):
        run_dir = tmp_path / f"kill-{kill_at}"
        prepare(run_dir, before, keep, monkeypatch, swap)
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            try:
                inject(monkeypatch, kill_at, lambda: os.kill(os.getpid(), signal.SIGKILL))
                save(run_dir, step, keep=keep)
            finally:
                os._exit(0)
        _, status = os.waitpid(child, 0)
        assert loaded_step(run_dir) in {*before, step}
        if os.WIFEXITED(status):  # it finished: every point was tried
            assert loaded_step(run_dir) == step and kill_at > 2
            break
        assert os.WTERMSIG(status) == signal.SIGKILL
    else:
        pytest.fail("the writer never finished")


def test_a_checkpoint_folder_has_the_permissions_of_a_plain_mkdir(tmp_path):
    mask = os.umask(0o022)
    try:
        folder = save(tmp_path, 5)
    finally:
        os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o755, oct(folder.stat().st_mode)


def test_rotation_orders_steps_by_number(tmp_path):
    """step-99999999 sorts after step-100000000 as a string: rotation must keep the newest by number."""
    for step in (99_999_999, 100_000_000, 100_000_001):
        save(tmp_path, step, keep=2)
    assert step_folders(tmp_path) == ["step-100000000", "step-100000001"]
    assert loaded_step(tmp_path) == 100_000_001


def test_rotation_never_deletes_what_latest_names(tmp_path):
    save(tmp_path, 20)
    save(tmp_path, 30)
    save(tmp_path, 10)  # an older step written again (a resume from step 10 of a run that reached 30)
    assert loaded_step(tmp_path) == 10 and "step-00000010" in step_folders(tmp_path)


def test_hidden_leftovers_of_a_killed_writer_are_cleaned(tmp_path):
    save(tmp_path, 5)
    for name in (".step-00000010.k3j2", ".step-00000005.old.x8"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".lock").write_text("")
    save(tmp_path, 10)
    assert sorted(os.listdir(tmp_path)) == [".lock", "latest", "step-00000005", "step-00000010"]


def test_a_planted_symlink_named_like_a_step_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious").write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / "step-00000005").symlink_to(target)
    save(run, 5)
    assert (target / "precious").read_text() == "keep me" and loaded_step(run) == 5
