"""`lstmkit exercise`: a fresh by-hand exercise (small random integers), its worksheet and answer key.

Without -o the worksheet (or, with --answers, the answer key) goes to standard output. With -o FILE three
files are written, each atomically: the worksheet FILE, the answer key FILE-answers (same suffix) and the
example as a spec, FILE.json without the suffix, which `lstmkit walkthrough --spec` reads to check answers.
"""

from __future__ import annotations

from pathlib import Path

from lstmkit.cli.output import emit

DEFAULT_SEED = 35
"""A fixed default, so the README's exercise is the one everybody gets. Seed 35's LSTM starts from a
non-zero h0 (every weight column matters at t = 1) and only a quarter of its gates round to 0 or 1."""

EXERCISE_EXAMPLES = """examples:
  lstmkit exercise                                    # an LSTM worksheet (Markdown) on standard output
  lstmkit exercise --answers                          # its answer key
  lstmkit exercise --cell gru --seed 3 -o ex.html     # ex.html, ex-answers.html and ex.json
  lstmkit walkthrough --spec ex.json                  # check your answers (hand mode)"""


def add_verbs(verbs) -> None:
    from lstmkit.explain.exercise import CELLS, MAX_SIZE, MAX_STEPS

    e = verbs.add_parser("exercise", help="a fresh by-hand exercise: worksheet and answer key",
                         epilog=EXERCISE_EXAMPLES)  # fmt: skip
    e.add_argument("--cell", choices=CELLS, default="lstm", help="which cell (default: lstm)")
    e.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"which exercise: the same seed gives the same numbers (default {DEFAULT_SEED})")  # fmt: skip
    e.add_argument("--steps", type=int, default=2, metavar="T", help=f"time steps, 1 to {MAX_STEPS} (default 2)")
    e.add_argument("--hidden-size", type=int, default=2, metavar="H", help=f"1 to {MAX_SIZE} (default 2)")
    e.add_argument("--input-size", type=int, default=2, metavar="I", help=f"1 to {MAX_SIZE} (default 2)")
    e.add_argument("--format", choices=["markdown", "html"], default=None,
                   help="default: html when -o ends in .html, else markdown")  # fmt: skip
    e.add_argument("--answers", action="store_true", help="print the answer key instead of the worksheet")
    e.add_argument("-o", "--output", metavar="FILE",
                   help="worksheet to FILE, answer key to FILE-answers, spec to FILE.json")  # fmt: skip
    e.set_defaults(run=run_exercise)


def run_exercise(args) -> int:
    from lstmkit.explain import exercise, exercise_render

    if args.output is not None and args.answers:
        raise ValueError("--answers chooses what goes to standard output, but -o writes worksheet, answer key "
                         "and spec; drop --answers")  # fmt: skip
    paths = output_paths(args.output) if args.output is not None else None
    ex = exercise.make(args.cell, args.seed, args.steps, args.input_size, args.hidden_size)
    fmt = args.format or ("html" if args.output and Path(args.output).suffix in (".html", ".htm") else "markdown")
    if paths is None:
        pages = exercise_render.ANSWER_KEYS if args.answers else exercise_render.WORKSHEETS
        emit(pages[fmt](ex), None)
        return 0
    worksheet, answers, spec_file = paths
    emit(exercise.spec_text(ex.example), str(spec_file))
    emit(exercise_render.WORKSHEETS[fmt](ex, spec_file.name), str(worksheet))
    emit(exercise_render.ANSWER_KEYS[fmt](ex, spec_file.name), str(answers))
    print(f"wrote {worksheet} (worksheet), {answers} (answer key) and {spec_file} (spec): {ex.command}")
    return 0


def output_paths(output: str) -> tuple[Path, Path, Path]:
    """-o ex.html -> ex.html, ex-answers.html, ex.json (beside one another)."""
    worksheet = Path(output)
    if worksheet.is_dir():
        raise ValueError(f"-o {output} is a folder, expected a file name such as {worksheet / 'ex.html'}")
    if worksheet.suffix == ".json":
        raise ValueError(f"-o {output}: the spec is written as FILE.json beside the worksheet, "
                         "expected a worksheet name such as ex.md or ex.html")  # fmt: skip
    answers = worksheet.with_name(f"{worksheet.stem}-answers{worksheet.suffix}")
    return worksheet, answers, worksheet.with_name(f"{worksheet.stem}.json")
