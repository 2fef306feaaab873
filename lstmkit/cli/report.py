"""`lstmkit report`: one self-contained HTML page for a training run (see lstmkit/explain/trained/report.py)."""

from __future__ import annotations

from pathlib import Path

from lstmkit.cli.options import add_cache_option
from lstmkit.cli.threads import add_threads_option

REPORT_EXAMPLES = """examples:
  lstmkit report runs/adding-lstm                             # writes runs/adding-lstm/report.html
  lstmkit report runs/shakespeare-lstm --prompt "ROMEO:" --seed 1 -o bard.html
  lstmkit report runs/sentiment-lstm --prompt "A moving, beautiful film."
  lstmkit report runs/parity-xlstm/step-00000500              # runs/parity-xlstm/report-step-00000500.html"""


def add_verb(verbs) -> None:
    r = verbs.add_parser(
        "report",
        help="one self-contained HTML page for a run: config, curves, metrics, samples, gate pictures",
        epilog=REPORT_EXAMPLES,
    )
    r.add_argument("run_dir", metavar="RUN_DIR", help="a run folder or one of its step-NNNNNNNN checkpoints")
    r.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the page (default RUN_DIR/report.html; "
        "for a checkpoint RUN/step-N, RUN/report-step-N.html, which rotation never deletes; "
        "- is standard output)",
    )
    r.add_argument(
        "--prompt",
        default=None,
        metavar="TEXT",
        help="text to continue and to draw the pictures of, "
        "for character and sentiment models (default: the start of a test sequence)",
    )
    r.add_argument(
        "--seed", type=int, default=0, metavar="N", help="draws the test sequences and seeds the samples (default 0)"
    )
    add_cache_option(r)
    add_threads_option(r)
    r.set_defaults(run=run_report)


def run_report(args) -> int:
    from lstmkit.cli.output import announce, default_output, emit
    from lstmkit.explain.trained.report import report_html
    from lstmkit.files import check_output_file

    out = args.output if args.output is not None else str(default_output(args.run_dir, "report", ".html"))
    if args.output is not None or Path(args.run_dir).is_dir():  # else report_html names the missing run first
        check_output_file(out)  # before the page is built (seconds of work)
    html = report_html(args.run_dir, args.cache_dir, args.prompt, args.seed)
    emit(html, out)
    announce(out, f"report of {args.run_dir} written to {out}")
    return 0
