"""A training run on one page: what was trained, how it learned, how good it is, what it says, what it does inside.

    html = report_html("runs/bard", cache_dir="~/.cache/lstmkit", prompt="ROMEO:", seed=0)

Sections, top to bottom, each a <section class="card" id="...">:

    run       the run folder, checkpoint, task, model, parameter count, steps trained, lstmkit versions
    config    the task's arguments, the model config and the training config, as meta.json holds them
    curves    training loss (smoothed) and the validation metric against step, the baseline dashed: one PNG
    metrics   the log's last evaluation (valid split) and the test split's metrics computed now, exactly as
              `lstmkit eval` computes them (lstmkit.evaluation.evaluate_split: every example of a real dataset's
              split, DEFAULT_EXAMPLES generated ones of a synthetic task), beside the test split's trivial baseline
    samples   a character model: SAMPLES continuations of the prompt (seeds seed, seed + 1, ...), the same
              text `lstmkit generate --seed` gives; other tasks: EXAMPLES test examples, target beside prediction
    pictures  `lstmkit explain`'s pictures of the prompt (text models) or of one test sequence

The page is self-contained: inline CSS, PNGs as data URIs, no script, nothing fetched. Every text that
comes from the run or the user (folder names, prompt, generated text, reviews) passes through `esc`.
Every number shown keeps its exact value in `data-v`, so a test can read the page back.

A missing piece (no log, no evaluation yet, a dataset that cannot be read) is a sentence in its section.
A folder that is not a run, a corrupt checkpoint or a prompt the model cannot read is a ValueError.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from lstmkit import __version__
from lstmkit.compare import METRIC, curves_png, label_of, read_curves
from lstmkit.evaluation import evaluate_split, split_baselines
from lstmkit.experiment import Run, load_run, task_of
from lstmkit.explain.html import esc, page, png_img
from lstmkit.explain.trained.pictures import explain_run
from lstmkit.explain.trained.recording import BYTE_TASKS, Inputs, encode_text, sample_sequence
from lstmkit.tasks.base import BASELINE_METRIC, tag_mask
from lstmkit.tasks.real.shakespeare import CharVocab

SAMPLES, SAMPLE_TOKENS, TEMPERATURE = 3, 200, 0.8
"""Continuations of the prompt, characters each, and the temperature (`lstmkit generate`'s default)."""
PROMPT_CHARS = 32
"""The default prompt of a character model: the first this many characters of a test sequence."""
FALLBACK_PROMPT = "The "
"""The default prompt without the dataset: its characters that are in the vocabulary."""
EXAMPLES, SHOWN_TOKENS = 5, 24
"""Test examples in the table of a task that is not a language model; tokens shown per tagged sequence."""
CLASS_NAMES = {"sentiment": ("negative", "positive")}
"""Names of the classes, where a task has them (others show the class id)."""
PICTURE = re.compile(r"(layer|block)(\d+)-([a-z]+)(\d*)\.png")
CAPTIONS = {
    "gates": "units × time heatmaps of the gates and the state (LSTM i, f, o, c; GRU r, z, n, h; RNN h)",
    "cell": "the input text, each character on the colour of unit {unit}'s value after reading it (blue -1, red +1)",
    "words": "each word on the colour of its mean input gate, and the words that open the gate most",
    "slstm": "sLSTM cell c, normalizer n, stabilizer m and output h, units × time",
    "mlstm": "mLSTM stabilizer m and normalizer size ‖n‖ of every head over time",
    "memory": "mLSTM memory C of head 0 after a few steps, on one colour scale",
    "ssm": "Mamba's log step size Δ and log state size ‖h‖ of each channel (Mamba-2: each head), units × time",
    "delta": "the input text, each character on the colour of unit {unit}'s log step size Δ (bright: takes it in)",
}
CSS = """
pre.sample { white-space: pre-wrap; background: var(--band); border: 1px solid var(--line); border-radius: 6px;
             padding: .5rem .7rem; }
pre.sample b { background: #fde9b6; font-weight: 600; }
table.kv td.num { text-align: right; font-variant-numeric: tabular-nums; }
div.configs { display: flex; flex-wrap: wrap; gap: .5rem 2.5rem; align-items: flex-start; }
div.configs h3 { font-size: 1rem; margin: .3rem 0; }
table.examples td.text { max-width: 40rem; }
figure { margin: 1rem 0; }
figcaption { color: var(--muted); font-size: 13px; }
"""


def report_html(
    run_dir: str | Path, cache_dir: str | Path | None = None, prompt: str | None = None, seed: int = 0
) -> str:
    """The whole page for the newest checkpoint of `run_dir` (or the checkpoint folder given).

    cache_dir: where real datasets are kept (without it, a real task's sections that need its data say so).
    prompt: the text to continue and to draw pictures of (character and byte models); default a test sequence's.
    seed: draws the test sequences and seeds the samples.
    """
    run = open_run(run_dir)
    given = prompt_inputs(run, prompt)  # a prompt the model cannot read fails before any work
    task, no_task = load_task(run, cache_dir)
    curves, no_curves = read_log(run.path.parent)
    if given is None and "vocab" in run.meta:
        given = char_prompt(run, task, no_task, seed)
    sections = [
        header_section(run),
        config_section(run.meta),
        curves_section(curves, no_curves, run.spec, run.meta["task"]["name"]),
        metrics_section(
            curves, no_curves, metrics_on_test_split(run, task, no_task), run.spec, baseline_of_test_split(run, task)
        ),
        samples_section(run, task, no_task, given, seed),
        pictures_section(run, task, no_task, given, seed),
    ]
    title = f"lstmkit report: {run.path.parent.name} ({label_of(run.model.config)} on {run.meta['task']['name']})"
    return page(title, f"<h1>{esc(title)}</h1>\n" + "\n".join(sections), css=CSS)


def open_run(run_dir: str | Path) -> Run:
    """load_run, with a plain sentence for a folder that is missing or a file."""
    path = Path(run_dir)
    if not path.exists():
        raise ValueError(f"run folder {path} does not exist, expected a folder written by lstmkit train")
    if not path.is_dir():
        raise ValueError(f"{path} is a file, expected a run folder written by lstmkit train")
    return load_run(path)


def prompt_inputs(run: Run, prompt: str | None) -> Inputs | None:
    if prompt is None:
        return None
    try:
        return encode_text(run, prompt)
    except ValueError as error:
        raise ValueError(f"prompt: {error}") from None


def char_prompt(run: Run, task, no_task: str, seed: int) -> Inputs:
    """A character model's default prompt: the start of a test sequence, or FALLBACK_PROMPT's known characters."""
    vocab = run.meta["vocab"]
    if task is not None:
        start = sample_sequence(task, vocab, seed).text[:PROMPT_CHARS]
        return encode_text(run, start)._replace(source=f"the start of a test sequence, seed {seed}")
    fixed = "".join(ch for ch in FALLBACK_PROMPT if ch in vocab) or vocab[0]
    return encode_text(run, fixed)._replace(source=f"a fixed prompt, as {no_task}")


def load_task(run: Run, cache_dir) -> tuple[object | None, str]:
    """(the run's task, "") or (None, why it cannot be built): a dataset that is not at hand is no error here."""
    try:
        return task_of(run, cache_dir), ""
    except ValueError as error:
        return None, f"the task's data is not available: {error}"


def section(name: str, title: str, body: str) -> str:
    return f'<section class="card" id="{name}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


def sentence(text: str) -> str:
    return f'<p class="muted">{esc(text)}</p>'


def number_cell(value: float, digits: int = 4, extra: str = "") -> str:
    """A right-aligned number shown to `digits` significant digits, its exact value in data-v."""
    return f'<td class="num" data-v="{float(value)!r}"{extra}>{float(value):.{digits}g}</td>'


def vector_cell(values: list[float]) -> str:
    shown = ", ".join(f"{v:.4g}" for v in values)
    return f'<td class="num" data-v="{esc(json.dumps(values))}">{esc(shown)}</td>'


def kv_table(rows: list[tuple[str, str]], name: str = "") -> str:
    """rows: (key, value as HTML); the key is escaped here."""
    attribute = f' data-table="{esc(name)}"' if name else ""
    lines = [f'<tr data-key="{esc(k)}"><th>{esc(k)}</th><td>{v}</td></tr>' for k, v in rows]
    return f'<table class="kv"{attribute}>\n' + "\n".join(lines) + "\n</table>"


def header_section(run: Run) -> str:
    meta, config = run.meta, run.model.config
    task_args = ", ".join(f"{k}={v}" for k, v in meta["task"]["args"].items()) or "defaults"
    parameters = sum(p.numel() for p in run.model.parameters())
    planned = meta.get("train", {}).get("steps")
    rows = [
        ("run folder", f"<code>{esc(run.path.parent)}</code>"),
        ("checkpoint", f"<code>{esc(run.path.name)}</code>"),
        ("task", f"{esc(meta['task']['name'])} ({esc(task_args)}), kind {esc(run.spec.kind)}"),
        ("model", esc(label_of(config))),
        ("parameters", f'<span data-v="{parameters}">{parameters:,}</span>'),
        (
            "steps trained",
            f'<span data-v="{meta.get("step")}">{meta.get("step")}</span>'
            + (f" of {planned}" if planned is not None else ""),
        ),
        ("lstmkit", f"{esc(__version__)} (this report), {esc(meta.get('lstmkit', 'unknown'))} (training)"),
    ]
    return section("run", "Run", kv_table(rows, "run"))


def config_section(meta: dict) -> str:
    parts = []
    for name, title, values in (
        ("task", "Task arguments", meta["task"]["args"]),
        ("model", "Model", meta["model"]),
        ("train", "Training", meta.get("train")),
    ):
        if not values:
            shown = sentence("none (the defaults)" if values == {} else "meta.json holds no training config")
        else:
            shown = kv_table([(k, esc(v)) for k, v in values.items()], name)
        parts.append(f"<div><h3>{title}</h3>\n{shown}</div>")
    return section("config", "Configuration", '<div class="configs">\n' + "\n".join(parts) + "\n</div>")


def read_log(run_folder: Path) -> tuple[dict, str]:
    """(compare.read_curves of the run's metrics.jsonl, "") or ({}, why there is none)."""
    path = run_folder / "metrics.jsonl"
    if not path.is_file():
        return {}, f"There is no training log ({path}), so there are no curves and no evaluation to show."
    try:
        return read_curves(run_folder), ""
    except (ValueError, KeyError, TypeError) as error:
        return {}, f"The training log {path} cannot be read ({error})."


def shown_metric(spec) -> str:
    """The validation metric on the curves: the one the baseline is measured in, else the task kind's usual one."""
    return BASELINE_METRIC[spec.kind] if spec.baseline is not None else METRIC[spec.kind]


def curves_section(curves: dict, no_curves: str, spec, title: str) -> str:
    if not curves:
        return section("curves", "Learning curves", sentence(no_curves))
    metric = shown_metric(spec)
    baseline = "" if spec.baseline is None else f"; dashed: the task's baseline, {metric} {spec.baseline:.4g}"
    text = (
        f"Training loss (a trailing mean over about 2% of the steps) and the validation {metric} at each "
        f"evaluation{baseline}."
    )
    picture = curves_png([(title, curves)], spec.kind, spec.baseline, title, metric)
    image = png_img(picture, f"learning curves: training loss and validation {metric}")
    return section("curves", "Learning curves", f"<p>{esc(text)}</p>\n<figure>{image}</figure>")


def last_evaluation(curves: dict) -> tuple[int, dict[str, float]] | None:
    """The step and metrics of the log's last "valid" record, or None when there is none."""
    valid = {name.removeprefix("valid "): points for name, points in curves.items() if name.startswith("valid ")}
    if not valid:
        return None
    step = max(points[-1][0] for points in valid.values())
    return step, {name: points[-1][1] for name, points in valid.items() if points[-1][0] == step}


def metrics_on_test_split(run: Run, task, no_task: str) -> tuple[dict[str, float], str]:
    """The test split's metrics as `lstmkit eval` computes them, or ({}, why not)."""
    if task is None:
        return {}, f"No test metrics: {no_task}."
    if "train" not in run.meta:
        return {}, "No test metrics: meta.json holds no training config (batch size, seed)."
    metrics = evaluate_split(run.model, task, "test", run.meta["train"]["batch_size"])
    return {k: v for k, v in metrics.items() if k not in ("examples", "targets")}, ""


def baseline_of_test_split(run: Run, task) -> float | None:
    """The test split's trivial baseline, as `lstmkit eval` prints it (without a task: the spec's, of valid)."""
    return run.spec.baseline if task is None else next(iter(split_baselines(task, "test").values()), None)


def metrics_section(curves: dict, no_curves: str, tested: tuple[dict, str], spec, baseline: float | None) -> str:
    last = last_evaluation(curves)
    test, no_test = tested
    notes = [] if last else [no_curves or "No evaluation in the log yet."]
    notes += [no_test] if no_test else []
    names = list(dict.fromkeys([*test, *(last[1] if last else {})]))
    if not names:
        return section("metrics", "Final metrics", "\n".join(sentence(n) for n in notes))
    valid_head = f"valid (last evaluation, step {last[0]})" if last else "valid"
    head = f"<tr><th>metric</th><th>{esc(valid_head)}</th><th>test (now, as lstmkit eval)</th><th>baseline</th></tr>"
    rows = [head]
    for name in names:
        cells = []
        for split, values in (("valid", last[1] if last else {}), ("test", test)):
            cells.append(number_cell(values[name], extra=f' data-split="{split}"') if name in values else "<td>—</td>")
        is_baseline = baseline is not None and name == BASELINE_METRIC[spec.kind]
        cells.append(number_cell(baseline, extra=' data-split="baseline"') if is_baseline else "<td>—</td>")
        rows.append(f'<tr data-metric="{esc(name)}"><th>{esc(name)}</th>{"".join(cells)}</tr>')
    table = '<table class="kv metrics">\n' + "\n".join(rows) + "\n</table>"
    return section("metrics", "Final metrics", table + "\n" + "\n".join(sentence(n) for n in notes))


def samples_section(run: Run, task, no_task: str, given: Inputs | None, seed: int) -> str:
    if "vocab" in run.meta:
        return section("samples", "Samples", char_samples(run, given, seed))
    if task is None:
        return section("samples", "Test examples", sentence(f"No test examples: {no_task}."))
    return section("samples", "Test examples", example_table(run, task, given, seed))


def char_samples(run: Run, given: Inputs, seed: int) -> str:
    """SAMPLES continuations of the prompt, as `lstmkit generate --tokens SAMPLE_TOKENS --seed S` writes them."""
    from lstmkit.nn.generate import generate

    vocab, prompt = CharVocab("".join(run.meta["vocab"])), given.text
    about = (
        f"Prompt ({given.source}), highlighted, and {SAMPLES} continuations of {SAMPLE_TOKENS} characters at "
        f"temperature {TEMPERATURE}, seeds {seed} to {seed + SAMPLES - 1}."
    )
    parts = [f"<p>{esc(about)}</p>"]
    for k in range(SAMPLES):
        tokens = generate(run.model, given.x[0], SAMPLE_TOKENS, temperature=TEMPERATURE, seed=seed + k)
        continuation = vocab.decode(tokens[len(prompt) :])
        parts.append(f'<pre class="sample" data-seed="{seed + k}"><b>{esc(prompt)}</b>{esc(continuation)}</pre>')
    return "\n".join(parts)


@torch.no_grad()
def example_table(run: Run, task, given: Inputs | None, seed: int) -> str:
    """EXAMPLES rows of the test split drawn with `seed` (and the prompt first, if any): target and prediction."""
    batch = task.batch(EXAMPLES, torch.Generator().manual_seed(seed), "test")
    output = run.model(batch.x, batch.lengths)
    kind, name = run.spec.kind, run.spec.name
    about = f"{EXAMPLES} sequences of the test split drawn with seed {seed}"
    if kind == "regress":
        head = ["target", "prediction"]
        rows = [[vector_cell(y.tolist()), vector_cell(o.tolist())] for y, o in zip(batch.y, output, strict=True)]
    elif kind == "classify":
        texts = [byte_text(x, n) for x, n in zip(batch.x, batch.lengths, strict=True)] if name in BYTE_TASKS else None
        head = (["text"] if texts is not None else []) + ["target", "prediction", "probability"]
        rows = classify_rows(batch.y.tolist(), output, name, texts)
        about += "; each text as the model reads it" if texts is not None else ""
    else:
        head, rows = ["inputs", "targets", "predictions", "correct"], tag_rows(batch, output)
        about += f"; the first {SHOWN_TOKENS} tokens of each, and the targets and predictions that count"
    labelled = [(str(n), cells) for n, cells in enumerate(rows)]
    if given is not None and kind == "classify":  # a byte model's prompt (sentiment): its prediction, first
        labelled.insert(0, ("prompt", classify_rows([None], run.model(given.x), name, [given.text])[0]))
        about += ", after the prompt"
    lines = ["<tr><th>#</th>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    lines += [f'<tr data-row="{label}"><td>{label}</td>{"".join(cells)}</tr>' for label, cells in labelled]
    return f"<p>{esc(about)}.</p>\n" + '<table class="kv examples">\n' + "\n".join(lines) + "\n</table>"


def byte_text(x: torch.Tensor, length: torch.Tensor) -> str:
    return bytes(x[: int(length)].tolist()).decode("utf-8", errors="replace")


def class_name(task_name: str, label: int) -> str:
    names = CLASS_NAMES.get(task_name)
    return names[label] if names else str(label)


def classify_rows(
    targets: list[int | None], logits: torch.Tensor, task_name: str, texts: list[str] | None
) -> list[list[str]]:
    """One row per sequence: [text,] target, predicted class, its probability."""
    probabilities = logits.softmax(-1)
    rows = []
    for n, target in enumerate(targets):
        predicted = int(probabilities[n].argmax())
        cells = [] if texts is None else [f'<td class="text">{esc(texts[n])}</td>']
        if target is None:
            cells.append("<td>—</td>")
        else:
            cells.append(f'<td data-v="{target}">{esc(class_name(task_name, target))}</td>')
        cells.append(f'<td data-v="{predicted}">{esc(class_name(task_name, predicted))}</td>')
        cells.append(number_cell(float(probabilities[n, predicted]), digits=3))
        rows.append(cells)
    return rows


def tag_rows(batch, output: torch.Tensor) -> list[list[str]]:
    """Inputs, and the targets and predictions at the positions that count, the first SHOWN_TOKENS of each."""
    mask, predicted = tag_mask(batch), output.argmax(-1)  # (B, T), (B, T)
    rows = []
    for n in range(batch.y.shape[0]):
        targets, guesses = batch.y[n][mask[n]].tolist(), predicted[n][mask[n]].tolist()
        inputs = " ".join(str(k) for k in batch.x[n, :SHOWN_TOKENS].tolist()) if batch.x.dim() == 2 else "vectors"
        correct = sum(t == g for t, g in zip(targets, guesses, strict=True))
        rows.append(
            [
                f"<td>{esc(inputs)}</td>",
                f"<td>{esc(' '.join(map(str, targets[:SHOWN_TOKENS])))}</td>",
                f"<td>{esc(' '.join(map(str, guesses[:SHOWN_TOKENS])))}</td>",
                f'<td data-v="{correct}">{correct} of {len(targets)}</td>',
            ]
        )
    return rows


def pictures_section(run: Run, task, no_task: str, given: Inputs | None, seed: int) -> str:
    """`explain_run`'s pictures of the prompt, or of one test sequence drawn with `seed`."""
    if given is None and task is None:
        return section("pictures", "Inside the model", sentence(f"No pictures: {no_task}."))
    inputs = given if given is not None else sample_sequence(task, run.meta.get("vocab"), seed)
    about = f"<p>The model's gates and states on one input ({esc(inputs.source)})"
    about += f": <code>{esc(inputs.text)}</code></p>" if inputs.text is not None else ".</p>"
    figures = []
    for file, data in explain_run(run, inputs).items():
        figures.append(f"<figure>{png_img(data, file)}<figcaption>{esc(caption(file))}</figcaption></figure>")
    return section("pictures", "Inside the model", about + "\n" + "\n".join(figures))


def caption(file: str) -> str:
    """layer0-cell3.png -> "layer 0: the input text, each character on the colour of unit 3's value ..."."""
    match = PICTURE.fullmatch(file)
    if match is None:
        return file
    what, index, kind, unit = match.groups()
    return f"{what} {index}: " + CAPTIONS.get(kind, kind).format(unit=unit)
