"""What every real task offers an evaluator, and the fitted baselines the tasks share.

The contract, besides `spec` and `batch(batch_size, generator, split)` (lstmkit/tasks/base.py):

    task.split_size(split) -> int                      examples in the split; for a language model (tag) the
                                                       scored positions, i.e. the predicted tokens
    task.iterate(split, batch_size) -> Iterator[Batch] every example of the split exactly once, in a fixed
                                                       order, batch_size at a time (the last batch may be
                                                       smaller), in batch()'s format; no generator, same
                                                       batches on every call
    task.baselines(split) -> dict[str, float]          named baselines, each fitted on the train split only
                                                       (a hyperparameter, where one exists, chosen on valid)
                                                       and scored on `split` in BASELINE_METRIC[kind];
                                                       trivial first, strongest last; cached per split

`spec.baseline` is `baselines("valid")`'s first (trivial) entry.

Fits here are deterministic (float64, no random start) and take seconds on a CPU:

    logistic regression   p(y | φ) = softmax(W φ + b);  minimise mean_n −log p(y_n | φ_n) + (λ/2) ‖W‖²
                          by L-BFGS (strictly convex in W, so the optimum is unique; the fits along L2_GRID
                          start from W = 0, b = 0 and then each from the previous λ's optimum);
                          φ dense (N, F) or sparse COO (N, F); λ chosen on valid from L2_GRID
    1-NN DTW              the label of the train sequence nearest by dynamic time warping:
                          D[i, j] = ‖a_i − b_j‖² + min(D[i−1, j], D[i, j−1], D[i−1, j−1]),  D[−1, −1] = 0,
                          distance D[T_a − 1, T_b − 1] (one warping path for all dimensions: DTW_D)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.tasks.base import Batch, check_batch_size, check_split

L2_GRID = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
"""The L2 strengths λ tried for a logistic regression, strongest first (ties go to the stronger)."""
LBFGS_STEPS = 500
"""The most L-BFGS iterations a logistic regression fit takes."""
GRADIENT_TOLERANCE = 1e-6
"""A logistic regression fit stops once no gradient component exceeds this."""


class PaddedSplits:
    """`split_size` and `iterate` for a task that keeps each split as one right-padded Batch in `self.data[split]`
    (sentiment, vowels)."""

    data: dict[str, Batch]

    def split_size(self, split: str) -> int:
        check_split(split)
        return len(self.data[split].y)

    def iterate(self, split: str, batch_size: int) -> Iterator[Batch]:
        check_split(split)
        return padded_in_order(self.data[split], batch_size)


def padded_in_order(data: Batch, batch_size: int) -> Iterator[Batch]:
    """The rows of a right-padded dataset (x (N, T[, I]), y (N,), lengths (N,)) in order, batch_size at a time,
    each batch cut to its longest row. Token ids stored narrower (uint8, int32) come back as long, as batch() does."""
    check_batch_size(batch_size, data.x.shape[1])
    for start in range(0, len(data.y), batch_size):
        rows = slice(start, start + batch_size)
        lengths = data.lengths[rows]
        x = data.x[rows, : int(lengths.max())]
        yield Batch(x=x if x.is_floating_point() else x.long(), y=data.y[rows], lengths=lengths)


def majority_accuracy(train_labels: Tensor, labels: Tensor) -> float:
    """Accuracy on `labels` of always answering the most frequent train label (the smallest one on a tie)."""
    majority = int(torch.bincount(train_labels).argmax())
    return float((labels == majority).double().mean())


class Logistic(NamedTuple):
    W: Tensor
    """(F, C) float64 weights."""
    b: Tensor
    """(C,) float64 biases (not penalised)."""
    l2: float
    """The λ it was fitted with."""


def logits(model: Logistic, features: Tensor) -> Tensor:
    """(N, C) = φ W + b, for dense or sparse COO features (N, F)."""
    return features @ model.W + model.b


def fit_logistic(
    features: Tensor, labels: Tensor, num_classes: int, l2: float, start: Logistic | None = None
) -> Logistic:
    """Minimise mean cross-entropy + (λ/2)‖W‖² by L-BFGS (strong Wolfe line search) from `start` (default zero).

    The gradient is written out rather than taken by autograd (sparse autograd is many times slower):
        P = softmax(φ W + b) (N, C),  G = (P − onehot(y)) / N,  ∂W = φᵀ G + λ W,  ∂b = Σ_n G_n
    """
    if not l2 > 0:
        raise ValueError(f"l2 is {l2!r}, expected a number > 0 (it makes the fit unique)")
    phi, phi_t = row_major(features), row_major(features.t())
    onehot = torch.nn.functional.one_hot(labels, num_classes).double()  # (N, C)
    N, F_ = features.shape
    W = torch.zeros(F_, num_classes, dtype=torch.float64) if start is None else start.W.clone()
    b = torch.zeros(num_classes, dtype=torch.float64) if start is None else start.b.clone()
    optimizer = torch.optim.LBFGS(
        [W, b],
        max_iter=LBFGS_STEPS,
        tolerance_grad=GRADIENT_TOLERANCE,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        log_P = torch.log_softmax(phi @ W + b, dim=-1)  # (N, C)
        loss = -(onehot * log_P).sum() / N + 0.5 * l2 * (W * W).sum()
        G = (log_P.exp() - onehot) / N
        W.grad, b.grad = phi_t @ G + l2 * W, G.sum(0)
        return loss

    optimizer.step(closure)
    return Logistic(W, b, l2)


def row_major(matrix: Tensor) -> Tensor:
    """A sparse matrix as CSR (fast products with a dense one), a dense one as it is."""
    if not matrix.is_sparse:
        return matrix
    with warnings.catch_warnings():  # torch marks CSR as beta; its product with a dense matrix is what we use
        warnings.simplefilter("ignore", UserWarning)
        return matrix.coalesce().to_sparse_csr()


def accuracy(model: Logistic, features: Tensor, labels: Tensor) -> float:
    return float((logits(model, features).argmax(-1) == labels).double().mean())


def fit_logistic_on_valid(train: tuple[Tensor, Tensor], valid: tuple[Tensor, Tensor], num_classes: int) -> Logistic:
    """Fit on train (features, labels) for every λ in L2_GRID, each fit starting from the previous (stronger) λ's
    optimum; keep the one most accurate on valid."""
    best, best_accuracy, model = None, -1.0, None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # sparse products: on a shared machine 2 threads ran the fit 30-50x slower than 1
    try:
        for l2 in L2_GRID:
            model = fit_logistic(*train, num_classes, l2, start=model)
            score = accuracy(model, *valid)
            if score > best_accuracy:
                best, best_accuracy = model, score
    finally:
        torch.set_num_threads(threads)
    return best


def sparse_rows(rows: list[list[int]], num_features: int) -> Tensor:
    """A (N, num_features) float64 sparse COO matrix with a 1 at each (n, f) for f in rows[n] (presence)."""
    n = [i for i, row in enumerate(rows) for _ in row]
    f = [j for row in rows for j in row]
    index = torch.tensor([n, f], dtype=torch.long).reshape(2, -1)
    values = torch.ones(index.shape[1], dtype=torch.float64)
    size = (len(rows), num_features)
    return torch.sparse_coo_tensor(index, values, size, check_invariants=True).coalesce()


def dtw_distances(a: Tensor, a_lengths: Tensor, b: Tensor, b_lengths: Tensor) -> Tensor:
    """(Na, Nb) DTW distances (module docstring) between right-padded a (Na, Ta, D) and b (Nb, Tb, D).

    Row i of the table is filled left to right for all pairs at once; a cell only reads cells above and to its
    left, so padding beyond a sequence's length never reaches its distance.
    """
    a, b = a.double(), b.double()
    Na, Ta, _ = a.shape
    Nb, Tb, _ = b.shape
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    above = torch.full((Na, Nb, Tb), float("inf"), dtype=torch.float64)  # D[i-1, :], D[-1, :] = inf
    distance = torch.zeros(Na, Nb, dtype=torch.float64)
    b_squared = (b * b).sum(-1)[None]  # (1, Nb, Tb)
    b_last = (b_lengths - 1).clamp(min=0)[None, :, None].expand(Na, Nb, 1)
    for i in range(Ta):
        a_i = a[:, i]  # (Na, D); ‖a_i − b_j‖² = ‖a_i‖² + ‖b_j‖² − 2 a_i·b_j, one matrix product for all pairs
        cross = (a_i @ b.reshape(Nb * Tb, -1).T).reshape(Na, Nb, Tb)
        cost = ((a_i * a_i).sum(-1)[:, None, None] + b_squared - 2 * cross).clamp(min=0)  # (Na, Nb, Tb)
        row = []
        for j in range(Tb):
            left = row[j - 1] if j else inf
            diagonal = above[:, :, j - 1] if j else (torch.zeros((), dtype=torch.float64) if i == 0 else inf)
            best = torch.minimum(torch.minimum(above[:, :, j], left), diagonal)
            row.append(cost[:, :, j] + best)
        above = torch.stack(row, dim=-1)
        ends = (a_lengths == i + 1)[:, None]  # (Na, 1): the rows whose last frame is i
        distance = torch.where(ends, above.gather(2, b_last)[:, :, 0], distance)
    return distance


def nearest_neighbour_accuracy(train: Batch, data: Batch, chunk: int = 64) -> float:
    """Accuracy on `data` of the label of its DTW-nearest train sequence (the first of equals)."""
    correct = 0
    for start in range(0, len(data.y), chunk):
        rows = slice(start, start + chunk)
        d = dtw_distances(data.x[rows], data.lengths[rows], train.x, train.lengths)  # (chunk, N_train)
        correct += int((train.y[d.argmin(-1)] == data.y[rows]).sum())
    return correct / len(data.y)
