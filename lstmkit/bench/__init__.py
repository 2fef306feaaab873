"""lstmkit's benchmark suite: our layers against their peers, side by side, in one process.

    lstmkit bench                    the full suite, tables + runs/bench/
    lstmkit bench --quick            small sizes, 2 rounds: every row, in seconds (what `make test` runs)
    lstmkit bench --only rnn mlstm   some families

Files, one idea each:

    timing.py           race(): candidates interleaved, rotated, medians
    results.py          Row (ours vs peer, ratio, target, FLOPs), the Markdown tables and the JSON
    machine.py          the machine, and its float32 GEMM rate (torch.mm and oneDNN)
    flops.py            FLOP counts of the recurrent layers (the mLSTM's is beside its code)
    rnn_layers.py       LSTM / GRU / RNN vs torch.nn and a loop of nn.LSTMCell
    xlstm_cells.py      mLSTM forms vs T, and the sLSTM layer, vs the xLSTM authors' kernels
    language_models.py  xLSTM LM training step, and generation latency vs context
    mamba.py            the selective scan and SSD vs mambapy and transformers
    mamba_models.py     Mamba LM training step, generation and peak memory vs transformers and mambapy
    large_decode.py     xLSTMLarge (the 7B's layout) decode vs the memory floor, decode and prefill vs transformers
                        and the authors, its own control per case
    xlstm_vs_lstm.py    the xLSTM's training step vs the LSTM of equal parameters (the demo's and yardsticks' sizes)
    memory.py           peak memory vs T, each in a fresh process
    gpu.py              the same on a CUDA GPU, when there is one
    suite.py            runs the families, prints, writes bench.json and bench.md

Each timed table opens with a control row (the peer raced against itself, ideally 1.00; off by more than 10 %, the
table is flagged), and each row gives the IQR of its per-round ratios. Speed is measured here and never asserted
in tests: `make test` runs the quick suite and checks only
that every row is produced and every ratio is a finite number.
"""
