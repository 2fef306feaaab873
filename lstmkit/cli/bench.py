"""`lstmkit bench`: the benchmark suite, our layers against their peers (see lstmkit/bench/)."""

from __future__ import annotations

from pathlib import Path

BENCH_EXAMPLES = """examples:
  lstmkit bench                          # every family; tables on screen, runs/bench/bench.{json,md}
  lstmkit bench --quick                  # small sizes, 2 rounds: every row in about 10 s
  lstmkit bench --only mlstm slstm -o runs/bench-xlstm
  lstmkit bench --only rnn --threads 1 --repeats 9

families: rnn (LSTM/GRU/RNN vs torch.nn and an nn.LSTMCell loop), mlstm (forms vs T vs mlstm_kernels),
slstm (vs the authors' vanilla sLSTM), lm (xLSTM LM training step vs xLSTMLMModel and xLSTMLarge),
generation (latency vs context), memory (peak vs T), mamba (selective scan and SSD vs mambapy and transformers,
Mamba LM training step, generation and peak memory vs transformers' MambaForCausalLM and mambapy),
gpu (on a CUDA device, when there is one)."""


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
    b.add_argument("--threads", type=int, default=None, metavar="N", help="torch threads (default: torch's own)")
    b.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="DIR",
        help="folder for bench.json and bench.md (default runs/bench; runs/bench-quick with --quick)",
    )
    b.set_defaults(run=run_bench)


def run_bench(args) -> int:
    from lstmkit.bench.suite import ALL, check_threads, run, set_threads
    from lstmkit.files import check_output_dir

    repeats = args.repeats if args.repeats is not None else 2 if args.quick else 5
    if repeats < 1:
        raise ValueError(f"--repeats is {repeats}, expected at least 1")
    check_threads(args.threads)
    out = args.output if args.output is not None else "runs/bench-quick" if args.quick else "runs/bench"
    check_output_dir(out)  # before minutes of measuring, not after (and before Path turns '' into '.')
    set_threads(args.threads)
    run(args.only or ALL, args.quick, repeats, Path(out))
    return 0
