"""The seeds' walkthrough: numbered stages of rows built from reference traces, as text, Markdown, JSON or a page.

stages.py         build(example, mode) -> Walkthrough: the stages of every step of the RNN, GRU and LSTM;
                  trace(example, rounding), the reference's steps; ALL_STEPS, the t of a whole-sequence stage
xlstm_stages.py   the sLSTM's and the mLSTM's stages
ssm_stages.py     the diagonal SSM's and Mamba's stages, then their convolution and matrix views
rows.py           a row: a labelled value and, when computed, the formula and the numbers it came from
as_text.py        a Walkthrough as rich text, Markdown or JSON
as_page.py        a Walkthrough (hand and exact side by side) as one self-contained web page
example_file.py   a user's own example (`lstmkit walkthrough --spec FILE.json`): read, checked, written
"""

from lstmkit.explain.walkthrough.rows import Row
from lstmkit.explain.walkthrough.stages import ALL_STEPS, RUN, SEED_TYPO, Stage, Walkthrough, build, trace

__all__ = ["ALL_STEPS", "RUN", "SEED_TYPO", "Row", "Stage", "Walkthrough", "build", "trace"]
