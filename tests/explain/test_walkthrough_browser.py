"""The walkthrough page in a real browser: press "next" and the arrow keys, read the shown numbers back."""

import numpy as np
from PIL import Image

from lstmkit.cli import main
from lstmkit.explain import walkthrough
from lstmkit.explain.numbers import number
from lstmkit.reference import mamba, ssm
from lstmkit.reference.examples import B_F, EXAMPLES, W_F
from tests.browser import open_page


def shown(page, label: str, mode: str, role: str = "value") -> list[float]:
    """The numbers of one row's grid in the visible stage, read from the page as displayed."""
    cells = page.locator(
        f'section.stage:not([hidden]) .row[data-label="{label}"] .panel[data-mode="{mode}"] '
        f'table.grid[data-role="{role}"] td'
    )
    return [float(cell.get_attribute("data-v")) for cell in cells.all()], [cell.inner_text() for cell in cells.all()]


def visible_stage(page) -> int:
    visible = page.locator("section.stage:not([hidden])")
    assert visible.count() == 1
    return int(visible.get_attribute("data-stage"))


def test_lstm_page_steps_through_the_seeds_example(tmp_path, capsys):
    target = tmp_path / "lstm.html"
    assert main(["walkthrough", "--format", "html", "-o", str(target)]) == 0
    hand = walkthrough.build(EXAMPLES["lstm"](), "hand")
    exact = walkthrough.build(EXAMPLES["lstm"](), "exact")
    with open_page(target) as (page, problems):
        assert visible_stage(page) == 1
        assert page.locator("#where").inner_text() == "Stage 1 of 19 · [1] Given"
        assert page.locator("#prev").is_disabled()

        page.click("#next")
        assert visible_stage(page) == 2
        assert page.locator("#where").inner_text() == "Stage 2 of 19 · [2] Initialize (t = 1)"
        assert shown(page, "h0", "hand")[0] == [1.0, 1.0]

        page.keyboard.press("ArrowRight")
        assert visible_stage(page) == 3
        assert shown(page, "pre f1", "hand")[0] == [-4.0, -6.0]  # the seeds' numbers
        terms, _ = shown(page, "pre f1", "hand", "term")  # W_f (2 × 5), [h0, X1] (5), b_f (2), in page order
        assert terms == [*W_F.ravel(), 1.0, 1.0, 2.0, 1.0, 3.0, *B_F]

        page.keyboard.press("ArrowRight")
        assert visible_stage(page) == 4
        values, texts = shown(page, "Forget gate f1", "hand")
        assert values == list(hand.steps[0].f) == [0.0, 0.0] and texts == ["0", "0"]
        values, texts = shown(page, "Forget gate f1", "exact")
        np.testing.assert_array_equal(values, exact.steps[0].f)
        assert texts == [number(v, "exact") for v in exact.steps[0].f]
        assert shown(page, "Input gate i1", "hand")[0] == [1.0, 1.0]

        page.keyboard.press("ArrowLeft")
        assert visible_stage(page) == 3

        for _ in range(4):  # [7] Update hidden state (t = 1): h1 by hand is the seeds' [0.7, 0]
            page.click("#next")
        assert visible_stage(page) == 7
        assert shown(page, "h1", "hand")[0] == [0.7, 0.0]
        np.testing.assert_array_equal(shown(page, "h1", "exact")[0], exact.steps[0].h)

        page.click('.pills button[data-go="19"]')
        assert visible_stage(page) == 19
        assert page.locator("#next").is_disabled()
        assert page.url.endswith("#stage-19")
        np.testing.assert_array_equal(shown(page, "h3", "hand")[0], hand.steps[2].h)
        np.testing.assert_array_equal(shown(page, "h3", "exact")[0], exact.steps[2].h)

        shot = tmp_path / "lstm.png"
        page.screenshot(path=str(shot))
        assert problems == []
    assert Image.open(shot).size == (1200, 900)


def test_mlstm_page_shows_memory_and_retrieval(tmp_path, capsys):
    target = tmp_path / "mlstm.html"
    assert main(["walkthrough", "--cell", "mlstm", "--format", "html", "-o", str(target)]) == 0
    exact = walkthrough.build(EXAMPLES["mlstm"](), "exact")
    hand = walkthrough.build(EXAMPLES["mlstm"](), "hand")
    with open_page(target) as (page, problems):
        page.goto(target.resolve().as_uri() + "#stage-5")  # a link to a stage opens that stage
        assert visible_stage(page) == 5
        assert page.locator("#where").inner_text() == "Stage 5 of 16 · [5] Update memory (t = 1)"
        kv = np.outer(exact.steps[0].k, exact.steps[0].v)
        np.testing.assert_array_equal(shown(page, "k1 v1ᵀ", "exact")[0], kv.ravel())
        np.testing.assert_array_equal(shown(page, "Memory C1", "hand")[0], hand.steps[0].C.ravel())
        np.testing.assert_array_equal(shown(page, "Memory C1", "exact")[0], exact.steps[0].C.ravel())
        page.keyboard.press("ArrowRight")
        np.testing.assert_array_equal(shown(page, "h1", "exact")[0], exact.steps[0].h)
        np.testing.assert_array_equal(shown(page, "q̂1ᵀ n1", "hand")[0], [hand.steps[0].qn])
        page.keyboard.press("End")
        assert visible_stage(page) == 16
        assert problems == []


def test_ssm_page_shows_discretization_and_convolution(tmp_path, capsys):
    target = tmp_path / "ssm.html"
    assert main(["walkthrough", "--cell", "ssm", "--format", "html", "-o", str(target)]) == 0
    exact = walkthrough.build(EXAMPLES["ssm"](), "exact")
    with open_page(target) as (page, problems):
        page.goto(target.resolve().as_uri() + "#stage-3")
        assert visible_stage(page) == 3
        assert page.locator("#where").inner_text() == "Stage 3 of 15 · [3] Discretize (t = 1)"
        assert shown(page, "Ā", "hand") == ([0.6, 0.1], ["0.6", "0.1"])  # exp(ΔA) by hand
        assert shown(page, "Ā", "hand", "source")[0] == [-0.5, -2.3]
        np.testing.assert_array_equal(shown(page, "Ā", "exact")[0], exact.steps[0].A_bar.ravel())
        page.keyboard.press("End")
        assert page.locator("#where").inner_text() == "Stage 15 of 15 · [15] Family resemblance (t = 1..3)"
        page.keyboard.press("ArrowLeft")
        assert visible_stage(page) == 14
        conv = ssm.convolution(EXAMPLES["ssm"]().params, EXAMPLES["ssm"]().xs)
        np.testing.assert_array_equal(shown(page, "K", "exact")[0], conv.kernel.ravel())
        np.testing.assert_allclose(shown(page, "y_conv", "exact")[0], [s.y[0] for s in exact.steps], atol=1e-12)
        assert page.locator(".pills .group", has_text="all t").locator("button").count() == 2
        assert problems == []


def test_mamba_page_shows_the_selection_and_the_matrix_view(tmp_path, capsys):
    target = tmp_path / "mamba.html"
    assert main(["walkthrough", "--cell", "mamba", "--format", "html", "-o", str(target)]) == 0
    hand = walkthrough.build(EXAMPLES["mamba"](), "hand")
    exact = walkthrough.build(EXAMPLES["mamba"](), "exact")
    with open_page(target) as (page, problems):
        page.goto(target.resolve().as_uri() + "#stage-11")
        assert page.locator("#where").inner_text() == "Stage 11 of 15 · [11] Discretize (t = 3)"
        assert shown(page, "Ā3", "hand")[0] == [0.0, 0.0, 0.9, 0.8]  # channel 1 forgets, channel 2 keeps
        page.keyboard.press("ArrowRight")
        note = page.locator("section.stage:not([hidden]) p.note").inner_text()
        assert "channel 1: Δ = 3" in note and "overwritten" in note and "channel 2: Δ = 0.1" in note
        np.testing.assert_array_equal(shown(page, "h3", "exact")[0], exact.steps[2].h.ravel())
        page.keyboard.press("ArrowRight")
        np.testing.assert_array_equal(shown(page, "out3", "hand")[0], hand.steps[2].y_gated)
        page.click('.pills button[data-go="14"]')
        assert page.locator("#where").inner_text() == "Stage 14 of 15 · [14] Matrix view (t = 1..3)"
        view = mamba.matrix_view(EXAMPLES["mamba"]().params, exact.steps)
        np.testing.assert_array_equal(shown(page, "M (channel 2)", "exact")[0], view.matrix[1].ravel())
        np.testing.assert_allclose(shown(page, "y_matrix (channel 2)", "exact")[0], view.y[:, 1], atol=0)
        assert problems == []
