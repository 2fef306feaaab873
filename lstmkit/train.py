"""One training loop, top to bottom (nanoGPT's order): learning rate, evaluate and checkpoint,
forward/backward, clip, step, log.

    from lstmkit.train import TrainConfig, train
    result = train(model, task, TrainConfig(steps=2000), run_dir="runs/adding-lstm")

AdamW with linear warmup then cosine decay to `min_lr_ratio` · lr; gradient clipping by global norm;
evaluation on fixed batches (the same every time) of the "valid" split; a `rich` progress bar with loss,
the task's metric and tokens/s; metrics appended to RUN_DIR/metrics.jsonl; checkpoints every
`checkpoint_every` steps (see `lstmkit.checkpoint`). `resume=True` continues from the newest checkpoint
exactly: model, optimizer, learning-rate step, the data generator and torch's RNG are all restored, so
a run killed and resumed ends with the same weights as one never interrupted. A loss that is not
finite stops training with `TrainingDiverged`; the last good checkpoint stays (the message says when none was
written yet). `curriculum` draws the first steps' batches from easier task arguments and `init_from` starts from
another run's weights (both in `lstmkit.curriculum`).

The run folder (decisions): rank 0 holds its lock (`lstmkit.checkpoint.RunLock`) for the whole run, so a second
writer is refused. A fresh run refuses a folder that holds a checkpoint, and one that holds a training log but
no checkpoint (a run that stopped before its first one): its log is never appended to. `resume=True` on such a
folder starts over from step 0 and rewrites the log from there, which gives the same records. Resuming a finished
run (its checkpoint at step == steps) returns the stored metrics and writes nothing. Every config field is
checked on its own, and the message names it (the CLI flag is the name with dashes).

Under torchrun (a process group is initialised, see `lstmkit.distributed`) the model is wrapped in
DistributedDataParallel, `batch_size` is the global batch split over the processes, and a step equals
the single-process step on that batch; only rank 0 evaluates, logs and writes checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lstmkit.checkpoint import (
    CheckpointError,
    RunLock,
    clean_temporaries,
    load_weights,
    read_checkpoint,
    read_state,
    save_checkpoint,
    write_text_atomic,
)
from lstmkit.curriculum import describe, parse_curriculum, phase_at, phase_tasks, warm_start
from lstmkit.distributed import all_sum, launcher_holds_lock, rank_and_world, shard, share_of_loss
from lstmkit.run_files import Log, check_optimizer_fits, read_records
from lstmkit.tasks.base import compute_loss, compute_metrics, count_targets


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 32
    """Sequences per step."""
    lr: float = 3e-3
    """Peak learning rate."""
    warmup: int = 50
    """Linear warmup steps."""
    min_lr_ratio: float = 0.1
    """The cosine decays to this fraction of lr."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    clip: float = 1.0
    """Clip the global gradient norm to this."""
    eval_every: int = 100
    """Evaluate every this many steps (and at the end)."""
    eval_batches: int = 4
    """Batches of the valid split per evaluation."""
    checkpoint_every: int = 100
    """Checkpoint every this many steps (and at the end)."""
    seed: int = 0
    """Seeds the data generator and torch (dropout); `lstmkit train` also draws the initial weights from it."""
    curriculum: str = ""
    """Easier task arguments first: phases NAME=VALUE[,NAME=VALUE]@STEPS separated by /, then the task as given
    (e.g. max_length=10@2500; see lstmkit.curriculum); '' = none."""
    init_from: str = ""
    """Start from the newest weights of this run folder (or this checkpoint folder) instead of a fresh
    initialisation: a warm start, the optimizer fresh; '' = none."""

    def __post_init__(self) -> None:
        """One check per field, each message naming it (the CLI's flag is the name with dashes: --min-lr-ratio)."""
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "checkpoint_every"):
            _check_int(name, getattr(self, name), 1)
        _check_int("warmup", self.warmup, 0)
        _check_int("seed", self.seed, 0, MAX_SEED)
        _check_real("lr", self.lr, lambda v: v > 0 and math.isfinite(v), "a finite number > 0")
        _check_real("min_lr_ratio", self.min_lr_ratio, lambda v: 0 <= v <= 1, "a number in [0, 1]")
        _check_real("weight_decay", self.weight_decay, lambda v: 0 <= v < math.inf, "a finite number ≥ 0")
        _check_real("clip", self.clip, lambda v: v > 0, "a number > 0 (inf: no clipping)")
        if not isinstance(self.init_from, str):
            raise ValueError(f"init_from is {_shown(self.init_from)}, expected a run folder's path, or ''")
        phased = sum(phase.steps for phase in parse_curriculum(self.curriculum))
        if phased > self.steps:
            raise ValueError(
                f"curriculum is {self.curriculum!r}: its phases last {phased} steps, expected at most "
                f"steps ({self.steps})"
            )


MAX_SEED = 2**63 - 1
"""torch's generators take seeds in [-2^63, 2^64); evaluation seeds its batches with seed + 1,000,003, so seeds
stop well below the top: [0, 2^63)."""


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} is {_shown(value)}, expected an integer ≥ {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} is {_shown(value)}, expected an integer ≤ {maximum} (2^63 - 1)")


def _check_real(name: str, value: object, ok, expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not ok(value):
        raise ValueError(f"{name} is {_shown(value)}, expected {expected}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup to lr over `warmup` steps, then cosine decay to min_lr_ratio · lr at the last step."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    floor = config.min_lr_ratio * config.lr
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def evaluate(model: torch.nn.Module, task, config: TrainConfig, split: str = "valid", device="cpu") -> dict:
    """Mean metrics over `eval_batches` fixed batches of a split (seeded apart from training data)."""
    generator = torch.Generator().manual_seed(config.seed + 1_000_003)
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    with torch.no_grad():
        for _ in range(config.eval_batches):
            batch = _to(task.batch(config.batch_size, generator, split), device)
            for name, value in compute_metrics(task.spec, model(batch.x, batch.lengths), batch).items():
                totals[name] = totals.get(name, 0.0) + value / config.eval_batches
    model.train(was_training)
    return totals


def _to(batch, device):
    return type(batch)(*(None if t is None else t.to(device) for t in batch))


def _rewind_metrics(path: Path, step: int) -> None:
    """On resume, drop the records written after the checkpoint (they will be written again); each line is checked
    (lstmkit.run_files.read_records), and a symlink is refused, never followed."""
    if os.path.lexists(path):
        kept = [record for record in read_records(path) if record["step"] <= step]
        write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in kept))


def train(
    model: torch.nn.Module,
    task,
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    meta: dict | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Train `model` on `task`; returns the last evaluation's metrics (plus "step"; rank 0's under torchrun).

    Rank 0 holds the run folder's lock (lstmkit.checkpoint.RunLock) throughout; a folder that holds a checkpoint
    is refused unless `resume`, and so is one that holds a training log but no checkpoint (a run that stopped
    before its first checkpoint: nothing is appended to its log; `resume` starts it over from step 0, which
    gives the same records again). Resuming a finished run (its checkpoint at step == steps) writes nothing."""
    rank, world = rank_and_world()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} does not split over {world} processes evenly")
    run_dir = Path(run_dir)
    lock = RunLock(run_dir, held_by_launcher=launcher_holds_lock(run_dir)) if rank == 0 else nullcontext()
    with lock:
        if rank == 0:
            clean_temporaries(run_dir)
        return _train(model, task, config, run_dir, resume, meta, device, progress, rank, world)


def _train(
    model,
    task,
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    meta: dict | None,
    device: str,
    progress: bool,
    rank: int,
    world: int,
) -> dict:
    phases = parse_curriculum(config.curriculum)
    tasks = phase_tasks(task, phases)  # one per phase, then the task as given; checked before anything is written
    model.to(device).train()
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    data = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    start, stored = _start(model, optimizer, data, config, run_dir, resume, writer=rank == 0)
    if start == config.steps:  # a finished run: nothing to train, nothing to write
        return {**stored, "step": start}
    if start == 0 and config.init_from:
        meta = {**(meta or {}), "init_from": warm_start(model, config.init_from)}
    outputs = _Outputs(
        model=model,
        optimizer=optimizer,
        data=data,
        task=task,
        config=config,
        run_dir=run_dir,
        meta=meta,
        device=device,
        rank=rank,
    )
    metrics: dict = {}
    with _progress_bar(enabled=progress and rank == 0) as bar:
        job = bar.add_task("train", total=config.steps, completed=start, info="")
        for step in range(start, config.steps):
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if step > start and step % config.eval_every == 0:
                metrics = outputs.evaluate(step)
            if step > start and step % config.checkpoint_every == 0:
                outputs.checkpoint(step, metrics)
            tic = time.perf_counter()
            phase = phase_at(phases, step)
            batch = shard(_to(tasks[phase].batch(config.batch_size, data, "train"), device), rank, world)
            loss = compute_loss(task.spec, net(batch.x, batch.lengths), batch)
            weighted, batch_loss = _over_processes(loss, task.spec, batch, world)
            if not math.isfinite(batch_loss):
                outputs.log.close()
                raise TrainingDiverged(f"the loss became {batch_loss} at step {step}; {_kept(run_dir, config)}")
            optimizer.zero_grad(set_to_none=True)
            weighted.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            tokens_per_s = config.batch_size * batch.x.shape[1] / (time.perf_counter() - tic)
            outputs.log.write({"step": step + 1, "split": "train", "loss": batch_loss, "lr": lr})
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "step")
            where = f"{describe(phases, phase)}  " if phases else ""
            bar.update(job, advance=1, info=f"{where}loss {batch_loss:.4g}  {shown}  {tokens_per_s:,.0f} tok/s")
    metrics = outputs.evaluate(config.steps)
    outputs.log.close()
    outputs.checkpoint(config.steps, metrics)
    return metrics


def _over_processes(loss: torch.Tensor, spec, batch, world: int) -> tuple[torch.Tensor, float]:
    """(the loss to backpropagate, the whole batch's loss): under torchrun this process's loss is weighed by its
    share of the batch's targets, so that the mean over processes is the batch's loss (DDP averages gradients)."""
    if world == 1:
        return loss, float(loss.detach())
    count = torch.tensor(float(count_targets(spec, batch)))
    total = all_sum(count)
    return share_of_loss(loss, count, total, world), float(all_sum(loss.detach().cpu() * count) / total)


class _Outputs:
    """What a run writes while it trains, on rank 0 only: each evaluation (also into the log, metrics.jsonl) and
    each checkpoint, which stores the newest evaluation's metrics. On the other ranks an evaluation is the step
    alone, and nothing is written."""

    def __init__(self, *, model, optimizer, data, task, config: TrainConfig, run_dir: Path, meta, device, rank) -> None:
        self.model, self.optimizer, self.data, self.task, self.config = model, optimizer, data, task, config
        self.run_dir, self.device, self.writer = run_dir, device, rank == 0
        self.meta = {**(meta or {}), "train": asdict(config)}  # what each checkpoint's meta.json holds, with metrics
        self.log = Log(run_dir / "metrics.jsonl" if self.writer else None)

    def evaluate(self, step: int) -> dict:
        if not self.writer:
            return {"step": step}
        result = {"step": step, **evaluate(self.model, self.task, self.config, device=self.device)}
        self.log.write({"step": step, "split": "valid", **result})
        return result

    def checkpoint(self, step: int, metrics: dict) -> None:
        if self.writer:
            rng = {"data": self.data.get_state(), "torch": torch.get_rng_state()}
            save_checkpoint(self.run_dir, step, self.model, self.optimizer, {**self.meta, "metrics": metrics}, rng)


def _progress_bar(enabled: bool) -> Progress:
    """The bar: the step count, loss, the newest evaluation's metrics, tokens/s and the time left."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    return Progress(*columns, disable=not enabled, transient=False)


def _start(
    model, optimizer, data: torch.Generator, config: TrainConfig, run_dir: Path, resume: bool, writer: bool
) -> tuple[int, dict]:
    """The step to start from and the stored metrics: restored from the newest checkpoint when resuming (model,
    optimizer, data generator, torch's RNG), else 0 after the checks on what the folder already holds."""
    log = run_dir / "metrics.jsonl"
    if resume and os.path.lexists(run_dir / "latest"):
        checkpoint = read_checkpoint(run_dir)
        start = checkpoint.meta["step"]
        if start > config.steps:
            raise ValueError(f"the checkpoint in {run_dir} is at step {start}, past steps {config.steps}")
        if start == config.steps:
            return start, checkpoint.meta.get("metrics", {})
        restore(checkpoint.path, model, optimizer, data)
        if writer:
            _rewind_metrics(log, start)
        return start, {}
    if not writer:
        return 0, {}
    check_run_folder(run_dir, resume)
    if resume and os.path.lexists(log) and os.path.getsize(log) > 0:
        _rewind_metrics(log, 0)  # it starts over from step 0 and writes the same records again
    return 0, {}


def check_run_folder(run_dir: Path, resume: bool) -> None:
    """Refuse a folder a fresh run must not write into: one that holds a checkpoint (unless `resume`), a symlinked
    log, a training log without a checkpoint (unless `resume`). Reads only; the CLI calls it before any work."""
    run_dir, log = Path(run_dir), Path(run_dir) / "metrics.jsonl"
    has_checkpoint = os.path.lexists(run_dir / "latest")
    if has_checkpoint and not resume:
        raise ValueError(
            f"run folder {run_dir} already holds a checkpoint; pass --resume to continue it, "
            "or choose another --run-dir"
        )
    if os.path.islink(log):
        raise CheckpointError(f"{log} is a symlink; refused (a run's log is never written through a symlink)")
    if not has_checkpoint and not resume and os.path.lexists(log) and os.path.getsize(log) > 0:
        raise ValueError(
            f"run folder {run_dir} holds a training log (metrics.jsonl) but no checkpoint, from a run "
            "that stopped before its first one; delete the log, or choose another --run-dir"
        )


def restore(folder: Path, model: torch.nn.Module, optimizer, data: torch.Generator) -> None:
    """Load a checkpoint's weights, optimizer state and RNG states (state.pt checked first, lstmkit.run_files)."""
    state = read_state(folder)
    check_optimizer_fits(state, list(model.parameters()), folder)
    load_weights(folder, model)
    try:
        optimizer.load_state_dict(state["optimizer"])
        data.set_state(state["rng"]["data"])
        torch.set_rng_state(state["rng"]["torch"])
    except (ValueError, RuntimeError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise CheckpointError(f"checkpoint {folder} is corrupt: state.pt does not restore ({reason})") from None


def _kept(run_dir: Path, config: TrainConfig) -> str:
    """What is left after a divergence: the last good checkpoint, or none yet."""
    if os.path.lexists(run_dir / "latest"):
        return f"the last good checkpoint is kept in {run_dir}"
    return f"no checkpoint was written yet (the first is due at step {min(config.checkpoint_every, config.steps)})"
