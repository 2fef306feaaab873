"""The adding problem: add the two marked numbers of a long sequence, and ignore all the others.

Source: Hochreiter & Schmidhuber 1997 ("Long short-term memory", experiment 4), in the variant of
Le, Jaitly & Hinton 2015 ("A simple way to initialize recurrent networks of rectified linear units") and
Arjovsky, Shah & Bengio 2016 (unitary RNNs): values in [0, 1] and a plain sum as the target. The original
draws values in [-1, 1], puts the first marker in the first 10 steps and asks for 0.5 + (X1 + X2) / 4.

    x  (B, T, 2) float32, T = length.
       x[..., 0]: the values, i.i.d. U[0, 1].
       x[..., 1]: the markers, 0 everywhere except exactly two 1s: one at a uniform position in the
                  first half [0, T // 2), one at a uniform position in the second half [T // 2, T).
    y  (B, 1) float32: the sum of the two marked values.
    lengths, mask: None (every row has length T).

kind "regress", input_size 2, num_outputs 1. All splits draw from the same distribution.

Baseline: always predicting 1.0 = E[X1 + X2] gives MSE E[(X1 + X2 - 1)^2] = Var(X1 + X2) = 2 · 1/12 = 1/6
≈ 0.167 (the variance of U[0, 1] is 1/12); a model must go below it to have learned anything.
"""

from __future__ import annotations

import torch

from lstmkit.tasks.base import MAX_LENGTH, Batch, TaskSpec, check_batch_size, check_int, check_split

BASELINE_MSE = 1 / 6
"""MSE of always predicting 1.0: Var(X1 + X2) with X1, X2 ~ U[0, 1] independent."""


class AddingProblem:
    """Sequences of `length` (value, marker) pairs; the target is the sum of the two marked values."""

    def __init__(self, *, length: int = 100) -> None:
        check_int("length", length, 2, MAX_LENGTH)
        self.length = length
        self.spec = TaskSpec(name="adding", kind="regress", num_outputs=1, input_size=2, baseline=BASELINE_MSE)

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        check_batch_size(batch_size, self.length)
        check_split(split)
        B, T = batch_size, self.length
        half = T // 2
        values = torch.rand(B, T, generator=generator)  # (B, T)
        first = torch.randint(0, half, (B,), generator=generator)  # (B,) in [0, T//2)
        second = torch.randint(half, T, (B,), generator=generator)  # (B,) in [T//2, T)
        rows = torch.arange(B)
        markers = torch.zeros(B, T)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x = torch.stack([values, markers], dim=-1)  # (B, T, 2)
        y = (values[rows, first] + values[rows, second])[:, None]  # (B, 1)
        return Batch(x=x, y=y)
