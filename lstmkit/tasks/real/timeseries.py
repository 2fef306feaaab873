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

Targets and inputs, `relative=1` (the default): every value of an example is taken relative to its window's
last observed month and divided by one constant, the train months' standard deviation s of one-month
differences:

    x_j = (ppm[t-window+j] - ppm[t-1]) / s      j = 0..window-1  (so x_{window-1} = 0)
    y_k = (ppm[t+k] - ppm[t-1]) / s             k = 0..horizon-1;   ppm = s * y + ppm[t-1]  (`to_ppm`)

Why: CO2 rises, so valid and test lie above every train month (train 313.4..359.5 ppm, test up to 373.8);
with absolute inputs (`relative=0`) a model would have to extrapolate to values it never saw, and the LSTM and
xLSTM ended far worse than persistence on test (the README has the figures). Relative to the last month, a
window at 370 ppm looks like one at 320 ppm: what is left to learn -- the seasonal swing and the local slope --
is the same in every split.
Differences rather than ratios (x / ppm[t-1]) because the seasonal swing is additive, about 6 ppm at every
level; one constant s rather than each window's own spread, so one ppm weighs the same in every example and
the MSE is comparable across windows and splits. s is 1.17 ppm, so inputs are O(1), and persistence
(repeat the last month) predicts 0.

`relative=0` keeps the old absolute form: x and y normalised by the train months' mean and std
(`task.mean`, `task.std`, 333.37 and 12.93 ppm). Either way no statistic of valid or test leaks in.

Baselines, in the task's target space: "persistence" (the last observed month, i.e. 0 when relative);
"seasonal naive" (the value 12 months before each predicted month, or 24 when the horizon reaches past 12:
the latest observed month of the same season); "linear AR" (y = [x, 1] beta, beta by least squares over the
train examples; with relative inputs it is the same model at every level, so it extrapolates).
An example needs 12 months of history for the seasonal baseline, so the first one predicts month
max(window, 12).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lstmkit.tasks.base import MAX_LENGTH, Batch, TaskSpec, check_batch_size, check_int, check_split
from lstmkit.tasks.real.fetch import Package, fetch_package, reading

SOURCE = Package("statsmodels", "0.14.5", "wheel")
MEMBER = "statsmodels/datasets/co2/co2.csv"
SPLIT_FRACTIONS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}
SEASON = 12
"""Months in a year: the seasonal-naive lag."""


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

    Kind "regress", in the space the module docstring defines (`relative`: 1 relative to the window's last
    month, 0 absolute); `to_ppm(prediction, last)` maps back. The evaluation contract (baselines.py):
    `split_size`, `iterate` (examples in time order), `baselines` ("persistence", "seasonal naive",
    "linear AR", MSE); spec.baseline is the valid split's persistence MSE.
    """

    def __init__(self, cache_dir: str | Path, window: int = 48, horizon: int = 1, relative: int = 1) -> None:
        check_int("window", window, 1, MAX_LENGTH)
        check_int("horizon", horizon, 1, MAX_LENGTH)
        check_int("relative", relative, 0, 1)
        self.months, ppm = read_monthly_co2(fetch_package(SOURCE.name, SOURCE.version, cache_dir, SOURCE.form))
        self.ppm = torch.from_numpy(ppm)  # (N,) float64
        N = len(ppm)
        self.bounds = {s: (int(a * N), int(b * N)) for s, (a, b) in SPLIT_FRACTIONS.items()}
        train = self.ppm[: self.bounds["train"][1]]
        self.mean, self.std = float(train.mean()), float(train.std())
        self.scale = float(train.diff().std())
        """s: the train months' standard deviation of one-month differences (ppm)."""
        self.window, self.horizon, self.relative = window, horizon, relative
        for split in SPLIT_FRACTIONS:
            lo, hi = self.first_targets(split)
            if hi <= lo:
                raise ValueError(f"window {window} and horizon {horizon} leave no example in the {split} split")
        self._baselines: dict[str, dict[str, float]] = {}
        self._ar: Tensor | None = None
        valid = self.baselines("valid")["persistence"]
        self.spec = TaskSpec(name="timeseries", kind="regress", num_outputs=horizon, input_size=1, baseline=valid)

    def first_targets(self, split: str) -> tuple[int, int]:
        """The range [lo, hi) of an example's first predicted month for this split."""
        check_split(split)
        a, b = self.bounds[split]
        return max(a, self.window, SEASON), b - self.horizon + 1

    def from_ppm(self, values: Tensor, last: Tensor) -> Tensor:
        """ppm (B, K) -> the task's space: (values - last) / s when relative, else (values - mean) / std."""
        if self.relative:
            return (values - last[:, None]) / self.scale
        return (values - self.mean) / self.std

    def to_ppm(self, prediction: Tensor, last: Tensor) -> Tensor:
        """A prediction (B, horizon) in the task's space -> ppm, given each example's last observed month
        `last` (B,) in ppm (`last_observed`; unused when relative=0)."""
        if self.relative:
            return prediction.double() * self.scale + last[:, None].double()
        return prediction.double() * self.std + self.mean

    def last_observed(self, split: str) -> Tensor:
        """(split_size,) float64 ppm of each example's last input month, in `iterate`'s order."""
        return self.ppm[torch.arange(*self.first_targets(split)) - 1]

    def _windows(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """float64 x (B, window) and y (B, horizon) in the task's space for the first predicted months t (B,)."""
        last = self.ppm[t - 1]
        x = self.from_ppm(self.ppm[t[:, None] + torch.arange(-self.window, 0)], last)
        y = self.from_ppm(self.ppm[t[:, None] + torch.arange(self.horizon)], last)
        return x, y

    def examples(self, t: Tensor) -> Batch:
        """The examples whose first predicted month is t (B,): x from ppm[t-window:t], y from ppm[t:t+horizon]."""
        x, y = self._windows(t)
        return Batch(x=x.float()[:, :, None], y=y.float())

    def split_examples(self, split: str) -> Batch:
        """Every example of the split, in time order."""
        return self.examples(torch.arange(*self.first_targets(split)))

    def split_size(self, split: str) -> int:
        lo, hi = self.first_targets(split)
        return hi - lo

    def iterate(self, split: str, batch_size: int) -> Iterator[Batch]:
        """The split's examples in time order, batch_size at a time."""
        check_batch_size(batch_size, self.window + self.horizon)
        for t in torch.arange(*self.first_targets(split)).split(batch_size):
            yield self.examples(t)

    def baselines(self, split: str) -> dict[str, float]:
        """MSE on the split's targets (as the batches hold them) of persistence, seasonal naive and linear AR."""
        if split not in self._baselines:
            t = torch.arange(*self.first_targets(split))
            last = self.ppm[t - 1]
            x, y = self._windows(t)
            k = torch.arange(self.horizon)
            seasonal = self.ppm[t[:, None] + k - SEASON * (k // SEASON + 1)]  # (B, horizon)
            predictions = {
                "persistence": self.from_ppm(last[:, None].expand(-1, self.horizon), last),
                "seasonal naive": self.from_ppm(seasonal, last),
                "linear AR": with_bias(x) @ self._linear_ar(),
            }
            target = y.float().double()
            self._baselines[split] = {name: float(((p - target) ** 2).mean()) for name, p in predictions.items()}
        return dict(self._baselines[split])

    def _linear_ar(self) -> Tensor:
        """beta (window + 1, horizon): least squares of y on [x, 1] over the train examples (minimum norm)."""
        if self._ar is None:
            x, y = self._windows(torch.arange(*self.first_targets("train")))
            beta, *_ = np.linalg.lstsq(with_bias(x).numpy(), y.numpy(), rcond=None)
            self._ar = torch.from_numpy(beta)
        return self._ar

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        lo, hi = self.first_targets(split)
        check_batch_size(batch_size, self.window + self.horizon)
        return self.examples(torch.randint(lo, hi, (batch_size,), generator=generator))


def with_bias(x: Tensor) -> Tensor:
    """(B, F) -> (B, F + 1) with a column of ones."""
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
