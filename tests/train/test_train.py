"""The training loop: every model family learns, resume after SIGKILL is exact, NaN stops, checkpoints are safe."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lstmkit.checkpoint import CheckpointError, load_weights, read_checkpoint, read_state
from lstmkit.models import MODEL_NAMES, ModelConfig, SequenceModel
from lstmkit.tasks.base import Batch, TaskSpec
from lstmkit.train import TrainConfig, TrainingDiverged, learning_rate, train
from tests.helpers import ROOT


class FirstTokenTask:
    """Tokens of variable length; classify: the last valid token; regress: the first token (a memory task);
    tag: the previous token at each position. Tiny problems every model family learns in a few steps."""

    def __init__(self, kind: str = "classify", poison_at: int | None = None) -> None:
        self.kind, self.poison_at, self.calls = kind, poison_at, 0
        self.spec = TaskSpec("first-token", kind, num_outputs=1 if kind == "regress" else 4, vocab_size=4)

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        self.calls += 1
        x = torch.randint(0, 4, (batch_size, 9), generator=generator)
        lengths = torch.randint(3, 10, (batch_size,), generator=generator)
        if self.kind == "tag":
            return Batch(x, x.roll(1, dims=1), lengths)  # tag: the previous token at each position
        if self.kind == "regress":
            return Batch(x, x[:, :1].float() * (float("nan") if self.calls == self.poison_at else 1.0), lengths)
        return Batch(x, x[torch.arange(batch_size), lengths - 1], lengths)


FAST = {"steps": 40, "batch_size": 16, "lr": 1e-2, "warmup": 2, "eval_every": 20, "eval_batches": 2}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_family_learns(name, tmp_path):
    torch.manual_seed(0)
    task = FirstTokenTask("tag" if name in ("mlstm", "xlstm-large") else "classify")
    model = SequenceModel(ModelConfig(name, hidden_size=16, num_heads=2), task.spec)
    steps = 80 if name == "xlstm-large" else 40  # the 7B init's input-gate bias -10 opens the memory slowly
    config = TrainConfig(**(FAST | {"steps": steps}))
    from lstmkit.train import evaluate

    before = evaluate(model, task, config)["loss"]
    after = train(model, task, config, tmp_path, progress=False)
    assert after["loss"] < 0.7 * before, (before, after)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == steps and sum(r["split"] == "train" for r in records) == steps


def test_learning_rate_schedule():
    config = TrainConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert learning_rate(0, config) == pytest.approx(0.1) and learning_rate(9, config) == pytest.approx(1.0)
    assert learning_rate(10, config) == pytest.approx(1.0) and learning_rate(100, config) == pytest.approx(0.1)
    assert learning_rate(55, config) == pytest.approx(0.55)


SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {root!r})
    from tests.train.test_train import FirstTokenTask
    from lstmkit.models import ModelConfig, SequenceModel
    from lstmkit.train import TrainConfig, train

    class Killed(FirstTokenTask):
        def batch(self, *args):
            if self.calls == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().batch(*args)

    if sys.argv[2] == "kill-in-writer":  # die just before `latest` names step 10: its folder is complete, unnamed
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if str(dst).endswith("latest") and "step-00000010" in open(src).read():
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace
    torch.manual_seed(123)
    task = Killed() if sys.argv[2] == "kill" else FirstTokenTask()
    model = SequenceModel(ModelConfig({name!r}, hidden_size=8, num_heads=2), task.spec)
    config = TrainConfig(steps=12, batch_size=4, warmup=2, eval_every=5, eval_batches=1, checkpoint_every=5)
    train(model, task, config, sys.argv[1], resume=sys.argv[2] == "resume", progress=False)
""")


@pytest.mark.parametrize(("name", "kill"), [("lstm", "kill"), ("xlstm", "kill"), ("lstm", "kill-in-writer")])
def test_resume_after_sigkill_is_exact(name, kill, tmp_path):
    """Killed during step 8 (after the step-5 checkpoint), or inside the writer of the step-10 checkpoint (its
    folder complete, `latest` not yet naming it: the resumed run writes step 10 again, swapping the folders)."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT), kill_at=9, name=name))

    def run(run_dir: Path, mode: str) -> int:
        return subprocess.run([sys.executable, str(script), str(run_dir), mode], cwd=ROOT, timeout=120).returncode

    assert run(tmp_path / "straight", "plain") == 0
    assert run(tmp_path / "killed", kill) == -9
    assert (tmp_path / "killed" / "latest").read_text().strip() == "step-00000005"
    assert (tmp_path / "killed" / "step-00000010").is_dir() == (kill == "kill-in-writer")
    assert run(tmp_path / "killed", "resume") == 0
    straight = read_checkpoint(tmp_path / "straight")
    resumed = read_checkpoint(tmp_path / "killed")
    assert straight.meta["step"] == resumed.meta["step"] == 12
    a = torch.load(straight.path / "state.pt", weights_only=True)["optimizer"]["state"]
    b = torch.load(resumed.path / "state.pt", weights_only=True)["optimizer"]["state"]
    for key in a:
        assert torch.equal(a[key]["exp_avg"], b[key]["exp_avg"])
    from safetensors.torch import load_file

    wa, wb = load_file(straight.path / "model.safetensors"), load_file(resumed.path / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert lines == (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    task = FirstTokenTask("regress", poison_at=8)
    model = SequenceModel(ModelConfig("gru", hidden_size=8), task.spec)
    config = TrainConfig(steps=20, batch_size=4, warmup=1, eval_every=5, eval_batches=1, checkpoint_every=5)
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 6"):
        train(model, task, config, tmp_path, progress=False)
    checkpoint = read_checkpoint(tmp_path)
    assert checkpoint.meta["step"] == 5
    load_weights(checkpoint.path, SequenceModel(ModelConfig("gru", hidden_size=8), task.spec))


def test_checkpoint_errors(tmp_path):
    torch.manual_seed(0)
    task = FirstTokenTask()
    model = SequenceModel(ModelConfig("lstm", hidden_size=8), task.spec)
    train(model, task, TrainConfig(steps=2, batch_size=2, warmup=1, eval_batches=1), tmp_path, progress=False)
    folder = read_checkpoint(tmp_path).path
    with pytest.raises(CheckpointError, match=r"from a different model: shapes differ for \['body.bias_hh_l0'"):
        load_weights(folder, SequenceModel(ModelConfig("lstm", hidden_size=9), task.spec))
    with pytest.raises(CheckpointError, match="from a different model"):
        load_weights(folder, SequenceModel(ModelConfig("gru", hidden_size=8), task.spec))
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        read_checkpoint(tmp_path / "nowhere")
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"meta\.json is not valid JSON"):
        read_checkpoint(tmp_path)
    (folder / "meta.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"meta\.json has no field step"):
        read_checkpoint(tmp_path)
    (folder / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"state\.pt cannot be read"):
        read_state(folder)
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"model\.safetensors cannot be read"):
        load_weights(folder, model)
    with pytest.raises(ValueError, match=r"unknown model 'gpt', expected one of rnn, gru, lstm"):
        ModelConfig("gpt")


SMALL = {
    "adding": {"length": 20},
    "temporal-order": {"length": 20},
    "copy": {"length": 5, "copy_length": 3},
    "parity": {"max_length": 10, "test_max_length": 50},
    "cycle-navigation": {"max_length": 10},
    "even-pairs": {"max_length": 10},
    "modular-arithmetic": {"max_length": 11},
    "mqar": {},
}
SMALL |= {name: {"max_length": 10} for name in ("reverse-string", "duplicate-string", "odds-first", "bucket-sort")}
SMALL |= {name: {"max_length": 11} for name in ("modular-arithmetic-brackets", "solve-equation", "missing-duplicate")}
SMALL |= {name: {"max_length": 10} for name in ("stack-manipulation", "binary-addition", "binary-multiplication")}
SMALL |= {"compute-sqrt": {"max_length": 10}}


def test_every_synthetic_task_has_a_small_setting():
    from lstmkit.tasks import SYNTHETIC

    assert set(SMALL) == set(SYNTHETIC)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_synthetic_task_trains_with_the_models(name, tmp_path):
    from lstmkit.tasks import SYNTHETIC

    task = SYNTHETIC[name](**SMALL[name])
    for model_name in ("lstm", "xlstm"):
        torch.manual_seed(0)
        model = SequenceModel(ModelConfig(model_name, hidden_size=16, num_heads=2), task.spec)
        result = train(
            model,
            task,
            TrainConfig(steps=3, batch_size=4, warmup=1, eval_batches=1),
            tmp_path / model_name,
            progress=False,
        )
        assert result["step"] == 3 and all(v == v for v in result.values())  # finite, no NaN


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("lr", -1.0, "lr is -1.0, expected a finite number > 0"),
        ("lr", float("nan"), "lr is nan"),
        ("lr", float("inf"), "lr is inf"),
        ("warmup", -1, "warmup is -1, expected an integer ≥ 0"),
        ("min_lr_ratio", 2.0, "min_lr_ratio is 2.0, expected a number in [0, 1]"),
        ("clip", 0.0, "clip is 0.0"),
        ("clip", float("nan"), "clip is nan"),
        ("weight_decay", -0.1, "weight_decay is -0.1"),
        ("seed", 10**23, "seed is 100000000000000000000000, expected an integer ≤ 9223372036854775807"),
        ("seed", 2**63, "seed is 9223372036854775808"),
        ("seed", -1, "seed is -1, expected an integer ≥ 0"),
        ("steps", True, "steps is True"),
        ("batch_size", 2.0, "batch_size is 2.0"),
    ],
)
def test_train_config_names_the_field_at_fault(field, value, needle):
    with pytest.raises(ValueError) as raised:
        TrainConfig(**{field: value})
    assert str(raised.value) == needle or str(raised.value).startswith(needle), str(raised.value)


def test_the_largest_seed_works_everywhere():
    config = TrainConfig(seed=2**63 - 1, batch_size=2, eval_batches=1)
    task = FirstTokenTask()
    from lstmkit.train import evaluate

    assert evaluate(SequenceModel(ModelConfig("rnn", hidden_size=4), task.spec), task, config)["loss"] > 0


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"forget_bias": float("nan")}, "forget_bias is nan, expected a finite number"),
        ({"forget_bias": float("-inf")}, "forget_bias is -inf"),
        ({"forget_bias": "1"}, "forget_bias is '1'"),
        ({"blocks": "mx"}, "blocks is 'mx'"),
        ({"blocks": ""}, "blocks is ''"),
        ({"num_heads": True}, "num_heads is True"),
    ],
)
def test_model_config_names_the_field_at_fault(fields, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        ModelConfig("lstm", **fields)


def test_nan_before_the_first_checkpoint_does_not_claim_one(tmp_path):
    task = FirstTokenTask("regress", poison_at=3)
    model = SequenceModel(ModelConfig("gru", hidden_size=8), task.spec)
    config = TrainConfig(steps=20, batch_size=4, warmup=1, eval_every=5, eval_batches=1, checkpoint_every=5)
    with pytest.raises(TrainingDiverged) as raised:
        train(model, task, config, tmp_path, progress=False)
    expected = "the loss became nan at step 2; no checkpoint was written yet (the first is due at step 5)"
    assert str(raised.value) == expected
    assert not (tmp_path / "latest").exists()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_without_allocating_equals_the_model(name):
    from lstmkit.models import parameter_count

    spec = TaskSpec("t", "tag", num_outputs=5, vocab_size=7)
    for layers, blocks in ((1, "m"), (3, "sms"), (4, "mmsm")):
        config = ModelConfig(name, hidden_size=8, num_heads=2, num_layers=layers, blocks=blocks)
        assert parameter_count(config, spec) == sum(p.numel() for p in SequenceModel(config, spec).parameters())


@pytest.mark.parametrize(
    ("config", "batch_size", "needle"),
    [
        (ModelConfig("lstm", hidden_size=200_000), 1, "hidden_size 200000, num_layers 1 make a lstm of 320,00"),
        (ModelConfig("gru", num_layers=10**6), 1, "hidden_size 64, num_layers 1000000 make a gru of"),
        (ModelConfig("xlstm", blocks="m" * 10**5, hidden_size=1024), 1, "blocks 'mmmm"),
        (ModelConfig("lstm"), 10**8, "batch_size 100000000 with sequences of 100 steps and hidden_size 64"),
    ],
)
def test_sizes_that_cannot_fit_are_refused_before_allocation(config, batch_size, needle):
    from lstmkit.models import check_fits

    spec = TaskSpec("t", "regress", num_outputs=1, input_size=2)
    with pytest.raises(ValueError, match=re.escape(needle)) as raised:
        check_fits(config, spec, batch_size, 100)
    assert "more than the" in str(raised.value) and "of memory" in str(raised.value)
    check_fits(ModelConfig("lstm"), spec, 32, 100)  # an ordinary size passes
