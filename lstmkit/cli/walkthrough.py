"""`lstmkit walkthrough`: the seeds' step-by-step example (or your own), every intermediate of every step."""

from __future__ import annotations

from lstmkit.cli.options import OUTPUT_HELP
from lstmkit.cli.output import announce, emit, print_rich
from lstmkit.files import check_output_file

WALKTHROUGH_EXAMPLES = """examples:
  lstmkit walkthrough
  lstmkit walkthrough --cell gru --mode exact
  lstmkit walkthrough --cell mlstm --format html -o mlstm.html
  lstmkit walkthrough --cell ssm
  lstmkit walkthrough --cell mamba --format html -o mamba.html
  lstmkit walkthrough --spec my_example.json --format markdown -o steps.md

--format html writes one self-contained page (no network) with hand and exact values side by side and a
step navigator (buttons, or the arrow keys); --mode does not apply to it."""


def add_verb(verbs) -> None:
    from lstmkit.explain.walkthrough.example_file import CELLS

    w = verbs.add_parser(
        "walkthrough",
        help="the seeds' step-by-step example, every intermediate of every step",
        epilog=WALKTHROUGH_EXAMPLES,
    )
    w.add_argument("--cell", choices=list(CELLS), help="which cell (default: lstm)")
    w.add_argument("--mode", choices=["hand", "exact"], default="hand", help="hand: round to 0.1 and carry forward")
    w.add_argument("--spec", metavar="FILE.json", help="your own sizes, weights, inputs and initial state")
    w.add_argument("--format", choices=["text", "markdown", "json", "html"], default="text")
    w.add_argument("-o", "--output", metavar="FILE", help=OUTPUT_HELP)
    w.set_defaults(run=run_walkthrough)


def run_walkthrough(args) -> int:
    from lstmkit.explain import walkthrough
    from lstmkit.explain.walkthrough import as_text, example_file
    from lstmkit.reference import examples

    if args.output is not None:
        check_output_file(args.output)
    example = example_file.load(args.spec, args.cell) if args.spec else examples.EXAMPLES[args.cell or "lstm"]()
    if args.format == "html":
        from lstmkit.explain.walkthrough.as_page import to_html

        emit(to_html(walkthrough.build(example, "hand"), walkthrough.build(example, "exact")), args.output)
        if args.output:
            announce(args.output, f"wrote {args.output} (open it in a browser; ← → step through)")
        return 0
    w = walkthrough.build(example, args.mode)
    if args.format == "text" and args.output is None:
        print_rich(as_text.renderables(w))
        return 0
    emit(as_text.FORMATS[args.format](w), args.output)
    return 0
