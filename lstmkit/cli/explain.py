"""`lstmkit explain`: pictures (PNG) of what a trained run's model does with one input."""

from __future__ import annotations

from lstmkit.cli.options import add_cache_option
from lstmkit.cli.threads import add_threads_option

EXPLAIN_EXAMPLES = """examples:
  lstmkit explain runs/shakespeare-lstm --text "ROMEO: What say you?" --cell 17
  lstmkit explain runs/sentiment-lstm --text "A moving, beautiful film." -o pictures/
  lstmkit explain runs/parity-xlstm --layer 0 --steps 1 10 40     # a test-split sequence, mLSTM memory
  lstmkit explain runs/adding-lstm                                 # gate heatmaps of a test sequence"""


def add_verb(verbs) -> None:
    e = verbs.add_parser(
        "explain", help="pictures of a trained model's gates and states on one input", epilog=EXPLAIN_EXAMPLES
    )
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run folder or one of its step-NNNNNNNN checkpoints")
    e.add_argument(
        "--text",
        default=None,
        help="the input, for character and sentiment models (default: a sequence of the task's test split)",
    )
    e.add_argument(
        "--cell",
        type=int,
        default=None,
        metavar="N",
        help="the unit whose value colours the text (Mamba: a channel's Δ; Mamba-2: a head's; "
        "default: the one that varies most)",
    )
    e.add_argument("--layer", type=int, default=None, metavar="L", help="only this layer or block (default: all)")
    e.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=None,
        metavar="T",
        help="steps (1..length) at which to show the mLSTM memory (default: 4 spread evenly)",
    )
    add_cache_option(e)
    e.add_argument(
        "-o",
        "--output",
        metavar="OUT_DIR",
        help="folder for the pictures (default RUN_DIR/explain; "
        "for a checkpoint RUN/step-N, RUN/explain-step-N, which rotation never deletes)",
    )
    add_threads_option(e)
    e.set_defaults(run=run_explain)


def run_explain(args) -> int:
    from lstmkit.cli.output import default_output
    from lstmkit.experiment import load_run
    from lstmkit.explain.trained.pictures import explain_run
    from lstmkit.explain.trained.recording import inputs_for
    from lstmkit.files import check_output_dir, make_output_dir, write_into

    out = args.output if args.output is not None else str(default_output(args.run_dir, "explain"))
    run = load_run(args.run_dir)  # first, so that a missing run is named before its default output folder
    check_output_dir(out)  # before the pictures are drawn (and before Path turns '' into '.'); creates nothing
    inputs = inputs_for(run, args.text, args.cache_dir)
    pictures = explain_run(run, inputs, cell=args.cell, layer=args.layer, steps=args.steps)
    out = make_output_dir(out)
    for name, data in pictures.items():
        write_into(out, name, data)
    count = f"{len(pictures)} picture" + ("s" if len(pictures) != 1 else "")
    print(f"{count} of {inputs.source} in {out}: {', '.join(pictures)}")
    return 0
