"""Headless Chromium for page tests: Debian's /usr/bin/chromium driven by Playwright (never a downloaded browser).

`make test` installs the `chromium` package when it is missing. Playwright is told where the browser is
(`executable_path`), so it never fetches one of its own.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Without the network flags Chromium keeps trying to reach Google's hosts, which this machine refuses."""


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Chromium is not installed: `make test` installs Debian's chromium package (apt-get install chromium)"
        )
    return path


@contextmanager
def open_page(path: Path, width: int = 1200, height: int = 900):
    """A page showing the file `path`; yields (page, problems): JavaScript errors and non-local requests seen."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(r.url))
            page.goto(path.resolve().as_uri())
            yield page, problems
        finally:
            browser.close()
