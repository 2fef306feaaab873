"""`lstmkit report`: the pages of tiny real runs, read back and checked against the runs' own artefacts.

Seven runs are trained once per module through `lstmkit train` (6 steps, 8 units, evaluations at steps 3
and 6): an LSTM on the adding problem, an LSTM, an xLSTM "ms" and a Mamba-2 on Shakespeare, an LSTM on
sentiment in a folder whose name is HTML, and a GRU and a Mamba on parity. Each gets its page through
`lstmkit report`. What a page shows is compared with what the run holds: meta.json (configs, step),
metrics.jsonl (the last evaluation), `lstmkit eval` (the test metrics), `lstmkit generate` (the samples),
`explain_run` (the pictures, byte for byte) and the model's own outputs on the test sequences drawn with the
same seed. The real datasets come from the test cache that tests/tasks/test_tasks_real.py fills.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from lstmkit.cli import main
from lstmkit.compare import CURVES_SIZE
from lstmkit.experiment import load_run, make_task
from lstmkit.explain.trained.pictures import SIZES, explain_run
from lstmkit.explain.trained.recording import encode_text, inputs_for
from lstmkit.explain.trained.report import (
    EXAMPLES,
    SAMPLE_TOKENS,
    SAMPLES,
    SHOWN_TOKENS,
    TEMPERATURE,
    report_html,
)
from lstmkit.tasks.base import BASELINE_METRIC, tag_mask
from tests.helpers import CACHE, lstmkit, png_size

TINY = ["--hidden-size", 8, "--batch-size", 8, "--eval-every", 3, "--eval-batches", 1, "--quiet", "--steps", 6]
BARD = ("--task", "shakespeare", "--task-arg", "seq_len=16", "--cache-dir", CACHE)
RUNS = {
    "adding-lstm": ("--task", "adding", "--task-arg", "length=12", "--model", "lstm"),
    "bard-lstm": (*BARD, "--model", "lstm"),
    "bard-xlstm": (*BARD, "--model", "xlstm", "--blocks", "ms"),
    "sentiment-lstm": ("--task", "sentiment", "--task-arg", "max_len=40", "--cache-dir", CACHE, "--model", "lstm"),
    "parity-gru": ("--task", "parity", "--task-arg", "max_length=12", "--model", "gru"),
    "bard-mamba2": (*BARD, "--model", "mamba2", "--state-size", "4"),
    "parity-mamba": ("--task", "parity", "--task-arg", "max_length=12", "--model", "mamba", "--state-size", "4"),
}
FOLDERS = {"sentiment-lstm": "sent<i>ment"}
"""Run folders named otherwise than the run: a name that is HTML must show as text."""
BARD_PROMPT = 'ROMEO: & \'tis "so"\n'
TRICKY = "<script>alert(1)</script> I loved it & more"
PROMPTS = {"bard-lstm": BARD_PROMPT, "sentiment-lstm": TRICKY}
PICTURES = {
    "adding-lstm": {"layer0-gates.png"},
    "bard-lstm": {"layer0-gates.png", "layer0-cell*.png"},
    "bard-xlstm": {"block0-mlstm.png", "block0-memory.png", "block1-slstm.png", "block1-cell*.png"},
    "sentiment-lstm": {"layer0-gates.png", "layer0-cell*.png", "layer0-words.png"},
    "parity-gru": {"layer0-gates.png"},
    "bard-mamba2": {"block0-ssm.png", "block0-delta*.png"},
    "parity-mamba": {"block0-ssm.png"},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    folders = {name: base / FOLDERS.get(name, name) for name in RUNS}
    for name, argv in RUNS.items():
        code = main([str(a) for a in ("train", *argv, *TINY, "--run-dir", folders[name])])
        assert code == 0, f"training {name} failed"
    return folders


@pytest.fixture(scope="module")
def pages(runs) -> dict[str, str]:
    """Each run's page, written by `lstmkit report` to its default place, RUN_DIR/report.html."""
    import contextlib

    texts = {}
    for name, run_dir in runs.items():
        prompt = ["--prompt", PROMPTS[name]] if name in PROMPTS else []
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = main([str(a) for a in ("report", run_dir, "--cache-dir", CACHE, *prompt)])
        assert code == 0, f"report of {name} failed"
        assert stdout.getvalue() == f"report of {run_dir} written to {run_dir / 'report.html'}\n"
        texts[name] = (run_dir / "report.html").read_text()
    return texts


def latest_meta(run_dir: Path) -> dict:
    return json.loads((run_dir / (run_dir / "latest").read_text().strip() / "meta.json").read_text())


def images(page: str) -> dict[str, bytes]:
    """{alt text: PNG bytes} of every <img>; every src must be an embedded PNG."""
    sources = re.findall(r"<img [^>]*>", page)
    found = dict(re.findall(r'<img class="figure" alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page))
    assert len(found) == len(sources), f"an <img> is not an embedded PNG: {sources}"
    return {html.unescape(alt): base64.b64decode(data, validate=True) for alt, data in found.items()}


def table(page: str, name: str) -> dict[str, str]:
    """The rows of <table data-table=name> as {key: the value's text}."""
    body = re.search(rf'<table class="kv" data-table="{name}">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r'<tr data-key="([^"]*)"><th>[^<]*</th><td>(.*?)</td></tr>', body, re.S)
    return {html.unescape(k): html.unescape(re.sub(r"<[^>]+>", "", v)) for k, v in rows}


def metric_cells(page: str) -> dict[str, dict[str, float]]:
    """{split: {metric: exact value}} from the final-metrics table."""
    cells: dict[str, dict[str, float]] = {}
    for metric, row in re.findall(r'<tr data-metric="([^"]+)">(.*?)</tr>', page, re.S):
        for value, split in re.findall(r'data-v="([^"]+)" data-split="(\w+)"', row):
            cells.setdefault(split, {})[metric] = float(value)
    return cells


def example_rows(page: str) -> dict[str, list[tuple[str | None, str]]]:
    """{row label: [(data-v or None, text)] per cell after the label} of the test-examples table."""
    body = re.search(r'<table class="kv examples">(.*?)</table>', page, re.S).group(1)
    rows = {}
    for label, cells in re.findall(r'<tr data-row="([^"]+)"><td>[^<]*</td>(.*?)</tr>', body, re.S):
        found = re.findall(r'<td(?: class="\w+")?(?: data-v="([^"]*)")?>(.*?)</td>', cells, re.S)
        rows[label] = [(html.unescape(v) if v else None, html.unescape(text)) for v, text in found]
    return rows


def samples(page: str) -> list[tuple[int, str, str]]:
    """(seed, prompt, continuation) of every generated sample, unescaped."""
    found = re.findall(r'<pre class="sample" data-seed="(\d+)"><b>(.*?)</b>(.*?)</pre>', page, re.S)
    return [(int(seed), html.unescape(prompt), html.unescape(rest)) for seed, prompt, rest in found]


@pytest.mark.parametrize("name", RUNS)
def test_page_is_self_contained_and_every_png_decodes(pages, name):
    page = pages[name]
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower(), "the page needs no script, and no text may become one"
    assert not re.search(r"https?://|<link|@import|url\(", page), "nothing is fetched"
    pictures = images(page)
    curves = [alt for alt in pictures if alt.startswith("learning curves")]
    assert len(curves) == 1 and png_size(pictures.pop(curves[0])) == CURVES_SIZE
    patterns = [re.compile(p.replace(".", r"\.").replace("*", r"\d+")) for p in PICTURES[name]]
    assert len(pictures) == len(patterns) and all(any(p.fullmatch(a) for a in pictures) for p in patterns), pictures
    for file, data in pictures.items():
        kind = re.fullmatch(r"(?:layer|block)\d+-([a-z]+)\d*\.png", file).group(1)
        assert png_size(data) == SIZES[kind], file
        what, index = re.match(r"(layer|block)(\d+)", file).groups()
        assert re.search(rf'alt="{re.escape(file)}" src="[^"]+"><figcaption>{what} {index}: \w', page), file
    for section in ("run", "config", "curves", "metrics", "samples", "pictures"):
        assert f'<section class="card" id="{section}">' in page


@pytest.mark.parametrize(
    ("name", "inputs"), [("adding-lstm", None), ("bard-lstm", BARD_PROMPT), ("parity-mamba", None)]
)
def test_pictures_are_explain_runs_own(runs, pages, name, inputs):
    """The embedded PNGs are, byte for byte, what `explain_run` draws for the same input."""
    run = load_run(runs[name])
    drawn = explain_run(run, inputs_for(run, inputs, CACHE, seed=0))
    embedded = {alt: data for alt, data in images(pages[name]).items() if not alt.startswith("learning curves")}
    assert embedded == drawn


def test_mamba_pictures_have_their_own_captions(pages):
    """The Mamba family's pictures are named in their captions: Δ and ‖h‖ per channel or head, the Δ text."""
    captions = dict(re.findall(r'alt="([^"]+)" src="[^"]+"><figcaption>([^<]*)</figcaption>', pages["bard-mamba2"]))
    ssm, delta = captions.pop("block0-ssm.png"), captions.popitem()
    assert not captions and "log step size Δ and log state size ‖h‖" in html.unescape(ssm)
    unit = re.fullmatch(r"block0-delta(\d+)\.png", delta[0]).group(1)
    assert f"each character on the colour of unit {unit}&#x27;s log step size Δ" in delta[1]


@pytest.mark.parametrize("name", RUNS)
def test_header_and_config_equal_meta_json(runs, pages, name):
    meta, page = latest_meta(runs[name]), pages[name]
    for part in ("task", "model", "train"):
        values = meta[part]["args"] if part == "task" else meta[part]
        assert table(page, part) == {k: str(v) for k, v in values.items()}, part
    header = table(page, "run")
    model = load_run(runs[name]).model
    assert header["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
    assert header["steps trained"] == f"{meta['step']} of {meta['train']['steps']}" == "6 of 6"
    assert header["run folder"] == str(runs[name]) and header["checkpoint"] == "step-00000006"
    labels = {"bard-xlstm": "xlstm-ms", "parity-gru": "gru", "bard-mamba2": "mamba2", "parity-mamba": "mamba"}
    assert header["model"] == labels.get(name, "lstm")
    assert header["lstmkit"].startswith(meta["lstmkit"])


@pytest.mark.parametrize("name", RUNS)
def test_final_metrics_equal_the_log_and_lstmkit_eval(runs, pages, name, capsys):
    records = [json.loads(line) for line in (runs[name] / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r["split"] == "valid"][-1]
    cells = metric_cells(pages[name])
    assert last["step"] == 6 and f"valid (last evaluation, step {last['step']})" in pages[name]
    assert cells["valid"] == {k: v for k, v in last.items() if k not in ("step", "split")}
    code, out, err = lstmkit(capsys, "eval", runs[name], "--format", "json", "--cache-dir", CACHE)
    assert code == 0, err
    evaluated = json.loads(out)
    shown = cells["test"]
    not_metrics = {"run", "task", "split", "step", "mode", "examples", "targets"}
    assert shown.keys() == evaluated.keys() - not_metrics - {"baseline", "baseline_metric", "baselines"}
    assert all(shown[k] == pytest.approx(evaluated[k], rel=1e-9, abs=1e-12) for k in shown), (shown, evaluated)
    baseline, kind = evaluated["baseline"], latest_meta(runs[name])["spec"]["kind"]
    assert cells.get("baseline", {}) == ({} if baseline is None else {BASELINE_METRIC[kind]: baseline})


@pytest.mark.parametrize("name", ["bard-lstm", "bard-xlstm", "bard-mamba2"])
def test_samples_are_what_lstmkit_generate_writes(runs, pages, name, capsys):
    found = samples(pages[name])
    assert [seed for seed, _, _ in found] == list(range(SAMPLES))
    prompt = found[0][1]
    if name == "bard-lstm":
        assert prompt == BARD_PROMPT
    else:  # the default prompt: the start of a test sequence
        task = make_task("shakespeare", {"seq_len": 16}, CACHE)
        assert len(prompt) == 16 and prompt in task.vocab.decode(task.split_ids("test"))
    for seed, shown_prompt, continuation in found:
        assert shown_prompt == prompt and len(continuation) == SAMPLE_TOKENS
        code, out, err = lstmkit(
            capsys,
            "generate",
            runs[name],
            "--prompt",
            prompt,
            "--tokens",
            SAMPLE_TOKENS,
            "--seed",
            seed,
            "--temperature",
            TEMPERATURE,
        )
        assert code == 0, err
        assert out == prompt + continuation + "\n", f"sample {seed} differs from lstmkit generate"


def test_user_text_is_escaped(runs, pages):
    page = pages["sentiment-lstm"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; I loved it &amp; more" in page
    assert "<i>" not in page and "sent&lt;i&gt;ment" in page, "the folder name is text"
    assert "ROMEO: &amp; &#x27;tis &quot;so&quot;\n" in pages["bard-lstm"] and "& 'tis" not in pages["bard-lstm"]
    for name, text in pages.items():
        bare = re.search(r"&(?![a-z]+;|#x?[0-9a-fA-F]+;).{0,20}", text)
        assert bare is None, f"{name}: an & that is not escaped: {bare.group()!r}"
        tags = set(re.findall(r"</?([a-zA-Z0-9]+)", text))
        allowed = {
            "html",
            "head",
            "meta",
            "title",
            "style",
            "body",
            "main",
            "h1",
            "h2",
            "h3",
            "p",
            "section",
            "table",
            "tr",
            "th",
            "td",
            "code",
            "span",
            "figure",
            "img",
            "figcaption",
            "pre",
            "b",
            "div",
        }
        assert tags <= allowed, f"{name}: unexpected tags {tags - allowed}"


@torch.no_grad()
def test_regression_examples_are_the_models_outputs(runs, pages):
    run = load_run(runs["adding-lstm"])
    batch = make_task("adding", {"length": 12}).batch(EXAMPLES, torch.Generator().manual_seed(0), "test")
    output = run.model(batch.x)
    rows = example_rows(pages["adding-lstm"])
    assert list(rows) == [str(n) for n in range(EXAMPLES)]
    for n, [(target, _), (prediction, _)] in enumerate(rows.values()):
        assert json.loads(target) == batch.y[n].tolist()
        assert json.loads(prediction) == pytest.approx(output[n].tolist(), rel=1e-6)


@torch.no_grad()
def test_sentiment_examples_show_the_review_label_and_probability(runs, pages):
    run = load_run(runs["sentiment-lstm"])
    batch = make_task("sentiment", {"max_len": 40}, CACHE).batch(EXAMPLES, torch.Generator().manual_seed(0), "test")
    probabilities = run.model(batch.x, batch.lengths).softmax(-1)
    rows = example_rows(pages["sentiment-lstm"])
    assert list(rows) == ["prompt", *(str(n) for n in range(EXAMPLES))]
    names = ("negative", "positive")
    for n in range(EXAMPLES):
        (_, text), (target, target_name), (predicted, predicted_name), (p, _) = rows[str(n)]
        assert text == bytes(batch.x[n, : batch.lengths[n]].tolist()).decode("utf-8", errors="replace")
        assert int(target) == batch.y[n] and target_name == names[int(target)]
        assert int(predicted) == probabilities[n].argmax() and predicted_name == names[int(predicted)]
        assert float(p) == pytest.approx(float(probabilities[n].max()), rel=1e-6)
    (_, text), (target, _), (predicted, _), (p, _) = rows["prompt"]
    prompt = run.model(encode_text(run, TRICKY).x).softmax(-1)[0]
    assert text == TRICKY and target is None and int(predicted) == prompt.argmax()
    assert float(p) == pytest.approx(float(prompt.max()), rel=1e-6)


@torch.no_grad()
def test_tagging_examples_count_what_the_model_gets_right(runs, pages):
    run = load_run(runs["parity-gru"])
    batch = make_task("parity", {"max_length": 12}).batch(EXAMPLES, torch.Generator().manual_seed(0), "test")
    predicted, mask = run.model(batch.x, batch.lengths).argmax(-1), tag_mask(batch)
    rows = example_rows(pages["parity-gru"])
    assert list(rows) == [str(n) for n in range(EXAMPLES)]
    for n, [(_, inputs), (_, targets), (_, guesses), (correct, shown)] in enumerate(rows.values()):
        assert inputs.split() == [str(k) for k in batch.x[n, :SHOWN_TOKENS].tolist()]
        assert targets.split() == [str(k) for k in batch.y[n][mask[n]][:SHOWN_TOKENS].tolist()]
        assert guesses.split() == [str(k) for k in predicted[n][mask[n]][:SHOWN_TOKENS].tolist()]
        right = int((predicted[n] == batch.y[n])[mask[n]].sum())
        assert int(correct) == right and shown == f"{right} of {int(mask[n].sum())}"


def test_missing_pieces_are_sentences(runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["adding-lstm"], run_dir)
    log = run_dir / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("".join(line + "\n" for line in lines if '"train"' in line))
    page = report_html(run_dir)
    assert "No evaluation in the log yet." in page and "valid" not in metric_cells(page)
    assert "test" in metric_cells(page) and any(alt.startswith("learning curves") for alt in images(page))
    log.write_text(lines[0] + "\n" + lines[1][:10])  # a line cut short by a crash
    assert "cannot be read" in report_html(run_dir)
    log.unlink()
    page = report_html(run_dir)
    assert "There is no training log" in page and not any(a.startswith("learning curves") for a in images(page))
    bard = report_html(runs["bard-lstm"], cache_dir=None)  # a real task without its cache folder
    assert "the task&#x27;s data is not available" in bard and "test" not in metric_cells(bard)
    assert [prompt for _, prompt, _ in samples(bard)] == ["The "] * SAMPLES, "a fixed prompt from the vocabulary"


def test_output_is_written_atomically_and_the_same_seed_gives_the_same_page(runs, pages, tmp_path, capsys):
    for run_dir in runs.values():
        assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".report.html")], "a temporary file"
    out = tmp_path / "page.html"
    code, stdout, err = lstmkit(capsys, "report", runs["adding-lstm"], "-o", out)
    assert code == 0, err
    assert stdout == f"report of {runs['adding-lstm']} written to {out}\n"
    assert out.read_text() == pages["adding-lstm"] and [p.name for p in tmp_path.iterdir()] == ["page.html"]


@pytest.mark.parametrize(
    ("name", "argv", "needles"),
    [
        ("/no/such/run", [], ["run folder /no/such/run does not exist"]),
        ("empty", [], ["no checkpoint in", "expected a run folder"]),
        ("a-file", [], ["is a file, expected a run folder"]),
        ("corrupt", [], ["is corrupt: model.safetensors cannot be read"]),
        ("bard-lstm", ["--prompt", TRICKY], ["prompt: characters outside the vocabulary", "<>"]),
        ("bard-lstm", ["--prompt", ""], ["prompt: the text is empty"]),
        ("adding-lstm", ["--prompt", "hello"], ["prompt: task adding reads vectors, not text"]),
        ("adding-lstm", ["-o", "/no/such/folder/r.html"], ["folder /no/such/folder does not exist"]),
        ("adding-lstm", ["-o", "."], ["it is a folder, expected a file name"]),
    ],
)
def test_bad_input_is_one_line(runs, tmp_path, capsys, name, argv, needles):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("not a run\n")
    shutil.copytree(runs["adding-lstm"], tmp_path / "corrupt")
    (tmp_path / "corrupt" / "step-00000006" / "model.safetensors").write_bytes(b"\x00not safetensors")
    run_dir = runs.get(name) or (tmp_path / name if "/" not in name else Path(name))
    out = ["-o", tmp_path / "out.html"] if "-o" not in argv else []
    code, _, err = lstmkit(capsys, "report", run_dir, *argv, *out, "--cache-dir", CACHE)
    assert code == 2, f"expected exit status 2, got {code}: {err}"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(needle in err for needle in needles), err
    assert not (tmp_path / "out.html").exists(), "nothing is written when the input is bad"
