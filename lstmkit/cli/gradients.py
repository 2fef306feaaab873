"""`lstmkit gradients`: vanishing gradients, the gradient norm by lag of a tanh RNN, LSTMs, a diagonal SSM and Mamba."""

from __future__ import annotations

from lstmkit.cli.options import OUTPUT_HELP
from lstmkit.cli.output import announce, emit, print_rich
from lstmkit.files import check_output_file, write_output

GRADIENTS_EXAMPLES = """examples:
  lstmkit gradients
  lstmkit gradients --length 200 --forget-bias 0 1 3
  lstmkit gradients --state-size 64
  lstmkit gradients --format png -o gradients.png"""


def add_verb(verbs) -> None:
    g = verbs.add_parser(
        "gradients",
        help="vanishing gradients: tanh RNN vs LSTM, diagonal SSM and Mamba, gradient norm by lag",
        epilog=GRADIENTS_EXAMPLES,
    )
    g.add_argument("--length", type=int, default=100, help="sequence length T (default 100)")
    g.add_argument("--hidden-size", type=int, default=32)
    g.add_argument("--input-size", type=int, default=8)
    g.add_argument(
        "--forget-bias", type=float, nargs="+", default=[0.0, 2.0], metavar="B", help="LSTM forget-gate biases"
    )
    g.add_argument(
        "--state-size", type=int, default=16, metavar="N", help="state size N of the SSM and Mamba cells (default 16)"
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


def run_gradients(args) -> int:
    from lstmkit.explain import gradients, gradients_table

    if args.format == "png" and args.output is None:
        raise ValueError("--format png writes a picture: name the file with -o FILE.png")
    if args.output is not None:
        check_output_file(args.output)
    curves = gradients.gradient_by_lag(
        args.length, args.hidden_size, args.input_size, args.forget_bias, args.seed, args.state_size
    )
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
