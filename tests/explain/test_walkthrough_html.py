"""The walkthrough page's content, read back from the HTML: every number equals the trace's, for every cell."""

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.explain import walkthrough
from lstmkit.explain.walkthrough.as_page import to_html
from lstmkit.reference.examples import EXAMPLES


class PageNumbers(HTMLParser):
    """{(stage, row label, panel mode, grid role): [data-v values of every grid of that role, in order]}."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: dict[tuple, list[float]] = {}
        self.stage = self.label = self.mode = self.role = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "data-stage" in a:
            self.stage = int(a["data-stage"])
        elif tag == "div" and "data-label" in a:
            self.label = a["data-label"]
        elif tag == "div" and "data-mode" in a:
            self.mode = a["data-mode"]
        elif tag == "table" and "data-role" in a:
            self.role = a["data-role"]
        elif tag == "td" and "data-v" in a:
            self.numbers.setdefault((self.stage, self.label, self.mode, self.role), []).append(float(a["data-v"]))


def page_numbers(html: str) -> dict:
    parser = PageNumbers()
    parser.feed(html)
    return parser.numbers


def evaluate(terms) -> np.ndarray:
    """The equation a row's terms spell, as drawn: 1-D arrays are columns; · ⊙ / bind tighter than +."""
    sums, product = [], None
    for term in terms:
        v = term.value[:, None] if term.value.ndim == 1 else term.value
        if term.op in ("", "+"):
            if product is not None:
                sums.append(product)
            product = v
        elif term.op == "·":
            product = product @ v if product.ndim == 2 and v.ndim == 2 else product * v
        elif term.op == "⊙":
            product = product * v
        elif term.op == "/":
            product = product / v
    return np.ravel(sum(sums) + product if sums else product)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "slstm", "mlstm", "ssm", "mamba"])
def test_every_number_on_the_page_is_the_traces(cell):
    example = EXAMPLES[cell]()
    hand, exact = walkthrough.build(example, "hand"), walkthrough.build(example, "exact")
    numbers = page_numbers(to_html(hand, exact))
    checked = 0
    for mode, w in (("hand", hand), ("exact", exact)):
        for stage in w.stages:
            panel = "given" if stage.t == 0 else mode
            for row in stage.rows:
                got = numbers[(stage.number, row.label, panel, "value")]
                np.testing.assert_array_equal(got, np.ravel(row.value), err_msg=f"{cell} {stage.title} {row.label}")
                if row.terms:
                    expected = np.concatenate([np.ravel(term.value) for term in row.terms])
                    np.testing.assert_array_equal(numbers[(stage.number, row.label, panel, "term")], expected)
                checked += 1
    assert checked > 20


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "slstm", "mlstm", "ssm", "mamba"])
def test_equations_on_the_page_compute_their_values(cell):
    """In exact mode every drawn equation (W · [h, x] + b, f ⊙ c + i ⊙ z, k vᵀ, q̂ᵀC / den, ...) is true."""
    w = walkthrough.build(EXAMPLES[cell](), "exact")
    rows = [row for stage in w.stages for row in stage.rows if row.terms]
    assert len(rows) >= len(w.steps)
    for row in rows:
        np.testing.assert_allclose(evaluate(row.terms), np.ravel(row.value), rtol=1e-12, atol=1e-12, err_msg=row.label)


def test_page_is_self_contained_and_navigable(tmp_path, capsys):
    target = tmp_path / "w.html"
    assert main(["walkthrough", "--cell", "slstm", "--format", "html", "-o", str(target)]) == 0
    html = target.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", html)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)  # nothing loaded from elsewhere
    assert 'id="prev"' in html and 'id="next"' in html and "ArrowRight" in html
    assert html.count('<section class="stage') == len(walkthrough.build(EXAMPLES["slstm"](), "hand").stages)


def test_user_spec_page(tmp_path, capsys):
    spec = tmp_path / "mine.json"
    spec.write_text(
        '{"cell": "rnn", "input_size": 1, "hidden_size": 1, "weights": {"W": [[0.5, 1.0]], "b": [0.25]},'
        ' "inputs": [[1.0], [2.0]]}'
    )
    target = tmp_path / "mine.html"
    assert main(["walkthrough", "--spec", str(spec), "--format", "html", "-o", str(target)]) == 0
    numbers = page_numbers(target.read_text())
    h1 = np.tanh(1.25)
    assert numbers[(4, "h1", "exact", "value")] == [h1]
    assert numbers[(4, "h1", "hand", "value")] == [0.9]  # by hand 1.25 rounds to 1.3 first, and tanh(1.3) = 0.86
