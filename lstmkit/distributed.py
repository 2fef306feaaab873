"""Data-parallel training: N processes, each with a copy of the model and a slice of every batch.

    lstmkit train --nproc 2 --task adding --model lstm      # one machine: lstmkit starts torchrun itself
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --master-port 29500 --nproc-per-node 4 \\
        -m lstmkit train --task adding --model lstm --run-dir runs/big      # the same on every machine

Backend: gloo on CPU, nccl on CUDA (one GPU per process, by LOCAL_RANK).

Exactness. Every process draws the *global* batch from the same seeded generator and keeps its rows
[r·b, (r+1)·b), b = B / N. DistributedDataParallel averages gradients over processes, so each process
weighs its loss by N · n_r / n (n_r its counted targets, n the batch's): the mean over processes is then
Σ_r n_r·loss_r / n, the loss of the whole batch, and one step equals a single-process step on it.
Only rank 0 writes checkpoints, logs and the progress bar; every rank reads a checkpoint to resume.

The run folder's lock. `lstmkit train --nproc N` takes the run folder's lock (lstmkit.checkpoint.RunLock) in the
launching process and holds it until torchrun returns; it names the folder in LAUNCHER_LOCK in torchrun's
environment, and rank 0 then finds the lock taken by its launcher instead of refusing (or waiting: the lock is
never waited for). Started by torchrun directly (several machines), rank 0 takes the lock itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from lstmkit.tasks.base import Batch


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: str) -> str:
    """Join the process group torchrun describes; returns this process's device (cuda:LOCAL_RANK on GPUs)."""
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return f"cuda:{local}"
    dist.init_process_group("gloo")
    return device


def finish(completed: bool) -> None:
    """Leave the process group, after waiting for every process when training completed (rank 0 writes the
    last checkpoint; after an error the others may never arrive). Without this, gloo's threads can outlive
    the interpreter and a process dies at exit with "terminate called" (SIGABRT)."""
    if dist.is_available() and dist.is_initialized():
        if completed:
            dist.barrier()
        dist.destroy_process_group()


LAUNCHER_LOCK = "LSTMKIT_LAUNCHER_LOCK"
"""The environment variable in which `lstmkit train --nproc N` names (real path) the run folder whose lock it holds."""


def launcher_holds_lock(run_dir: str | Path) -> bool:
    """Whether this process is a rank started by a launcher that holds the lock of `run_dir`."""
    return launched_by_torchrun() and os.environ.get(LAUNCHER_LOCK) == os.path.realpath(run_dir)


def launch_environment(run_dir: str | Path) -> dict[str, str]:
    """torchrun's environment: this one, plus LAUNCHER_LOCK naming `run_dir` (whose lock the caller holds)."""
    return {**os.environ, LAUNCHER_LOCK: os.path.realpath(run_dir)}


def launch_command(nproc: int, argv: list[str]) -> list[str]:
    """torchrun on this machine with `nproc` processes, each running `lstmkit` with `argv`."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "lstmkit",
        *argv,
    ]


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(batch: Batch, rank: int, world: int) -> Batch:
    """Rows [rank·b, (rank+1)·b) of a batch of B = world · b rows."""
    b = batch.x.shape[0] // world
    rows = slice(rank * b, (rank + 1) * b)
    return Batch(*(None if t is None else t[rows] for t in batch))


def share_of_loss(loss: torch.Tensor, count: torch.Tensor, total: torch.Tensor, world: int) -> torch.Tensor:
    """The loss this process backpropagates: world · n_r / n · loss_r (see the module docstring)."""
    return loss * (world * count / total).to(loss.device)


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum over processes (the value itself in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.clone()
        dist.all_reduce(value)
    return value
