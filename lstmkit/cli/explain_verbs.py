"""`lstmkit walkthrough` and `lstmkit gradients`: the seeds' example and the vanishing-gradient curves."""

from __future__ import annotations

from lstmkit.cli.output import announce, emit, print_rich
from lstmkit.files import check_output_file, write_output

WALKTHROUGH_EXAMPLES = """examples:
  lstmkit walkthrough
  lstmkit walkthrough --cell gru --mode exact
  lstmkit walkthrough --cell mlstm --format html -o mlstm.html
  lstmkit walkthrough --spec my_example.json --format markdown -o steps.md

--format html writes one self-contained page (no network) with hand and exact values side by side and a
step navigator (buttons, or the arrow keys); --mode does not apply to it."""

GRADIENTS_EXAMPLES = """examples:
  lstmkit gradients
  lstmkit gradients --length 200 --forget-bias 0 1 3
  lstmkit gradients --format png -o gradients.png"""


OUTPUT_HELP = "write here instead of standard output (a file is replaced atomically; - is standard output)"


def add_verbs(verbs) -> None:
    w = verbs.add_parser(
        "walkthrough",
        help="the seeds' step-by-step example, every intermediate of every step",
        epilog=WALKTHROUGH_EXAMPLES,
    )
    w.add_argument("--cell", choices=["lstm", "gru", "rnn", "slstm", "mlstm"], help="which cell (default: lstm)")
    w.add_argument("--mode", choices=["hand", "exact"], default="hand", help="hand: round to 0.1 and carry forward")
    w.add_argument("--spec", metavar="FILE.json", help="your own sizes, weights, inputs and initial state")
    w.add_argument("--format", choices=["text", "markdown", "json", "html"], default="text")
    w.add_argument("-o", "--output", metavar="FILE", help=OUTPUT_HELP)
    w.set_defaults(run=run_walkthrough)

    g = verbs.add_parser(
        "gradients", help="vanishing gradients: tanh RNN vs LSTM, gradient norm by lag", epilog=GRADIENTS_EXAMPLES
    )
    g.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    g.add_argument("--hidden-size", type=int, default=32)
    g.add_argument("--input-size", type=int, default=8)
    g.add_argument(
        "--forget-bias", type=float, nargs="+", default=[0.0, 2.0], metavar="B", help="LSTM forget-gate biases"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--format",
        choices=["text", "markdown", "json", "png"],
        default="text",
        help="png: the curves as a plot (log scale); needs -o",
    )
    g.add_argument("-o", "--output", metavar="FILE", help=OUTPUT_HELP)
    g.set_defaults(run=run_gradients)


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


def run_gradients(args) -> int:
    from lstmkit.explain import gradients, gradients_table

    if args.format == "png" and args.output is None:
        raise ValueError("--format png writes a picture: name the file with -o FILE.png")
    if args.output is not None:
        check_output_file(args.output)
    curves = gradients.gradient_by_lag(args.length, args.hidden_size, args.input_size, args.forget_bias, args.seed)
    if args.format == "png":
        from lstmkit.explain.trained.pictures import gradient_plot

        write_output(args.output, gradient_plot(curves))
        announce(args.output, f"wrote {args.output}")
        return 0
    if args.format == "text" and args.output is None:
        print_rich(gradients_table.renderables(curves))
        return 0
    emit(gradients_table.FORMATS[args.format](curves), args.output)
    return 0
