"""`lstmkit bench`: the benchmark suite, our layers against their peers (see lstmkit/bench/).

Without --threads the suite runs twice, at 1 and at 2 torch threads, one table per family and count (a
shared machine can make more threads slower: both are shown); --quick runs at 1 thread only, to stay a
smoke run of a few seconds a family. `--threads N` measures at N alone.
"""

from __future__ import annotations

from pathlib import Path

from lstmkit.cli.threads import add_threads_option

BOTH = (1, 2)
"""The thread counts of a full run when --threads is left out."""

BENCH_EXAMPLES = """examples:
  lstmkit bench                          # every family at 1 and 2 threads; tables, runs/bench/bench.{json,md}
  lstmkit bench --quick                  # small sizes, 2 rounds, 1 thread: every row in under a minute
  lstmkit bench --only mlstm slstm -o runs/bench-xlstm
  lstmkit bench --only rnn --threads 1 --repeats 9

families: rnn (LSTM/GRU/RNN vs torch.nn and an nn.LSTMCell loop), mlstm (forms vs T vs mlstm_kernels),
slstm (vs the authors' vanilla sLSTM), lm (xLSTM LM training step vs xLSTMLMModel and xLSTMLarge),
generation (latency vs context), memory (peak vs T), mamba (selective scan and SSD vs mambapy and transformers,
Mamba LM training step, generation and peak memory vs transformers' MambaForCausalLM and mambapy),
gpu (on a CUDA device, when there is one).

each table starts with a control row, the peer raced against itself: it should read 1.00; outside 1 ± 10 %
the machine was too noisy and the table's ratios are flagged ⚠. The IQR column is the spread of the
per-round ratios."""


def add_verb(verbs) -> None:
    from lstmkit.bench.suite import ALL

    b = verbs.add_parser(
        "bench", help="benchmarks against torch.nn and the xLSTM authors' kernels, side by side", epilog=BENCH_EXAMPLES
    )
    b.add_argument("--quick", action="store_true", help="small sizes and 2 rounds (a smoke run of every row)")
    b.add_argument("--only", nargs="+", choices=ALL, metavar="FAMILY", help=f"run only these ({', '.join(ALL)})")
    b.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help="interleaved rounds per case, after one warm-up (default 5; 2 with --quick)",
    )
    add_threads_option(b, default=None, shown="1 and 2, one table each; 1 with --quick")
    b.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="DIR",
        help="folder for bench.json and bench.md (default runs/bench; runs/bench-quick with --quick)",
    )
    b.set_defaults(run=run_bench)


def run_bench(args) -> int:
    from lstmkit.bench.suite import ALL, run
    from lstmkit.files import check_output_dir

    repeats = args.repeats if args.repeats is not None else 2 if args.quick else 5
    if repeats < 1:
        raise ValueError(f"--repeats is {repeats}, expected at least 1")
    out = args.output if args.output is not None else "runs/bench-quick" if args.quick else "runs/bench"
    check_output_dir(out)  # before minutes of measuring, not after (and before Path turns '' into '.')
    threads = (args.threads,) if args.threads is not None else BOTH[:1] if args.quick else BOTH
    run(args.only or ALL, args.quick, repeats, Path(out), threads=threads)  # --threads N is checked by cli.main
    return 0
