"""Remake the README's pictures (`make screenshots`): the walkthrough page as Chromium shows it, and what a
small character LSTM does inside, both from real runs of lstmkit.

    docs/walkthrough-page.png    `lstmkit walkthrough --format html`, stage [4] (gates, t = 1), 1100 × 760
    docs/mamba-selection.png     `lstmkit walkthrough --cell mamba --format html`, stage [11] (Discretize, t = 3:
                                 the selection), 1100 × 1460 shrunk to 900 wide
    docs/explain-gates.png       `lstmkit explain` of an LSTM trained on Shakespeare (hidden 64, 1,500 steps),
                                 its gates and cell state over a line of Romeo and Juliet
    docs/explain-cell.png        the same run: one cell's tanh(c) over a passage of the test split

Training the model takes about two minutes on 2 cores; runs/docs-shakespeare is reused when it exists.
Pictures are shrunk to at most 900 pixels wide and saved as 256-colour PNGs to keep the repository small.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import open_page  # noqa: E402  (the page tests' Chromium, never a downloaded browser)

from lstmkit.cli import main  # noqa: E402

RUN = ROOT / "runs" / "docs-shakespeare"
CACHE = ROOT / ".cache" / "lstmkit-test"


def save_small(source: Path, target: Path, width: int = 900) -> None:
    image = Image.open(source).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size // 1024} KB)")


def walkthrough_page(work: Path) -> None:
    page_file = work / "walkthrough.html"
    assert main(["walkthrough", "--format", "html", "-o", str(page_file)]) == 0
    with open_page(page_file, 1100, 760) as (page, problems):
        page.goto(page_file.as_uri() + "#stage-4")
        page.screenshot(path=str(work / "page.png"))
        assert problems == [], problems
    save_small(work / "page.png", ROOT / "docs" / "walkthrough-page.png", width=1100)


def mamba_page(work: Path) -> None:
    page_file = work / "mamba.html"
    assert main(["walkthrough", "--cell", "mamba", "--format", "html", "-o", str(page_file)]) == 0
    with open_page(page_file, 1100, 1460) as (page, problems):
        page.goto(page_file.as_uri() + "#stage-11")
        page.screenshot(path=str(work / "mamba.png"))
        assert problems == [], problems
    save_small(work / "mamba.png", ROOT / "docs" / "mamba-selection.png")


def explain_pictures(work: Path) -> None:
    if not (RUN / "latest").exists():
        argv = [
            "train",
            "--task",
            "shakespeare",
            "--model",
            "lstm",
            "--hidden-size",
            "64",
            "--steps",
            "1500",
            "--run-dir",
            str(RUN),
            "--cache-dir",
            str(CACHE),
        ]
        assert main(argv) == 0
    line = work / "line"
    assert (
        main(
            [
                "explain",
                str(RUN),
                "--text",
                "ROMEO:\nBut soft, what light through yonder window breaks?",
                "-o",
                str(line),
            ]
        )
        == 0
    )
    save_small(line / "layer0-gates.png", ROOT / "docs" / "explain-gates.png")
    passage = work / "passage"
    assert main(["explain", str(RUN), "--cache-dir", str(CACHE), "-o", str(passage)]) == 0
    save_small(next(passage.glob("layer0-cell*.png")), ROOT / "docs" / "explain-cell.png")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        walkthrough_page(Path(folder))
        mamba_page(Path(folder))
        explain_pictures(Path(folder))
