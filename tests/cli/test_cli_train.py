"""The training verbs end to end through `lstmkit.cli.main`: train, eval, compare, generate, data, and their errors.

Everything runs in-process on tiny sizes (a few seconds in all) except the data-parallel test, which starts
torchrun for real: two gloo processes must end with the same weights as one process on the same global batch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lstmkit.cli import main
from lstmkit.distributed import shard, share_of_loss
from lstmkit.experiment import load_run
from lstmkit.tasks.base import Batch, TaskSpec, compute_loss, count_targets
from lstmkit.tasks.real import fetch
from tests.helpers import TINY, lstmkit, one_line_error

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "lstmkit-test"


def train_tiny(run_dir: Path, capsys, *extra, task=("--task", "adding", "--task-arg", "length=12")) -> str:
    code, out, err = lstmkit(capsys, "train", *task, *TINY, "--steps", 10, "--run-dir", run_dir, *extra)
    assert code == 0, err
    return out


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    latest = (run_dir / "latest").read_text().strip()
    return load_file(run_dir / latest / "model.safetensors")


def test_train_then_eval(tmp_path, capsys):
    out = train_tiny(tmp_path / "run", capsys, "--model", "gru")
    assert "step 10: valid mse" in out and f"run folder: {tmp_path / 'run'}" in out
    meta = json.loads((tmp_path / "run" / "step-00000010" / "meta.json").read_text())
    assert meta["task"] == {"name": "adding", "args": {"length": 12}} and meta["model"]["name"] == "gru"
    assert meta["train"]["steps"] == 10 and meta["model"]["hidden_size"] == 8
    code, out, _ = lstmkit(capsys, "eval", tmp_path / "run", "--format", "json", "--batches", 2)
    record = json.loads(out)
    assert code == 0 and record["split"] == "test" and record["step"] == 10 and record["mse"] > 0
    assert record["baseline"] == pytest.approx(1 / 6)


def test_train_refuses_to_overwrite_and_resume_refuses_other_settings(tmp_path, capsys):
    run = tmp_path / "run"
    train_tiny(run, capsys)
    before = weights(run)
    code, _, err = lstmkit(capsys, "train", "--task", "adding", *TINY, "--steps", 10, "--run-dir", run)
    one_line_error(code, err, "already holds a checkpoint", "--resume")
    code, _, err = lstmkit(capsys, "train", "--run-dir", run, "--resume", "--model", "gru")
    one_line_error(code, err, "the run's model name is 'lstm', not 'gru'")
    code, _, err = lstmkit(capsys, "train", "--resume")
    one_line_error(code, err, "--resume needs --run-dir")
    assert all(torch.equal(before[k], v) for k, v in weights(run).items()), "a refused command changed the weights"


def test_resume_through_the_cli_equals_one_run(tmp_path, capsys):
    """Train 10 steps and stop (checkpoint at 5 kept), delete the last checkpoint, resume: same weights."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    train_tiny(whole, capsys, "--checkpoint-every", 5)
    train_tiny(part, capsys, "--checkpoint-every", 5)
    shutil.rmtree(part / "step-00000010")
    (part / "latest").write_text("step-00000005\n")
    code, _, err = lstmkit(capsys, "train", "--run-dir", part, "--resume", "--quiet")
    assert code == 0, err
    a, b = weights(whole), weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (whole / "metrics.jsonl").read_text() == (part / "metrics.jsonl").read_text()


def test_default_run_folder_never_reuses_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for expected in ("runs/adding-rnn", "runs/adding-rnn-2"):
        code, out, err = lstmkit(capsys, "train", "--model", "rnn", "--task-arg", "length=5", *TINY, "--steps", 2)
        assert code == 0 and f"run folder: {expected}" in out, err


def test_compare_writes_table_json_and_plot(tmp_path, capsys):
    out_dir = tmp_path / "cmp"
    code, out, err = lstmkit(
        capsys,
        "compare",
        "--task",
        "adding",
        "--task-arg",
        "length=10",
        "--models",
        "rnn",
        "lstm",
        "xlstm:m",
        *TINY,
        "--steps",
        6,
        "--out",
        out_dir,
    )
    assert code == 0, err
    assert "| rnn |" in out and "| lstm |" in out and "| xlstm-m |" in out and "Baseline" in out
    assert f"outputs: {out_dir}/results.md" in out
    summary = json.loads((out_dir / "results.json").read_text())
    assert [r["model"] for r in summary["results"]] == ["rnn", "lstm", "xlstm-m"]
    assert all(r["mse"] > 0 and r["parameters"] > 0 and r["step"] == 6 for r in summary["results"])
    png = (out_dir / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1000, 400)
    code, _, err = lstmkit(capsys, "compare", "--models", "lstm", *TINY, "--steps", 2, "--out", out_dir)
    one_line_error(code, err, "is not empty")


def test_compare_same_seed_same_start(tmp_path, capsys):
    """Every model in a comparison sees the same data: the first training batches' losses of a model
    trained alone equal its losses inside the comparison."""
    lstmkit(
        capsys,
        "compare",
        "--task-arg",
        "length=8",
        "--models",
        "gru",
        "lstm",
        *TINY,
        "--steps",
        3,
        "--out",
        tmp_path / "c",
    )
    train_tiny(tmp_path / "alone", capsys, "--model", "lstm", "--steps", 3, task=("--task-arg", "length=8"))
    assert (tmp_path / "c" / "lstm" / "metrics.jsonl").read_text() == (tmp_path / "alone" / "metrics.jsonl").read_text()


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["train", "--task", "addition"], ["unknown task 'addition'", "adding, temporal-order"]),
        (["train", "--model", "gpt"], ["unknown model 'gpt'", "rnn, gru, lstm"]),
        (["train", "--task-arg", "size=3"], ["task adding has no argument size", "length=100"]),
        (["train", "--task-arg", "length"], ["is not NAME=VALUE"]),
        (["train", "--hidden-size", "0"], ["hidden_size is 0, expected a positive integer"]),
        (["train", "--task", "mqar", "--task-arg", "length=5"], ["length is 5, expected an integer >= 3"]),
        (["train", "--steps", "0"], ["steps is 0"]),
        (["train", "--device", "tpu"], ["device 'tpu' is not one of cpu, cuda"]),
        (["compare", "--models", "lstm:ms"], ["only xlstm takes a block string"]),
        (["compare", "--models", "xlstm:mx"], ["blocks are letters m"]),
        (["eval", "/no/such/run"], ["no checkpoint in /no/such/run"]),
        (["data", "show", "imdb"], ["unknown dataset 'imdb'", "shakespeare, sentiment"]),
    ],
)
def test_bad_input_is_one_line(argv, needles, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = lstmkit(capsys, *argv)
    one_line_error(code, err, *needles)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("latest")), "nothing trained"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(capsys):
    code, _, err = lstmkit(capsys, "train", "--device", "cuda")
    one_line_error(code, err, "device cuda asked for, but torch finds no CUDA GPU")


def test_bad_checkpoints_are_one_line(tmp_path, capsys):
    lstm, gru = tmp_path / "lstm", tmp_path / "gru"
    train_tiny(lstm, capsys)
    train_tiny(gru, capsys, "--model", "gru")
    step = "step-00000010"
    shutil.copy(gru / step / "model.safetensors", lstm / step / "model.safetensors")
    code, _, err = lstmkit(capsys, "eval", lstm)
    one_line_error(code, err, "is from a different model")
    (gru / step / "model.safetensors").write_bytes(b"not a safetensors file")
    code, _, err = lstmkit(capsys, "eval", gru)
    one_line_error(code, err, "is corrupt")
    (gru / step / "meta.json").write_text("{")
    code, _, err = lstmkit(capsys, "eval", gru)
    one_line_error(code, err, "meta.json is not valid JSON")


def test_generate_from_a_character_model(tmp_path, capsys):
    run = tmp_path / "bard"
    task = ("--task", "shakespeare", "--task-arg", "seq_len=16", "--cache-dir", CACHE)
    train_tiny(run, capsys, "--steps", 5, task=task)
    meta = json.loads((run / "step-00000005" / "meta.json").read_text())
    assert len(meta["vocab"]) == meta["spec"]["vocab_size"] == 83
    argv = ("generate", run, "--prompt", "ROMEO:", "--tokens", 40, "--seed", 3)
    code, first, err = lstmkit(capsys, *argv)
    assert code == 0, err
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 40 + 1
    assert set(first[:-1]) <= set(meta["vocab"])
    assert lstmkit(capsys, *argv)[1] == first, "the same seed gives the same text"
    code, _, err = lstmkit(capsys, "generate", run, "--prompt", "ROMEO ☃ <script>")
    one_line_error(code, err, "characters outside the vocabulary", "☃")
    adding = tmp_path / "adding"
    train_tiny(adding, capsys)
    code, _, err = lstmkit(capsys, "generate", adding)
    one_line_error(code, err, "trained on 'adding'", "character language models")


def test_data_list_show_and_an_unreachable_package(tmp_path, capsys, monkeypatch):
    code, out, _ = lstmkit(capsys, "data", "--cache-dir", CACHE)
    assert code == 0 and "shakespeare" in out and "aeon==1.0.0" in out and str(CACHE) in out.replace("\n", "")
    code, out, _ = lstmkit(capsys, "data", "show", "vowels", "--cache-dir", CACHE)
    assert code == 0 and "vowels: kind classify, 9 outputs, vector inputs of size 12" in out

    def offline(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="ERROR: network is unreachable\n")

    monkeypatch.setattr(fetch.subprocess, "run", offline)
    code, _, err = lstmkit(capsys, "data", "fetch", "vowels", "--cache-dir", tmp_path)
    one_line_error(code, err, "aeon==1.0.0", "pip download")
    code, _, err = lstmkit(capsys, "train", "--task", "vowels", "--cache-dir", tmp_path)
    one_line_error(code, err, "aeon==1.0.0", "pip download")


@pytest.mark.parametrize("verb", ["walkthrough", "gradients", "train", "eval", "compare", "generate", "data"])
def test_every_verb_has_help_with_examples(verb, capsys):
    with pytest.raises(SystemExit) as exited:
        main([verb, "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "examples:" in out and f"lstmkit {verb}" in out


GLOO_CASES = [(("--task-arg", "length=12"), "lstm"), (("--task", "parity", "--task-arg", "max_length=12"), "xlstm")]


@pytest.mark.parametrize(("task", "model"), GLOO_CASES)
def test_two_gloo_processes_equal_one_process(tmp_path, task, model):
    """--nproc 2 (torchrun, gloo): each process takes half of every global batch of 8; the gradients and
    weights after 6 steps equal a single process's on the same batches. Parity adds padded rows of
    different lengths (each process cuts its half of a batch padded to the global longest row)."""
    constant_lr = ["--warmup", 0, "--min-lr-ratio", 1, "--checkpoint-every", 5]
    argv = ["train", *task, "--model", model, "--blocks", "ms", *TINY, "--steps", 6, *constant_lr]
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        command = [str(a) for a in (sys.executable, "-m", "lstmkit", *argv, "--run-dir", tmp_path / name, *extra)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    last_step = load_file(tmp_path / "one" / "step-00000005" / "model.safetensors")
    assert max(float((one[k] - last_step[k]).abs().max()) for k in one) > 2e-3, "a step moves weights by ~lr"
    # The gradients: Adam's running mean of them (exp_avg), per parameter, equal up to float rounding.
    moments = [
        torch.load(tmp_path / n / "step-00000006" / "state.pt", weights_only=True)["optimizer"]["state"]
        for n in ("one", "two")
    ]
    for index, state in moments[0].items():
        torch.testing.assert_close(moments[1][index]["exp_avg"], state["exp_avg"], rtol=1e-4, atol=1e-6)
    # The weights: equal wherever the gradient is above rounding level. Where it is ~0, Adam's g / √v turns
    # the all-reduce's last-bit differences into a visible step (seen: 4e-4 in one sLSTM bias entry).
    names = [name for name, _ in load_run(tmp_path / "one").model.named_parameters()]  # the optimizer's order
    assert len(names) == len(moments[0]) == len(one)
    checked = 0
    for index, state in moments[0].items():
        clear = state["exp_avg"].abs() > 1e-5
        torch.testing.assert_close(two[names[index]][clear], one[names[index]][clear], rtol=1e-5, atol=1e-5)
        checked += int(clear.sum())
    assert checked > 0.5 * sum(w.numel() for w in one.values()), "most weights are compared"
    losses = [
        [
            json.loads(line)["loss"]
            for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()
            if '"train"' in line
        ]
        for n in ("one", "two")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    hidden = [p.name for p in (tmp_path / "two").glob(".*")]
    assert hidden == [".lock"], f"no temporary files left by any rank, only the run's lock file: {hidden}"


def test_loss_shares_make_the_process_average_the_batch_loss():
    """A tag batch whose halves count different numbers of targets (3 and 8): the mean over two processes of
    the gradients of their shares equals the gradient of the whole batch's loss."""
    spec = TaskSpec(name="t", kind="tag", num_outputs=3, vocab_size=3)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, :2], mask[1, :1], mask[2:, :] = True, True, torch.tensor([True, True, True, False, True])
    batch = Batch(x=torch.zeros(4, 5, dtype=torch.long), y=torch.randint(0, 3, (4, 5)), mask=mask)
    logits = torch.randn(4, 5, 3, requires_grad=True)
    (whole,) = torch.autograd.grad(compute_loss(spec, logits, batch), logits)
    halves = [shard(batch, r, 2) for r in (0, 1)]
    counts = [torch.tensor(float(count_targets(spec, h))) for h in halves]
    assert [int(c) for c in counts] == [3, 8]
    average = torch.zeros_like(logits)
    for r, half in enumerate(halves):
        part = logits[2 * r : 2 * r + 2]
        loss = share_of_loss(compute_loss(spec, part, half), counts[r], counts[0] + counts[1], world=2)
        average += torch.autograd.grad(loss, logits)[0] / 2
    torch.testing.assert_close(average, whole)


@pytest.mark.parametrize(("kind", "metric"), [("regress", "mse"), ("classify", "accuracy"), ("tag", "loss")])
def test_comparison_table_names_the_baselines_metric(kind, metric, tmp_path):
    """A classification baseline is the majority class's accuracy, not a loss."""
    from lstmkit.compare import Result, markdown_table

    result = Result("lstm", 10, {"mse": 0.1, "loss": 1.0, "accuracy": 0.7}, 1.0, tmp_path)
    assert markdown_table([result], kind, 0.6).endswith(f"Baseline (trivial predictor): {metric} 0.6\n")


def test_nproc_that_does_not_split_the_batch_is_one_line_before_torchrun(tmp_path, capsys, monkeypatch):
    import lstmkit.cli.train as verbs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(verbs.subprocess, "call", lambda *a, **k: pytest.fail("torchrun was started"))
    code, _, err = lstmkit(capsys, "train", "--nproc", 2, "--batch-size", 3, "--quiet")
    one_line_error(code, err, "--batch-size 3 does not split over --nproc 2 processes evenly")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["train", "--run-dir", "{file}"], ["cannot write {file}: it is a file, expected a folder"]),
        (["train", "--run-dir", "{file}/run"], ["cannot write {file}/run", "is a file"]),
        (["compare", "--models", "rnn", "--out", "{file}"], ["cannot write {file}: it is a file"]),
        (["train", "--run-dir", ""], ["--run-dir is '', expected a folder name"]),
        (["compare", "--out", ""], ["--out is '', expected a folder name"]),
        (["train", "--hidden-size", "200000"], ["hidden_size 200000", "parameters", "of memory"]),
        (["train", "--batch-size", str(10**7)], ["batch_size 10000000 with sequences of 100 steps"]),
        (["compare", "--models", "rnn", "--num-layers", "1000000"], ["num_layers 1000000"]),
        (["train", "--forget-bias", "nan"], ["forget_bias is nan, expected a finite number"]),
        (["train", "--seed", str(10**23)], ["seed is 100000000000000000000000"]),
        (["train", "--lr", "-1", "--clip", "0"], ["lr is -1.0, expected a finite number > 0"]),
    ],
)
def test_outputs_and_sizes_are_checked_before_the_work(argv, needles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine\n")
    place = str(tmp_path / "afile")
    code, _, err = lstmkit(capsys, *[a.replace("{file}", place) for a in argv], "--quiet")
    one_line_error(code, err, *[n.replace("{file}", place) for n in needles])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"], "nothing is created"


def test_eval_checks_its_batch_size(tmp_path, capsys):
    train_tiny(tmp_path / "run", capsys)
    code, _, err = lstmkit(capsys, "eval", tmp_path / "run", "--batch-size", 0)
    one_line_error(code, err, "batch_size is 0")
    code, _, err = lstmkit(capsys, "eval", tmp_path / "run", "--batches", 0)
    one_line_error(code, err, "--batches is 0", "from 1 to 100,000")
