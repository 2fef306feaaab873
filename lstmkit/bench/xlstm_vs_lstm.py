"""The xLSTM's training step against the LSTM's at the same parameter count, on the tasks users train first.

    ratio = LSTM step ms / xLSTM step ms        (below 1: the xLSTM step is slower)

torch.nn.LSTM runs on oneDNN's fused kernel, the practical floor for a recurrent step on a CPU; at these sizes an
xLSTM step is many small operations, so this ratio measures how dispatch-bound our xLSTM is. Both are
`lstmkit.models.SequenceModel`s on the same batch of the same task, trained as `lstmkit train` trains them
(forward, the task's loss, backward, gradient clipping, AdamW); the LSTM's hidden size is the one whose parameter
count is closest to the xLSTM's. Cases:

    demo         adding, T = 100, batch 32, xlstm blocks "ms" at hidden 64 (`make demo`'s third model)
    yardsticks   parity words of 3-40, batch 32, xlstm blocks "ms" at hidden 64 (the formal table's xlstm row)

Target: at most 3x the LSTM's step (ratio >= 1/3), set by issue 20 against the 8.5x that `make demo` showed (68k
against 580k tokens/s).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lstmkit.bench.results import Row
from lstmkit.bench.timing import median_ms, race

FAMILY = "xLSTM training step vs the LSTM of equal parameters"
TARGET = 1 / 3
CASES = {"demo": ("adding", {"length": 100}), "yardsticks": ("parity", {})}
QUICK_CASES = {"demo": ("adding", {"length": 20}), "yardsticks": ("parity", {"max_length": 10})}


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def equal_lstm(xlstm, spec, new_model, ModelConfig):
    """The LSTM SequenceModel whose parameter count is closest to `xlstm`'s."""
    target = parameters(xlstm)
    sizes = {H: parameters(new_model(ModelConfig("lstm", hidden_size=H), spec, 0)) for H in range(8, 513, 4)}
    H = min(sizes, key=lambda h: abs(sizes[h] - target))
    return new_model(ModelConfig("lstm", hidden_size=H), spec, 0)


def step(model, task, batch) -> callable:
    from lstmkit.tasks.base import compute_loss

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def run() -> None:
        loss = compute_loss(task.spec, model(batch.x, batch.lengths), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return run


def rows(quick: bool, repeats: int) -> Iterator[Row]:
    from lstmkit.experiment import make_task, new_model
    from lstmkit.models import ModelConfig

    for case, (name, args) in (QUICK_CASES if quick else CASES).items():
        task = make_task(name, args)
        batch = task.batch(8 if quick else 32, torch.Generator().manual_seed(0))
        xlstm = new_model(ModelConfig("xlstm", hidden_size=64, blocks="ms"), task.spec, 0).train()
        lstm = equal_lstm(xlstm, task.spec, new_model, ModelConfig).train()
        runs = race({"xlstm": step(xlstm, task, batch), "lstm": step(lstm, task, batch)}, repeats)
        yield Row(
            family=FAMILY,
            case=f"{case}: {name} T{batch.x.shape[1]} B{batch.x.shape[0]}, {parameters(xlstm):,} vs "
            f"{parameters(lstm):,} parameters (LSTM hidden {lstm.config.hidden_size})",
            mode="train step",
            ours="lstmkit xlstm ms, hidden 64",
            ours_value=median_ms(runs["xlstm"]),
            peer="lstmkit lstm (torch.nn.LSTM, oneDNN)",
            peer_value=median_ms(runs["lstm"]),
            target=TARGET,
            ours_runs=runs["xlstm"],
            peer_runs=runs["lstm"],
        )
