"""Forecasting monthly atmospheric CO2 at Mauna Loa, March 1958 to December 2001 (526 months, public domain).

Source: the `statsmodels==0.14.5` wheel (about 10 MB; any platform's wheel holds the same file), from
which we read `statsmodels/datasets/co2/co2.csv` with `zipfile` -- statsmodels is never installed. The
file holds weekly means in ppm (Keeling & Whorf, SIO flask/continuous record), 2,284 weeks of which 59
are empty. A month's value is the mean of its non-empty weeks; the five months with none (1958-06,
1958-10, 1964-02..04) are filled by linear interpolation between their neighbours.

Splits are by time: the first 80 % of months are train, the next 10 % valid, the last 10 % test. An
example is a window of `window` months followed by `horizon` months to predict; it belongs to the split
of its first predicted month, and all its predicted months lie in that split. Its input may reach back
into the earlier split: those are past observations, known when the forecast is made.

Both x and y are normalised with the mean and standard deviation of the train months only (so no
statistic of valid or test leaks in). Because CO2 rises, valid and test reach past the train range:
train spans -1.55..2.02 (313.4..359.5 ppm), valid 1.58..2.58, test 2.07..3.13 (up to 373.8 ppm).
`task.mean` and `task.std` (333.37 and 12.93 ppm) undo it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lstmkit.tasks.base import MAX_LENGTH, Batch, TaskSpec, check_batch_size, check_int, check_split
from lstmkit.tasks.real.fetch import Package, fetch_package, reading

SOURCE = Package("statsmodels", "0.14.5", "wheel")
MEMBER = "statsmodels/datasets/co2/co2.csv"
SPLIT_FRACTIONS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}


def read_monthly_co2(archive: Path) -> tuple[list[str], np.ndarray]:
    """Months ("YYYY-MM") and monthly mean CO2 in ppm (float64), empty months linearly interpolated."""
    with reading(archive):
        with zipfile.ZipFile(archive) as whl:
            lines = whl.read(MEMBER).decode("ascii").splitlines()
        if lines[:1] != ["date,co2"]:
            raise ValueError(f"{MEMBER}: header is {lines[:1]}, expected 'date,co2'")
        weeks: dict[str, list[float]] = {}
        for line in lines[1:]:
            date, value = line.split(",")  # date is YYYYMMDD; value may be empty
            month = weeks.setdefault(f"{date[:4]}-{date[4:6]}", [])
            if value:
                month.append(float(value))
    months = sorted(weeks)
    first, last = (int(months[0][:4]), int(months[0][5:])), (int(months[-1][:4]), int(months[-1][5:]))
    every = [f"{y:04d}-{m:02d}" for y in range(first[0], last[0] + 1) for m in range(1, 13) if first <= (y, m) <= last]
    means = np.array([np.mean(weeks[m]) if weeks.get(m) else np.nan for m in every])
    known = ~np.isnan(means)
    t = np.arange(len(every))
    return every, np.interp(t, t[known], means[known])


class Forecast:
    """Predict the next `horizon` months of CO2 from the last `window`: x (B, window, 1), y (B, horizon).

    Kind "regress", both normalised by the train months' mean and std. spec.baseline is the valid-split
    MSE of persistence (predict the last observed month for every horizon step); `persistence_mse(split)`
    gives it for any split.
    """

    def __init__(self, cache_dir: str | Path, window: int = 48, horizon: int = 1) -> None:
        check_int("window", window, 1, MAX_LENGTH)
        check_int("horizon", horizon, 1, MAX_LENGTH)
        self.months, ppm = read_monthly_co2(fetch_package(SOURCE.name, SOURCE.version, cache_dir, SOURCE.form))
        self.ppm = torch.from_numpy(ppm)  # (N,) float64
        N = len(ppm)
        self.bounds = {s: (int(a * N), int(b * N)) for s, (a, b) in SPLIT_FRACTIONS.items()}
        train = self.ppm[: self.bounds["train"][1]]
        self.mean, self.std = float(train.mean()), float(train.std())
        self.series = ((self.ppm - self.mean) / self.std).float()  # (N,)
        self.window, self.horizon = window, horizon
        for split in SPLIT_FRACTIONS:
            lo, hi = self.first_targets(split)
            if hi <= lo:
                raise ValueError(f"window {window} and horizon {horizon} leave no example in the {split} split")
        self.spec = TaskSpec(
            name="timeseries", kind="regress", num_outputs=horizon, input_size=1, baseline=self.persistence_mse("valid")
        )

    def first_targets(self, split: str) -> tuple[int, int]:
        """The range [lo, hi) of an example's first predicted month for this split."""
        check_split(split)
        a, b = self.bounds[split]
        return max(a, self.window), b - self.horizon + 1

    def examples(self, t: Tensor) -> Batch:
        """The examples whose first predicted month is t (B,): x = series[t-window:t], y = series[t:t+horizon]."""
        x = self.series[t[:, None] + torch.arange(-self.window, 0)]  # (B, window)
        y = self.series[t[:, None] + torch.arange(self.horizon)]  # (B, horizon)
        return Batch(x=x[:, :, None], y=y)

    def split_examples(self, split: str) -> Batch:
        """Every example of the split, in time order."""
        return self.examples(torch.arange(*self.first_targets(split)))

    def persistence_mse(self, split: str) -> float:
        batch = self.split_examples(split)
        last = batch.x[:, -1, :]  # (B, 1), broadcast over the horizon
        return float(((batch.y - last) ** 2).mean())

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lo, hi = self.first_targets(split)
        check_batch_size(batch_size, self.window + self.horizon)
        return self.examples(torch.randint(lo, hi, (batch_size,), generator=generator))
