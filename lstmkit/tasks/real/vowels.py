"""Japanese Vowels: which of 9 speakers said "ae"? Variable-length multivariate sequence classification.

Data: M. Kudo, J. Toyama and M. Shimbo, "Multidimensional curve classification using passing-through
regions", Pattern Recognition Letters 20 (1999) (UCI archive). Each series is one utterance: 7 to 29
frames of 12 LPC cepstrum coefficients. The archive's own split: 270 train series (30 per speaker),
370 test series (24 to 88 per speaker).

Source: the `aeon==1.0.0` wheel (8.2 MB, BSD-3), from which we read
`aeon/datasets/data/JapaneseVowels/JapaneseVowels_{TRAIN,TEST}.ts` with `zipfile` and parse the .ts
format with `parse_ts` below -- aeon is never installed. Our valid split is a seeded slice of the
archive's train split: 27 series (10 %) picked by a permutation from torch.Generator seeded 0, leaving 243
to train on; test is the archive's test split, untouched. Coefficients are used as they are (they
already lie in about -2..2).

Baselines (accuracy), fitted on our train split: "majority class"; "1-NN DTW", the label of the nearest
train utterance under dynamic time warping (squared Euclidean frame cost, one path for all 12 coefficients),
the standard yardstick of the time-series classification archives (Bagnall et al. 2018 report 0.95-0.96 on
this test split with all 270 train series); and "mean-std logistic regression" (each utterance summarised by
the mean and standard deviation over its frames of each coefficient, 24 numbers standardised by the train
split's; baselines.py's logistic regression, L2 chosen on valid).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from lstmkit.tasks.base import Batch, TaskSpec, check_batch_size, check_split, sample_padded
from lstmkit.tasks.real.baselines import (
    PaddedSplits,
    accuracy,
    fit_logistic_on_valid,
    majority_accuracy,
    nearest_neighbour_accuracy,
)
from lstmkit.tasks.real.fetch import Package, fetch_package, reading

SOURCE = Package("aeon", "1.0.0", "wheel")
MEMBER = "aeon/datasets/data/JapaneseVowels/JapaneseVowels_{}.ts"
VALID_FRACTION = 0.1
VALID_SEED = 0


class TsData(NamedTuple):
    series: list[Tensor]
    """One (T_n, D) float64 tensor per series (T_n varies)."""
    labels: list[str]
    """The class label of each series, as written in the file."""
    classes: list[str]
    """The labels declared by `@classLabel true ...`, in the file's order."""


def parse_ts(text: str) -> TsData:
    """Parse a .ts file (the sktime/aeon text format) with class labels and no missing values.

    Lines starting with # are comments; @-lines are the header, up to @data; then one series a line:
    its dimensions separated by ":", each a comma-separated list of numbers, then ":" and the class label.
    """
    series, labels, classes = [], [], None
    in_data = False
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            words = line.split()
            key = words[0].lower()
            if key == "@classlabel":
                classes = words[2:] if [w.lower() for w in words[1:2]] == ["true"] else None
            elif key == "@data":
                in_data = True
            continue
        *dims, label = line.split(":")
        values = [[float(v) for v in dim.split(",")] for dim in dims]
        if len({len(v) for v in values}) != 1:
            raise ValueError(f"line {number}: dimensions of different lengths {[len(v) for v in values]}")
        series.append(torch.tensor(values, dtype=torch.float64).T)  # (T, D)
        labels.append(label)
    if classes is None:
        raise ValueError("no '@classLabel true ...' line: the file has no class labels")
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the declared classes {classes}")
    return TsData(series, labels, classes)


def read_vowels(archive: Path) -> dict[str, TsData]:
    """The archive's "TRAIN" and "TEST" files, parsed."""
    with reading(archive), zipfile.ZipFile(archive) as whl:
        return {part: parse_ts(whl.read(MEMBER.format(part)).decode("utf-8")) for part in ("TRAIN", "TEST")}


def pad(series: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad (T_n, D) tensors with zeros: (N, max T_n, D) float32 and lengths (N,) long."""
    lengths = torch.tensor([len(s) for s in series])
    x = torch.zeros(len(series), int(lengths.max()), series[0].shape[1])
    for n, s in enumerate(series):
        x[n, : len(s)] = s
    return x, lengths


def mean_std(data: Batch) -> Tensor:
    """(N, 2D) float64: each series' mean and (population) standard deviation over its valid frames, per dimension."""
    x = data.x.double()
    inside = (torch.arange(x.shape[1]) < data.lengths[:, None])[:, :, None]  # (N, T, 1)
    count = data.lengths[:, None].double()
    mean = (x * inside).sum(1) / count
    var = (((x - mean[:, None]) * inside) ** 2).sum(1) / count
    return torch.cat([mean, var.sqrt()], dim=1)


class Vowels(PaddedSplits):
    """Speaker of an utterance: x (B, T, 12) right padded, lengths (B,), y (B,) in 0..8 (kind "classify").

    A batch is cut to its longest row. The evaluation contract (baselines.py): `split_size`, `iterate` (the
    split's utterances in a fixed order), `baselines` ("majority class", "1-NN DTW", "mean-std logistic
    regression", accuracy); spec.baseline is the valid split's majority-class accuracy.
    """

    def __init__(self, cache_dir: str | Path) -> None:
        parts = read_vowels(fetch_package(SOURCE.name, SOURCE.version, cache_dir, SOURCE.form))
        classes = parts["TRAIN"].classes
        if parts["TEST"].classes != classes:
            raise ValueError(f"train classes {classes} differ from test classes {parts['TEST'].classes}")
        self.classes = classes
        order = torch.randperm(len(parts["TRAIN"].series), generator=torch.Generator().manual_seed(VALID_SEED))
        n_valid = round(VALID_FRACTION * len(order))
        rows = {"train": order[n_valid:].tolist(), "valid": order[:n_valid].tolist()}
        self.data = {s: self._tensors(parts["TRAIN"], r) for s, r in rows.items()}
        self.data["test"] = self._tensors(parts["TEST"], list(range(len(parts["TEST"].series))))
        D = self.data["train"].x.shape[2]
        self._baselines: dict[str, dict[str, float]] = {}
        self._logistic = None
        valid = majority_accuracy(self.data["train"].y, self.data["valid"].y)
        self.spec = TaskSpec(name="vowels", kind="classify", num_outputs=len(classes), input_size=D, baseline=valid)

    def _tensors(self, part: TsData, rows: list[int]) -> Batch:
        x, lengths = pad([part.series[n] for n in rows])
        y = torch.tensor([self.classes.index(part.labels[n]) for n in rows])
        return Batch(x=x, y=y, lengths=lengths)

    def baselines(self, split: str) -> dict[str, float]:
        check_split(split)
        if split not in self._baselines:
            train, data = self.data["train"], self.data[split]
            self._baselines[split] = {
                "majority class": majority_accuracy(train.y, data.y),
                "1-NN DTW": nearest_neighbour_accuracy(train, data),
                "mean-std logistic regression": accuracy(self._mean_std_logistic(), self._summary(split), data.y),
            }
        return dict(self._baselines[split])

    def _summary(self, split: str) -> Tensor:
        """(N, 24) mean-std features, standardised by the train split's mean and std of each."""
        train = mean_std(self.data["train"])
        return (mean_std(self.data[split]) - train.mean(0)) / train.std(0)

    def _mean_std_logistic(self):
        if self._logistic is None:
            train, valid = (
                (self._summary("train"), self.data["train"].y),
                (self._summary("valid"), self.data["valid"].y),
            )
            self._logistic = fit_logistic_on_valid(train, valid, num_classes=len(self.classes))
        return self._logistic

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        check_split(split)
        check_batch_size(batch_size, self.data[split].x.shape[1])
        return sample_padded(self.data[split], batch_size, generator)
