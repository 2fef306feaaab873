"""Curricula and warm starts (lstmkit.curriculum): the lengths drawn follow the phases exactly, a run resumed
mid-phase ends bit-identical to one never stopped, --init-from loads another run's weights, bad text is one line."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file

from lstmkit.curriculum import Phase, describe, parse_curriculum, phase_at, phase_tasks, warm_start
from lstmkit.models import ModelConfig, SequenceModel
from lstmkit.tasks.base import TaskSpec
from lstmkit.tasks.synthetic.formal import Parity
from lstmkit.train import TrainConfig, train
from tests.helpers import TINY, lstmkit, one_line_error

CURRICULUM = "max_length=5@6/min_length=4,max_length=8@4"
"""Lengths 3..5 for steps 0-5, 4..8 for steps 6-9, then the task as given (3..12 below)."""


class Recorded(Parity):
    """Parity that notes (its max_length, split, the drawn batch) for every batch it makes; a phase's task is
    rebuilt as the same class, so every phase records into the same list."""

    drawn: ClassVar[list] = []

    def batch(self, batch_size, generator, split="train"):
        batch = super().batch(batch_size, generator, split)
        Recorded.drawn.append((self.min_length, self.max_length, split, batch))
        return batch


class Stop(Exception):
    pass


class StopsAfter(Recorded):
    """Raises after `calls` training batches, as a killed run would stop (its newest checkpoint stays)."""

    calls = 0
    limit = 10**9

    def batch(self, batch_size, generator, split="train"):
        if split == "train":
            StopsAfter.calls += 1
            if StopsAfter.calls > StopsAfter.limit:
                raise Stop
        return super().batch(batch_size, generator, split)


def config(**change) -> TrainConfig:
    base = dict(steps=14, batch_size=8, warmup=2, eval_every=5, eval_batches=1, checkpoint_every=4)
    return TrainConfig(**{**base, "curriculum": CURRICULUM, **change})


def model(task) -> SequenceModel:
    torch.manual_seed(5)
    return SequenceModel(ModelConfig("lstm", hidden_size=8), task.spec)


def test_parse_and_phase_at_by_hand():
    assert parse_curriculum("") == ()
    assert parse_curriculum(CURRICULUM) == (Phase({"max_length": 5}, 6), Phase({"min_length": 4, "max_length": 8}, 4))
    assert parse_curriculum("max-length=7@3") == (Phase({"max_length": 7}, 3),)
    phases = parse_curriculum(CURRICULUM)
    assert [phase_at(phases, s) for s in (0, 5, 6, 9, 10, 13)] == [0, 0, 1, 1, 2, 2]
    assert describe(phases, 0) == "phase 1/3 max_length=5" and describe(phases, 2) == "phase 3/3 as given"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("max_length=5", "is not NAME=VALUE"),
        ("max_length=5@0", "expected a positive integer"),
        ("max_length=5@x", "expected a positive integer"),
        ("5@3", "is not NAME=VALUE"),
        ("max_length=5@20", "its phases last 20 steps, expected at most steps (14)"),
    ],
)
def test_bad_curricula_name_what_is_wrong(text, needle):
    with pytest.raises(ValueError, match=None) as error:
        config(curriculum=text)
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_phases_that_do_not_fit_the_task_are_refused():
    task = Parity(max_length=12)
    with pytest.raises(ValueError, match="has no argument foo; its arguments: min_length, max_length"):
        phase_tasks(task, parse_curriculum("foo=1@3"))
    with pytest.raises(ValueError, match="max_length=2@3: max_length is 2, expected >= min_length"):
        phase_tasks(task, parse_curriculum("max_length=2@3"))


def test_the_lengths_drawn_follow_the_phases_exactly(tmp_path):
    """Every training batch comes from the phase's task, and is exactly the batch that task draws from the data
    generator at that point; validation always uses the task as given."""
    Recorded.drawn = []
    task = Recorded(max_length=12)
    train(model(task), task, config(), tmp_path / "run", progress=False)
    training = [(lo, hi, b) for lo, hi, split, b in Recorded.drawn if split == "train"]
    assert [(lo, hi) for lo, hi, _ in training] == [(3, 5)] * 6 + [(4, 8)] * 4 + [(3, 12)] * 4
    assert {(lo, hi) for lo, hi, split, _ in Recorded.drawn if split == "valid"} == {(3, 12)}
    generator = torch.Generator().manual_seed(0)
    tasks = phase_tasks(Parity(max_length=12), parse_curriculum(CURRICULUM))
    for step, (_, _, batch) in enumerate(training):
        phase = phase_at(parse_curriculum(CURRICULUM), step)
        expected = tasks[phase].batch(8, generator, "train")
        assert torch.equal(batch.x, expected.x) and torch.equal(batch.y, expected.y)
        assert int(batch.lengths.max()) - 1 <= tasks[phase].max_length
    meta = json.loads((tmp_path / "run" / "step-00000014" / "meta.json").read_text())
    assert meta["train"]["curriculum"] == CURRICULUM


@pytest.mark.parametrize("stop_after", [5, 7])
def test_resumed_mid_phase_is_bit_identical(tmp_path, stop_after):
    """Stopped during step 5 (phase 1, after the step-4 checkpoint) or step 7 (phase 2), resumed: the same weights,
    optimizer state and log as a run never stopped."""
    StopsAfter.calls, StopsAfter.limit = 0, 10**9
    train(model(StopsAfter(max_length=12)), StopsAfter(max_length=12), config(), tmp_path / "straight", progress=False)
    StopsAfter.calls, StopsAfter.limit = 0, stop_after
    task = StopsAfter(max_length=12)
    with pytest.raises(Stop):
        train(model(task), task, config(), tmp_path / "stopped", progress=False)
    assert (tmp_path / "stopped" / "latest").read_text().strip() == "step-00000004"
    StopsAfter.calls, StopsAfter.limit = 0, 10**9
    fresh = StopsAfter(max_length=12)
    torch.manual_seed(99)  # a different start: every weight must come from the checkpoint
    train(SequenceModel(ModelConfig("lstm", hidden_size=8), fresh.spec), fresh, config(), tmp_path / "stopped",
          resume=True, progress=False)  # fmt: skip
    a = load_file(tmp_path / "straight" / "step-00000014" / "model.safetensors")
    b = load_file(tmp_path / "stopped" / "step-00000014" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(tmp_path / "straight" / "step-00000014" / "state.pt", weights_only=True)["optimizer"]["state"]
    sb = torch.load(tmp_path / "stopped" / "step-00000014" / "state.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)
    assert (tmp_path / "straight" / "metrics.jsonl").read_text() == (tmp_path / "stopped" / "metrics.jsonl").read_text()


def test_warm_start_loads_the_other_runs_newest_weights(tmp_path):
    task = Parity(max_length=12)
    train(model(task), task, config(curriculum="", steps=6), tmp_path / "first", progress=False)
    stored = load_file(tmp_path / "first" / "step-00000006" / "model.safetensors")
    torch.manual_seed(1)
    second = SequenceModel(ModelConfig("lstm", hidden_size=8), task.spec)
    assert warm_start(second, tmp_path / "first") == {
        "checkpoint": str(tmp_path / "first" / "step-00000006"),
        "step": 6,
        "head": "loaded",
    }
    assert all(torch.equal(second.state_dict()[k], v) for k, v in stored.items())
    other = SequenceModel(ModelConfig("lstm", hidden_size=8, num_layers=2), task.spec)
    with pytest.raises(ValueError, match="is from a different model: missing"):  # no meta.model: train() was given none
        warm_start(other, tmp_path / "first")
    train(second, task, config(curriculum="", steps=3, init_from=str(tmp_path / "first")), tmp_path / "second",
          progress=False)  # fmt: skip
    meta = json.loads((tmp_path / "second" / "step-00000003" / "meta.json").read_text())
    assert meta["init_from"] == {"checkpoint": str(tmp_path / "first" / "step-00000006"), "step": 6, "head": "loaded"}


def test_a_warm_start_under_another_tasks_outputs_loads_all_but_the_head(tmp_path):
    """A language model's body under a classifier's head: the embedding and body come from the run, the head keeps
    its own fresh initialisation; dropout (no weight) may differ; a body of another shape is still refused."""
    task = Parity(max_length=12)
    config_ = ModelConfig("lstm", hidden_size=8)
    train(model(task), task, config(curriculum="", steps=6), tmp_path / "first", progress=False,
          meta={"model": config_.to_dict()})  # fmt: skip
    stored = load_file(tmp_path / "first" / "step-00000006" / "model.safetensors")
    five = TaskSpec(name="five", kind="classify", num_outputs=5, vocab_size=task.spec.vocab_size)
    torch.manual_seed(2)
    other = SequenceModel(ModelConfig("lstm", hidden_size=8, dropout=0.3), five)
    head = {k: v.clone() for k, v in other.state_dict().items() if k.startswith("head.")}
    assert warm_start(other, tmp_path / "first")["head"] == "fresh"
    for name, value in other.state_dict().items():
        assert torch.equal(value, head[name] if name.startswith("head.") else stored[name]), name
    with pytest.raises(ValueError, match="that run's model has hidden_size 8, this one 9"):
        warm_start(SequenceModel(ModelConfig("lstm", hidden_size=9), five), tmp_path / "first")
    wider = TaskSpec(name="wider", kind="classify", num_outputs=5, vocab_size=task.spec.vocab_size + 1)
    with pytest.raises(ValueError, match=r"is from a different model: shapes differ for \['encoder"):
        warm_start(SequenceModel(config_, wider), tmp_path / "first")


def test_the_cli_takes_both_and_refuses_bad_ones_in_one_line(tmp_path, capsys):
    parity = ("--task", "parity", "--task-arg", "max_length=12", "--steps", 6)
    code, _, err = lstmkit(capsys, "train", *parity, *TINY, "--curriculum", "max_length=5@3", "--run-dir",
                             tmp_path / "a")  # fmt: skip
    assert code == 0, err
    warm = ("--init-from", tmp_path / "a", "--run-dir", tmp_path / "b")
    code, out, err = lstmkit(capsys, "train", *parity, *TINY, *warm)
    assert code == 0, err
    assert f"warm start: the weights of {tmp_path / 'a' / 'step-00000006'} (step 6) and its head" in out
    a, b = (load_file(tmp_path / r / "step-00000006" / "model.safetensors") for r in ("a", "b"))
    assert a.keys() == b.keys() and not all(torch.equal(a[k], b[k]) for k in a)  # trained on from a's weights
    cases = [
        (("--curriculum", "max_length=5"), "is not NAME=VALUE"),
        (("--curriculum", "foo=1@2"), "task parity has no argument foo"),
        (("--init-from", tmp_path / "nowhere"), "nowhere"),
        (("--init-from", tmp_path / "a", "--hidden-size", 12), "that run's model has hidden_size 8, this one 12"),
    ]
    for extra, needle in cases:
        code, _, err = lstmkit(capsys, "train", *parity, *TINY, *extra, "--run-dir", tmp_path / "refused")
        one_line_error(code, err, needle)
    assert not (tmp_path / "refused").exists()
    code, _, err = lstmkit(capsys, "train", "--run-dir", tmp_path / "a", "--resume", "--curriculum", "max_length=6@3")
    one_line_error(code, err, "curriculum is 'max_length=5@3', not 'max_length=6@3'")


def test_a_run_written_before_these_fields_existed_still_loads_and_resumes(tmp_path, capsys):
    """meta.json from an earlier version lacks train.curriculum, train.init_from and model.state_size: they read as
    their defaults (run_files.ADDED_LATER); any other missing field is still corruption."""
    from lstmkit.experiment import load_run
    from lstmkit.resume import Given, run_settings

    parity = ("--task", "parity", "--task-arg", "max_length=12", "--steps", 6)
    assert lstmkit(capsys, "train", *parity, *TINY, "--run-dir", tmp_path / "old")[0] == 0
    path = tmp_path / "old" / "step-00000006" / "meta.json"
    meta = json.loads(path.read_text())
    for section, key in (("train", "curriculum"), ("train", "init_from"), ("model", "state_size")):
        del meta[section][key]
    path.write_text(json.dumps(meta))
    assert load_run(tmp_path / "old").model.config.state_size == 16
    settings = run_settings(Given(None, {}, {}, {"curriculum": ""}), tmp_path / "old", resume=True)
    assert settings.train.curriculum == "" and settings.train.init_from == ""


def test_compare_takes_a_curriculum_and_refuses_a_warm_start(tmp_path, capsys):
    code, _, err = lstmkit(capsys, "compare", "--task", "parity", "--models", "lstm", "--init-from", tmp_path)
    one_line_error(code, err, "compare trains every model from a fresh start")
    code, _, err = lstmkit(capsys, "compare", "--task", "parity", "--models", "lstm", "--curriculum", "foo=1@2")
    one_line_error(code, err, "task parity has no argument foo")
    flags = ("--task", "parity", "--task-arg", "max_length=12", "--models", "lstm", "--hidden-size", 8)
    code, _, err = lstmkit(capsys, "compare", *flags, "--steps", 4, "--curriculum", "max_length=5@2", "--quiet",
                           "--eval-batches", 1, "--out", tmp_path / "c")  # fmt: skip
    assert code == 0, err
    meta = json.loads((tmp_path / "c" / "lstm" / "step-00000004" / "meta.json").read_text())
    assert meta["train"]["curriculum"] == "max_length=5@2"
