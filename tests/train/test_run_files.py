"""Schema validation of every run file on read: meta.json, state.pt and metrics.jsonl of the wrong type or structure
give a CheckpointError naming the file and the field (one line in the CLI), never a KeyError or TypeError; damage to
state.pt never blocks the verbs that need only the weights; torch's advice about weights_only is never passed on.
(`latest` is covered in test_run_folder.py.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from lstmkit.checkpoint import CheckpointError, read_checkpoint, read_state
from lstmkit.cli import main
from lstmkit.compare import read_curves
from lstmkit.experiment import load_run
from tests.helpers import TINY_EVERY_2

STEP = "step-00000002"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run stopped at step 2 of 4 (so that --resume has work to do), trained once for the module."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *TINY_EVERY_2, "--steps", "4", "--run-dir", str(run)]) == 0
    shutil.rmtree(run / "step-00000004")
    (run / "latest").write_text(STEP + "\n")
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def edit_meta(run: Path, change) -> None:
    path = run / STEP / "meta.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def updated(meta: dict, key: str, **fields) -> dict:
    return {**meta, key: {**meta[key], **fields}}


def without(meta: dict, key: str, field: str | None = None) -> dict:
    if field is None:
        return {k: v for k, v in meta.items() if k != key}
    return {**meta, key: {k: v for k, v in meta[key].items() if k != field}}


META = {
    "a list": (lambda m: [m], ["meta.json is [", "expected a JSON object"]),
    "a number": (lambda m: 3, ["meta.json is 3"]),
    "step a string": (lambda m: {**m, "step": "eight"}, ["meta.json field step is 'eight'"]),
    "step negative": (lambda m: {**m, "step": -1}, ["field step is -1", "integer ≥ 0"]),
    "step a bool": (lambda m: {**m, "step": True}, ["field step is True"]),
    "step a float": (lambda m: {**m, "step": 2.5}, ["field step is 2.5"]),
    "step missing": (lambda m: without(m, "step"), ["meta.json has no field step"]),
    "model missing a field": (lambda m: without(m, "model", "hidden_size"), ["field model lacks hidden_size"]),
    "model field of wrong type": (lambda m: updated(m, "model", hidden_size="wide"), ["model.hidden_size is 'wide'"]),
    "model field a float": (lambda m: updated(m, "model", num_layers=1.5), ["model.num_layers is 1.5"]),
    "model field a bool": (lambda m: updated(m, "model", num_heads=True), ["model.num_heads is True"]),
    "model forget_bias NaN": (lambda m: updated(m, "model", forget_bias=float("nan")), ["model.forget_bias"]),
    "model unknown name": (lambda m: updated(m, "model", name="gpt"), ["field model:", "'gpt'"]),
    "model unknown key": (lambda m: updated(m, "model", attention=0.1), ["model has unknown keys attention"]),
    "model a string": (lambda m: {**m, "model": "lstm"}, ["field model is 'lstm'"]),
    "model too big": (lambda m: updated(m, "model", hidden_size=10**6), ["hidden_size 1000000", "parameters"]),
    "train unknown key": (lambda m: updated(m, "train", learning_rate=1.0), ["train has unknown keys learning_rate"]),
    "train field of wrong type": (lambda m: updated(m, "train", lr="fast"), ["train.lr is 'fast'"]),
    "train bad value": (lambda m: updated(m, "train", steps=0), ["field train:", "steps is 0"]),
    "train missing a field": (lambda m: without(m, "train", "seed"), ["field train lacks seed"]),
    "spec bad kind": (lambda m: updated(m, "spec", kind="poem"), ["field spec:", "kind is 'poem'"]),
    "spec missing a field": (lambda m: without(m, "spec", "num_outputs"), ["field spec lacks num_outputs"]),
    "spec both inputs": (lambda m: updated(m, "spec", vocab_size=3), ["field spec:", "exactly one of"]),
    "spec a list": (lambda m: {**m, "spec": [1]}, ["field spec is [1]"]),
    "task a list": (lambda m: {**m, "task": ["adding"]}, ["field task is ['adding']"]),
    "task name a number": (lambda m: updated(m, "task", name=5), ["field task.name is 5"]),
    "task args a list": (lambda m: updated(m, "task", args=[1]), ["field task.args is [1]"]),
    "task arg a dict": (lambda m: updated(m, "task", args={"length": {}}), ["field task.args.length is {}"]),
    "metrics a list": (lambda m: {**m, "metrics": [1]}, ["field metrics is [1]"]),
    "metric a string": (lambda m: updated(m, "metrics", mse="low"), ["field metrics.mse is 'low'"]),
    "vocab of numbers": (lambda m: {**m, "vocab": [1, 2]}, ["field vocab is [1, 2]"]),
    "huge value is cut": (lambda m: updated(m, "model", name="x" * 10_000), ["field model:", "..."]),
}


@pytest.mark.parametrize("case", META)
def test_meta_json_is_checked(case, run, capsys):
    change, needles = META[case]
    edit_meta(run, change)
    with pytest.raises(CheckpointError) as raised:
        load_run(run)
    message = str(raised.value)
    for needle in [f"checkpoint {run / STEP}", *needles]:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert "\n" not in message and len(message) < 400, message
    for argv in (["eval", str(run)], ["train", "--resume", "--run-dir", str(run), "--quiet"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "meta.json" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"{not json", "meta.json is not valid JSON"),
        (b"\xff\xfe\x00\x01", "meta.json is not valid JSON"),
        (b"", "meta.json is not valid JSON"),
        (None, "meta.json is missing"),
        ("link", "is a symlink"),
    ],
    ids=["text", "binary", "empty", "missing", "symlink"],
)
def test_meta_json_that_is_not_json(data, needle, run):
    path = run / STEP / "meta.json"
    if data == "link":
        os.replace(path, run / "elsewhere.json")
        path.symlink_to(run / "elsewhere.json")
    elif data is None:
        path.unlink()
    else:
        path.write_bytes(data)
    with pytest.raises(CheckpointError, match=needle):
        read_checkpoint(run)


class Payload:
    """A pickle that would create a file when loaded without weights_only=True."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def malicious(path: Path) -> None:
    torch.save({"optimizer": Payload(path.parent.parent / "pwned"), "rng": {}}, path)


def state_with(change):
    def plant(path: Path) -> None:
        torch.save(change(torch.load(path, weights_only=True)), path)

    return plant


STATE = {
    "a tensor": (lambda p: torch.save(torch.zeros(3), p), "state.pt is a torch.float32 tensor of shape (3,)"),
    "a list": (lambda p: torch.save([1, 2], p), "state.pt is [1, 2], expected a dict"),
    "no optimizer": (state_with(lambda s: {"rng": s["rng"]}), "state.pt has no optimizer"),
    "no rng": (state_with(lambda s: {"optimizer": s["optimizer"]}), "state.pt has no rng"),
    "optimizer a list": (state_with(lambda s: {**s, "optimizer": [1]}), "state.pt field optimizer is [1]"),
    "param_groups wrong": (
        state_with(lambda s: {**s, "optimizer": {**s["optimizer"], "param_groups": 3}}),
        "optimizer.param_groups is 3",
    ),
    "rng of floats": (
        state_with(lambda s: {**s, "rng": {**s["rng"], "data": torch.zeros(4)}}),
        "rng.data is a torch.float32 tensor",
    ),
    "rng missing torch": (state_with(lambda s: {**s, "rng": {"data": s["rng"]["data"]}}), "rng.torch is None"),
    "moments of another shape": (
        state_with(
            lambda s: {
                **s,
                "optimizer": {
                    **s["optimizer"],
                    "state": {i: {**v, "exp_avg": torch.zeros(7, 7)} for i, v in s["optimizer"]["state"].items()},
                },
            }
        ),
        "from a different model: state.pt's optimizer.state",
    ),
    "garbage": (lambda p: p.write_bytes(b"garbage"), "state.pt cannot be read"),
    "malicious pickle": (malicious, "state.pt cannot be read"),
    "missing": (lambda p: p.unlink(), "state.pt is missing"),
}


@pytest.mark.parametrize("case", STATE)
def test_state_pt_is_checked_and_never_blocks_the_read_only_verbs(case, run, capsys):
    plant, needle = STATE[case]
    plant(run / STEP / "state.pt")
    assert main(["train", "--resume", "--run-dir", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    assert "weights_only" not in err and not (run.parent / "pwned").exists()
    assert main(["eval", str(run), "--batches", "1", "--format", "json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["step"] == 2
    if case != "moments of another shape":  # that one needs the model: found on resume
        with pytest.raises(CheckpointError, match=r"state\.pt"):
            read_state(run / STEP)


LOG = {
    "not json": ('{"step": 1, "split": "train"}\n{"step": 2, "spl', "line 2 is not JSON"),
    "no step": ('{"split": "train", "loss": 1.0}\n', "line 1 has step None"),
    "step a string": ('{"step": "1", "split": "train"}\n', "line 1 has step '1'"),
    "a list": ("[1, 2]\n", "line 1 is [1, 2], expected a JSON object"),
    "no split": ('{"step": 1, "loss": 1.0}\n', "line 1 has split None"),
}


@pytest.mark.parametrize("case", LOG)
def test_metrics_jsonl_is_checked(case, run, capsys):
    text, needle = LOG[case]
    (run / "metrics.jsonl").write_text(text)
    with pytest.raises(CheckpointError, match=re.escape(f"metrics.jsonl is corrupt: {needle}")):
        read_curves(run)
    assert main(["train", "--resume", "--run-dir", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert (run / "metrics.jsonl").read_text() == text, "a refused resume rewrote the log"
