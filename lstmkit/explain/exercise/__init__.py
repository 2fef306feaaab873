"""A fresh by-hand exercise: a small random example with friendly numbers, its worksheet and its answer key.

problem.py   make(cell, seed, ...) -> Exercise: the example drawn, checked not to be dull, its walkthrough
sheets.py    an Exercise as a worksheet and an answer key, in Markdown and HTML
"""

from lstmkit.explain.exercise.problem import (
    CELLS,
    GATED,
    MAX_SIZE,
    MAX_STEPS,
    Exercise,
    is_dull,
    make,
    random_example,
    spec_text,
)

__all__ = ["CELLS", "GATED", "MAX_SIZE", "MAX_STEPS", "Exercise", "is_dull", "make", "random_example", "spec_text"]
