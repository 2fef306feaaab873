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
finite stops training with `TrainingDiverged`; the last good checkpoint stays.

Under torchrun (a process group is initialised, see `lstmkit.distributed`) the model is wrapped in
DistributedDataParallel, `batch_size` is the global batch split over the processes, and a step equals
the single-process step on that batch; only rank 0 evaluates, logs and writes checkpoints.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lstmkit.checkpoint import load_weights, read_checkpoint, save_checkpoint, write_text_atomic
from lstmkit.distributed import all_sum, rank_and_world, shard, share_of_loss
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

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)!r}, expected a positive integer")
        if not self.lr > 0 or self.warmup < 0 or not 0 <= self.min_lr_ratio <= 1 or not self.clip > 0:
            raise ValueError("expected lr > 0, warmup ≥ 0, 0 ≤ min_lr_ratio ≤ 1 and clip > 0")


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
    """On resume, drop the records written after the checkpoint (they will be written again)."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def train(model: torch.nn.Module, task, config: TrainConfig, run_dir: str | Path, resume: bool = False,
          meta: dict | None = None, device: str = "cpu", progress: bool = True) -> dict:  # fmt: skip
    """Train `model` on `task`; returns the last evaluation's metrics (plus "step"; rank 0's under torchrun)."""
    rank, world = rank_and_world()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} does not split over {world} processes evenly")
    writer = rank == 0
    run_dir = Path(run_dir)
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
    model.to(device).train()
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    data = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    meta = {**(meta or {}), "train": asdict(config)}
    start = 0
    if resume and (run_dir / "latest").exists():
        checkpoint = read_checkpoint(run_dir)
        load_weights(checkpoint.path, model)
        optimizer.load_state_dict(checkpoint.state["optimizer"])
        data.set_state(checkpoint.state["rng"]["data"])
        torch.set_rng_state(checkpoint.state["rng"]["torch"])
        start = checkpoint.meta["step"]
        if writer:
            _rewind_metrics(run_dir / "metrics.jsonl", start)
    log = Log(run_dir / "metrics.jsonl" if writer else None)
    metrics: dict = {}

    def checkpoint_now(step: int) -> None:
        if writer:
            rng = {"data": data.get_state(), "torch": torch.get_rng_state()}
            save_checkpoint(run_dir, step, model, optimizer, {**meta, "metrics": metrics}, rng)

    def evaluate_now(step: int) -> dict:
        if not writer:
            return {"step": step}
        result = {"step": step, **evaluate(model, task, config, device=device)}
        log.write({"step": step, "split": "valid", **result})
        return result

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, disable=not (progress and writer), transient=False) as bar:
        job = bar.add_task("train", total=config.steps, completed=start, info="")
        for step in range(start, config.steps):
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if step > start and step % config.eval_every == 0:
                metrics = evaluate_now(step)
            if step > start and step % config.checkpoint_every == 0:
                checkpoint_now(step)
            tic = time.perf_counter()
            batch = shard(_to(task.batch(config.batch_size, data, "train"), device), rank, world)
            loss = compute_loss(task.spec, net(batch.x, batch.lengths), batch)
            weighted, batch_loss = loss, float(loss.detach())
            if world > 1:  # weigh by this process's share of the targets: the mean over processes is the batch's loss
                count = torch.tensor(float(count_targets(task.spec, batch)))
                total = all_sum(count)
                weighted = share_of_loss(loss, count, total, world)
                batch_loss = float(all_sum(loss.detach().cpu() * count) / total)
            if not math.isfinite(batch_loss):
                log.close()
                raise TrainingDiverged(f"the loss became {batch_loss} at step {step}; the last good checkpoint is "
                                       f"kept in {run_dir}")  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            weighted.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            tokens_per_s = config.batch_size * batch.x.shape[1] / (time.perf_counter() - tic)
            log.write({"step": step + 1, "split": "train", "loss": batch_loss, "lr": lr})
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "step")
            bar.update(job, advance=1, info=f"loss {batch_loss:.4g}  {shown}  {tokens_per_s:,.0f} tok/s")
    metrics = evaluate_now(config.steps)
    log.close()
    checkpoint_now(config.steps)
    return metrics


class Log:
    """metrics.jsonl, one JSON record per line, flushed as written; a no-op on ranks other than 0."""

    def __init__(self, path: Path | None) -> None:
        self.file = path.open("a") if path is not None else None

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
