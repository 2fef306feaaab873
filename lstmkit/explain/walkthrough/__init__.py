"""The seeds' walkthrough: numbered stages of rows built from reference traces, as text, Markdown, JSON or a page.

stages.py         build(example, mode) -> Walkthrough: the stages of every step of the RNN, GRU and LSTM
xlstm_stages.py   the sLSTM's and the mLSTM's stages
rows.py           a row: a labelled value and, when computed, the formula and the numbers it came from
as_text.py        a Walkthrough as rich text, Markdown or JSON
as_page.py        a Walkthrough (hand and exact side by side) as one self-contained web page
example_file.py   a user's own example (`lstmkit walkthrough --spec FILE.json`): read, checked, written
"""

from lstmkit.explain.walkthrough.rows import Row
from lstmkit.explain.walkthrough.stages import RUN, SEED_TYPO, Stage, Walkthrough, build

__all__ = ["RUN", "SEED_TYPO", "Row", "Stage", "Walkthrough", "build"]
