"""Small tasks with a fixed set of examples per split, as the real datasets have (split_size, iterate, baselines),
and a tiny causal model for them: what tests of exact evaluation and of the verbs that show baselines run on.

`FiniteTask(kind)` holds N_EXAMPLES[split] random examples of uneven lengths (right padded); a "tag" task also
masks positions at random, so rows count different numbers of targets. Its baselines are computed from its
data (the mean or majority of the training split, scored on the split asked for), never typed.
"""

from __future__ import annotations

import torch
from torch import nn

from lstmkit.tasks.base import Batch, TaskSpec, check_split, tag_mask

N_EXAMPLES = {"train": 13, "valid": 7, "test": 11}
T_MAX = 6
VOCAB = 5


def examples(kind: str, outputs: int, n: int, generator: torch.Generator) -> Batch:
    """n random examples, right padded to T_MAX, of lengths 1..T_MAX; tag: about 60 % of the positions counted."""
    x = torch.randint(0, VOCAB, (n, T_MAX), generator=generator)
    lengths = torch.randint(1, T_MAX + 1, (n,), generator=generator)
    if kind == "regress":
        return Batch(x=x, y=torch.randn(n, outputs, generator=generator), lengths=lengths)
    if kind == "classify":
        return Batch(x=x, y=torch.randint(0, outputs, (n,), generator=generator), lengths=lengths)
    y = torch.randint(0, outputs, (n, T_MAX), generator=generator)
    mask = torch.rand(n, T_MAX, generator=generator) < 0.6
    return Batch(x=x, y=y, lengths=lengths, mask=mask)


class FiniteTask:
    """Token inputs (vocabulary VOCAB), lengths 1..T_MAX; regress: 2 outputs, classify: 3 classes, tag: VOCAB."""

    def __init__(self, kind: str, seed: int = 0) -> None:
        self.kind = kind
        outputs = {"regress": 2, "classify": 3, "tag": VOCAB}[kind]
        generator = torch.Generator().manual_seed(seed)
        self.data = {split: examples(kind, outputs, n, generator) for split, n in N_EXAMPLES.items()}
        self.spec = TaskSpec(
            name=f"finite-{kind}", kind=kind, num_outputs=outputs, vocab_size=VOCAB, baseline=self._trivial("valid")
        )

    def split_size(self, split: str) -> int:
        check_split(split)
        data = self.data[split]
        return int(tag_mask(data).sum()) if self.spec.kind == "tag" else len(data.y)

    def iterate(self, split: str, batch_size: int):
        check_split(split)
        data = self.data[split]
        for start in range(0, len(data.y), batch_size):
            rows = slice(start, start + batch_size)
            width = int(data.lengths[rows].max())  # cut to the longest row of the batch, as real tasks do
            y = data.y[rows, :width] if self.spec.kind == "tag" else data.y[rows]
            mask = None if data.mask is None else data.mask[rows, :width]
            yield Batch(x=data.x[rows, :width], y=y, lengths=data.lengths[rows], mask=mask)

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        data = self.data[split]
        rows = torch.randint(0, len(data.y), (batch_size,), generator=generator)
        return Batch(*(None if t is None else t[rows] for t in data))

    def _trivial(self, split: str) -> float:
        """regress: MSE of the training mean; classify: accuracy of the training majority; tag: the loss of the
        training split's token frequencies."""
        train, data = self.data["train"], self.data[split]
        if self.kind == "regress":
            return float(((data.y - train.y.mean(0)) ** 2).mean())
        if self.kind == "classify":
            return float((data.y == train.y.mode().values).float().mean())
        counts = torch.bincount(train.y[tag_mask(train)], minlength=VOCAB).double() + 1
        return float(-(counts / counts.sum()).log()[data.y[tag_mask(data)]].mean())

    def baselines(self, split: str) -> dict[str, float]:
        check_split(split)
        return {"trivial": self._trivial(split), "half of trivial": self._trivial(split) / 2}


class CausalModel(nn.Module):
    """y_t = W · mean(e(x_1..x_t)) + b: causal, so padding never changes a valid position; the sequence output is
    the last valid step's (regress, classify) or every step's (tag)."""

    def __init__(self, spec: TaskSpec, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, 4)
        self.out = nn.Linear(4, spec.num_outputs)

    def forward(self, x, lengths=None):
        e = self.embed(x).cumsum(1) / torch.arange(1, x.shape[1] + 1)[:, None]  # (B, T, 4)
        y = self.out(e)  # (B, T, O)
        if self.spec.kind == "tag":
            return y
        last = (lengths if lengths is not None else torch.full((x.shape[0],), x.shape[1])) - 1
        return y[torch.arange(x.shape[0]), last]


class GeneratedTask:
    """A synthetic task in miniature: fresh random examples on every call (no split_size, iterate or baselines)."""

    def __init__(self, kind: str = "classify", baseline: float | None = 1 / 3) -> None:
        self.spec = TaskSpec(name=f"generated-{kind}", kind=kind, num_outputs=3, vocab_size=VOCAB, baseline=baseline)

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        check_split(split)
        x = torch.randint(0, VOCAB, (batch_size, T_MAX), generator=generator)
        return Batch(x=x, y=x[:, 0] % 3)
