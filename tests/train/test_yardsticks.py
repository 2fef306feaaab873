"""Yardsticks (`make test-slow`): the claims the README's results table makes, trained for real.

Each yardstick trains with `lstmkit.compare` under a stated budget, evaluates on the test split, writes
runs/yardsticks/<name>/ (results.md, curves.png, the run folders) and prints a line per model, then checks
the claim. Budgets are CPU-sized (2 cores); the README gives the measured numbers and the time taken.
A claim we measured and miss is marked xfail(strict=True) with the number we got: if it starts to pass,
the suite says so.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from lstmkit.compare import compare, label_of
from lstmkit.experiment import load_run, make_task
from lstmkit.models import ModelConfig
from lstmkit.train import TrainConfig, evaluate

pytestmark = pytest.mark.slow

OUT = Path(__file__).resolve().parents[2] / "runs" / "yardsticks"


def run(name: str, task: str, task_args: dict, models: list[ModelConfig], config: TrainConfig) -> dict[str, dict]:
    """Train every model afresh, then evaluate each on 16 test batches; {label: test metrics}."""
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    compare(task, task_args, models, config, out, progress=False)
    results, test_task = {}, make_task(task, task_args)
    for model in models:
        trained = load_run(out / label_of(model))
        test = evaluate(trained.model, test_task, replace(config, eval_batches=16), split="test")
        results[label_of(model)] = test
        print(f"\n{name} · {label_of(model)} · test {json.dumps({k: round(v, 4) for k, v in test.items()})}")
    (out / "test.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def test_adding_problem_t100():
    """T = 100: the LSTM learns the sum (MSE < 0.01); the tanh RNN stays near the constant guess (> 0.1)."""
    config = TrainConfig(steps=2000, batch_size=32, lr=3e-3)
    models = [ModelConfig("rnn", hidden_size=64), ModelConfig("lstm", hidden_size=64)]
    results = run("adding", "adding", {"length": 100}, models, config)
    assert results["lstm"]["mse"] < 0.01
    assert results["rnn"]["mse"] > 0.1


PARITY = TrainConfig(steps=3000, batch_size=32, lr=3e-3)


@functools.cache
def parity_results() -> dict[str, dict]:
    """Trained once per session, checked by three tests."""
    models = [ModelConfig(name, hidden_size=64) for name in ("lstm", "slstm", "mlstm")]
    return run("parity", "parity", {}, models, PARITY)


def test_parity_lstm_generalises_to_longer_words():
    """Trained on lengths 3–40, tested on 40–256: the LSTM keeps ≥ 0.95 accuracy."""
    assert parity_results()["lstm"]["accuracy"] >= 0.95


@pytest.mark.xfail(strict=True, reason="measured: without a curriculum the sLSTM stays at chance (0.52); see README")
def test_parity_slstm_generalises_to_longer_words():
    assert parity_results()["slstm"]["accuracy"] >= 0.95


def recipe(capsys, name: str, *flags) -> dict:
    """`lstmkit train FLAGS` into runs/yardsticks/NAME, then `lstmkit eval` (2,048 generated test examples): its
    JSON record."""
    from tests.helpers import lstmkit

    run = OUT / name
    shutil.rmtree(run, ignore_errors=True)
    code, _, err = lstmkit(capsys, "train", *flags, "--quiet", "--run-dir", run)
    assert code == 0, err
    code, out, err = lstmkit(capsys, "eval", run, "--format", "json")
    assert code == 0, err
    record = json.loads(out)
    print(f"\n{name} · test {json.dumps({k: v for k, v in record.items() if k in ('accuracy', 'mse', 'loss')})}")
    return record


def test_parity_slstm_with_a_length_curriculum(capsys):
    """Through the CLI, the 1-block sLSTM with words of 3–10 symbols for 2,500 steps, then 3–40 for 3,000: ≥ 0.95
    on 2,048 generated test words of 40–256 (`lstmkit eval`'s default for a synthetic task)."""
    flags = ("--task", "parity", "--model", "slstm", "--hidden-size", 64, "--steps", 5500)
    assert recipe(capsys, "parity-slstm-curriculum", *flags, "--curriculum", "max_length=10@2500")["accuracy"] >= 0.95


def test_temporal_order_t100_lstm_with_a_length_curriculum(capsys):
    """The README's recipe: T = 30, 50, 70 for 500 steps each, then 100; the LSTM ≥ 0.95 (at 1,000 plain steps it
    stays at chance; jumping from 30 straight to 100 loses what it learned)."""
    flags = ("--task", "temporal-order", "--model", "lstm", "--hidden-size", 64, "--steps", 3000)
    curriculum = "length=30@500/length=50@500/length=70@500"
    assert recipe(capsys, "temporal-order-lstm", *flags, "--curriculum", curriculum)["accuracy"] >= 0.95


def test_copy_t100_lstm_with_a_length_curriculum(capsys):
    """The README's recipe: gaps of 10 for 1,000 steps, 40 for 2,000, then 100 until 12,000 steps: ≥ 0.95."""
    flags = ("--task", "copy", "--model", "lstm", "--hidden-size", 64, "--steps", 12000)
    assert recipe(capsys, "copy-lstm", *flags, "--curriculum", "length=10@1000/length=40@2000")["accuracy"] >= 0.95


def test_parity_mlstm_is_near_chance():
    """The mLSTM has no memory mixing and cannot track parity (the xLSTM paper's finding)."""
    assert parity_results()["mlstm"]["accuracy"] <= 0.6


def test_mqar_64_4():
    """Multi-query associative recall, 4 key-value pairs in 64 tokens: an xLSTM with mLSTM blocks ≥ 0.9."""
    config = TrainConfig(steps=2000, batch_size=32, lr=3e-3)
    models = [ModelConfig("lstm", hidden_size=64), ModelConfig("xlstm", hidden_size=64, blocks="mm")]
    results = run("mqar", "mqar", {"length": 64, "num_pairs": 4}, models, config)
    assert results["xlstm-mm"]["accuracy"] >= 0.9


@functools.cache
def state_space_results(name: str) -> dict[str, dict]:
    """Mamba and Mamba-2 (hidden size 64, N = 16; 1 block, 2 for MQAR) under the budgets above, trained once each."""
    tasks = {"adding": ("adding", {"length": 100}, 2000), "parity": ("parity", {}, 3000)}
    tasks["mqar"] = ("mqar", {"length": 64, "num_pairs": 4}, 2000)
    task, task_args, steps = tasks[name]
    layers = 2 if name == "mqar" else 1  # recall needs two blocks, as the xLSTM's "mm" has
    models = [ModelConfig(family, hidden_size=64, num_layers=layers) for family in ("mamba", "mamba2")]
    return run(f"{name}-mamba", task, task_args, models, TrainConfig(steps=steps, batch_size=32, lr=3e-3))


@pytest.mark.parametrize("family", ["mamba", "mamba2"])
def test_adding_problem_t100_state_space(family):
    """A selective state keeps the two marked numbers over 100 steps, as the LSTM does: MSE < 0.01."""
    assert state_space_results("adding")[family]["mse"] < 0.01


@pytest.mark.parametrize("family", ["mamba", "mamba2"])
def test_parity_state_space_is_near_chance(family):
    """Mamba's decays lie in (0, 1): no sign flips, so no parity (Grazzi et al. 2025; the xLSTM paper's fig. 4)."""
    assert state_space_results("parity")[family]["accuracy"] <= 0.6


MQAR_MISSES = {
    "mamba": "measured: Mamba (2 blocks) at test accuracy 0.25 after 2,000 steps, one value of four; see README",
    "mamba2": "measured: Mamba-2 (2 blocks) at test accuracy 0.86 after 2,000 steps; see README",
}


@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=why)) for f, why in MQAR_MISSES.items()]
)
def test_mqar_64_4_state_space(family):
    """Recall of 4 pairs in 64 tokens, two blocks with a state of N = 16 per channel: ≥ 0.9, as the mLSTM blocks."""
    assert state_space_results("mqar")[family]["accuracy"] >= 0.9
