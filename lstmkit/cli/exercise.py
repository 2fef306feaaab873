"""`lstmkit exercise`: a fresh by-hand exercise (small random integers), its worksheet and answer key.

Without -o (or with -o -) the worksheet (or, with --answers, the answer key) goes to standard output. With
-o FILE three files are written, each atomically: the worksheet FILE, the answer key FILE-answers (same suffix)
and the example as a spec, FILE.json without the suffix, which `lstmkit walkthrough --spec` reads to check
answers. The user named only FILE: if FILE-answers or FILE.json exists already (a spec edited by hand, say),
nothing is written unless --replace says to replace them. All three are checked before any is written.

Sizes: the gated cells take --hidden-size H, the state-space cells (ssm, mamba) --state-size N (the spec's
state_size; --input-size is their channels C); the other one is refused rather than read as an alias, so a
command line always means what it says. --discretization (zoh, bilinear, zoh-euler) is the ssm's only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lstmkit.cli.output import emit
from lstmkit.files import check_output_file, is_stdout, write_output

DEFAULT_SEED = 35
"""A fixed default, so the README's exercise is the one everybody gets. Seed 35's LSTM starts from a
non-zero h0 (every weight column matters at t = 1) and only a quarter of its gates round to 0 or 1."""

DEFAULT_SIZE = 2
"""The hidden size (gated cells) or state size (ssm, mamba) when not given."""

EXERCISE_EXAMPLES = """examples:
  lstmkit exercise                                    # an LSTM worksheet (Markdown) on standard output
  lstmkit exercise --answers                          # its answer key
  lstmkit exercise --cell gru --seed 3 -o ex.html     # ex.html, ex-answers.html and ex.json
  lstmkit exercise --seed 4 -o ex.html --replace      # again: replaces ex-answers.html and ex.json too
  lstmkit exercise --cell ssm --seed 1161 --steps 3 --input-size 1    # a diagonal SSM, one channel, zoh
  lstmkit exercise --cell ssm --seed 1161 --steps 3 --input-size 1 --discretization bilinear
  lstmkit exercise --cell mamba --seed 23 --steps 3 --input-size 1    # Mamba's selective scan, gated
  lstmkit walkthrough --spec ex.json                  # check your answers (hand mode)"""


def add_verb(verbs) -> None:
    from lstmkit.explain.exercise import CELLS, MAX_SIZE, MAX_STEPS
    from lstmkit.reference.ssm import DISCRETIZATIONS

    e = verbs.add_parser(
        "exercise", help="a fresh by-hand exercise: worksheet and answer key", epilog=EXERCISE_EXAMPLES
    )
    e.add_argument("--cell", choices=CELLS, default="lstm", help="which cell (default: lstm)")
    e.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"which exercise: the same seed gives the same numbers (default {DEFAULT_SEED})",
    )
    e.add_argument("--steps", type=int, default=2, metavar="T", help=f"time steps, 1 to {MAX_STEPS} (default 2)")
    e.add_argument(
        "--hidden-size", type=int, metavar="H", help=f"gated cells: 1 to {MAX_SIZE} (default {DEFAULT_SIZE})"
    )
    e.add_argument(
        "--state-size",
        type=int,
        metavar="N",
        help=f"ssm and mamba: the state size, 1 to {MAX_SIZE} (default {DEFAULT_SIZE})",
    )
    e.add_argument(
        "--input-size", type=int, default=2, metavar="I", help=f"1 to {MAX_SIZE}; channels for ssm, mamba (default 2)"
    )
    e.add_argument(
        "--discretization", choices=DISCRETIZATIONS, help="ssm only: how Δ discretises A and B (default zoh)"
    )
    e.add_argument(
        "--format",
        choices=["markdown", "html"],
        default=None,
        help="default: html when -o ends in .html, else markdown",
    )
    e.add_argument("--answers", action="store_true", help="print the answer key instead of the worksheet")
    e.add_argument(
        "-o", "--output", metavar="FILE", help="worksheet to FILE, answer key to FILE-answers, spec to FILE.json"
    )
    e.add_argument(
        "--replace",
        action="store_true",
        help="with -o FILE: replace FILE-answers and FILE.json if they exist (default: refuse)",
    )
    e.set_defaults(run=run_exercise)


def run_exercise(args) -> int:
    from lstmkit.explain import exercise
    from lstmkit.explain.exercise import sheets

    to_files = args.output is not None and not is_stdout(args.output)
    if to_files and args.answers:
        raise ValueError(
            "--answers chooses what goes to standard output, but -o writes worksheet, answer key "
            "and spec; drop --answers"
        )
    if args.replace and not to_files:
        raise ValueError("--replace applies to the files -o FILE writes; name them with -o FILE or drop --replace")
    size, discretization = _size_and_discretization(args)
    paths = output_paths(args.output, args.replace) if to_files else None
    ex = exercise.make(args.cell, args.seed, args.steps, args.input_size, size, discretization)
    fmt = args.format or ("html" if to_files and Path(args.output).suffix in (".html", ".htm") else "markdown")
    if paths is None:
        pages = sheets.ANSWER_KEYS if args.answers else sheets.WORKSHEETS
        emit(pages[fmt](ex), None)
        return 0
    worksheet, answers, spec_file = paths
    write_output(spec_file, _line_ended(exercise.spec_text(ex.example)))
    write_output(worksheet, _line_ended(sheets.WORKSHEETS[fmt](ex, spec_file.name)))
    write_output(answers, _line_ended(sheets.ANSWER_KEYS[fmt](ex, spec_file.name)))
    print(f"wrote {worksheet} (worksheet), {answers} (answer key) and {spec_file} (spec): {ex.command}")
    return 0


def _size_and_discretization(args) -> tuple[int, str]:
    """The hidden or state size, whichever the cell has, and the ssm's discretization; the wrong one refused."""
    from lstmkit.explain.exercise.problem import STATE_SPACE

    state_space = args.cell in STATE_SPACE
    if state_space and args.hidden_size is not None:
        raise ValueError(f"--hidden-size is for lstm, gru, rnn, slstm; {args.cell} has a state size: use --state-size")
    if not state_space and args.state_size is not None:
        raise ValueError(f"--state-size is for ssm and mamba, {args.cell} has a hidden size: use --hidden-size")
    if args.cell != "ssm" and args.discretization is not None:
        raise ValueError(f"--discretization is for --cell ssm only, {args.cell} has none: drop it")
    size = args.state_size if state_space else args.hidden_size
    return DEFAULT_SIZE if size is None else size, args.discretization or "zoh"


def output_paths(output: str, replace: bool = False) -> tuple[Path, Path, Path]:
    """-o ex.html -> ex.html, ex-answers.html, ex.json (beside one another), each checked writable; refused when
    the two the user did not name exist, unless `replace`."""
    worksheet = Path(output)
    if not output:
        check_output_file(output)  # "cannot write '': expected a file name" (Path would read '' as '.')
    if worksheet.is_dir():
        raise ValueError(f"-o {output} is a folder, expected a file name such as {worksheet / 'ex.html'}")
    if os.path.exists(output) and not stat.S_ISREG(os.stat(output).st_mode):
        raise ValueError(
            f"-o {output} is not a regular file, but the answer key and the spec are written beside "
            "the worksheet: expected a file name such as ex.md (or - for standard output)"
        )
    if worksheet.suffix == ".json":
        raise ValueError(
            f"-o {output}: the spec is written as FILE.json beside the worksheet, "
            "expected a worksheet name such as ex.md or ex.html"
        )
    answers = worksheet.with_name(f"{worksheet.stem}-answers{worksheet.suffix}")
    spec_file = worksheet.with_name(f"{worksheet.stem}.json")
    for path in (worksheet, answers, spec_file):
        check_output_file(path)
    existing = [str(p) for p in (answers, spec_file) if os.path.lexists(p)]
    if existing and not replace:
        which = " and ".join(existing)
        raise ValueError(
            f"{which} {'exist' if len(existing) > 1 else 'exists'} already and -o names only "
            f"{output}: pass --replace to replace {'them' if len(existing) > 1 else 'it'}, "
            "or choose another -o"
        )
    return worksheet, answers, spec_file


def _line_ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
