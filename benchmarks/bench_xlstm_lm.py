"""Our xLSTMLM against the xLSTM authors' xLSTMLMModel with identical (imported) weights, in one process.

    .venv/bin/python benchmarks/bench_xlstm_lm.py            # the issue's shapes, 5 repeats
    .venv/bin/python benchmarks/bench_xlstm_lm.py --quick    # small shapes, 2 repeats (smoke run)

1. Training step: forward + cross-entropy + backward + AdamW step, blocks "msms", E = 128, T = 256,
   B = 8, vocabulary 256; their sLSTM backend "vanilla" (their CPU path), their mLSTM the parallel
   kernel their xLSTMLMModel uses. Both models start from the same weights; each has its own optimizer.
   Interleaved, rotating who goes first, after one warm-up; medians; tokens/s and the ratio ours/theirs.
2. Generation latency: the time of one new token (batch 1, `forward(token, state)`) after a context of
   64 and of 4096 tokens, median over 32 tokens, for our model; their `step()` for comparison (it is
   also constant per token; note their sLSTM step does not advance its state, see lstmkit.nn.compat).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def their_model(blocks: str, E: int, vocab: int, context: int):
    from xlstm import (
        FeedForwardConfig,
        mLSTMBlockConfig,
        mLSTMLayerConfig,
        sLSTMBlockConfig,
        sLSTMLayerConfig,
        xLSTMLMModel,  # fmt: skip
        xLSTMLMModelConfig,
    )

    config = xLSTMLMModelConfig(
        mlstm_block=mLSTMBlockConfig(mlstm=mLSTMLayerConfig(conv1d_kernel_size=4, qkv_proj_blocksize=4, num_heads=4)),
        slstm_block=sLSTMBlockConfig(
            slstm=sLSTMLayerConfig(backend="vanilla", num_heads=4, conv1d_kernel_size=4, dtype="float32",
                                   enable_automatic_mixed_precision=False),
            feedforward=FeedForwardConfig(proj_factor=1.3, act_fn="gelu")),
        context_length=context, num_blocks=len(blocks), embedding_dim=E, vocab_size=vocab,
        slstm_at=[i for i, letter in enumerate(blocks) if letter == "s"],
    )  # fmt: skip
    model = xLSTMLMModel(config)
    model.reset_parameters()
    return model


def train_step(model, optimizer, tokens: torch.Tensor, ours: bool) -> float:
    start = time.perf_counter()
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    logits = model(inputs)[0] if ours else model(inputs)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def training(blocks: str, E: int, T: int, B: int, vocab: int, repeats: int) -> None:
    from lstmkit.nn.compat import from_xlstm

    torch.manual_seed(0)
    theirs = their_model(blocks, E, vocab, T)
    ours = from_xlstm(theirs)
    models = {"authors xLSTMLMModel": (theirs, False), "lstmkit xLSTMLM": (ours, True)}
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-3) for name, (model, _) in models.items()}
    tokens = torch.randint(0, vocab, (B, T + 1), generator=torch.Generator().manual_seed(1))
    times = {name: [] for name in models}
    for name, (model, is_ours) in models.items():
        train_step(model, optimizers[name], tokens, is_ours)  # warm-up
    names = list(models)
    for r in range(repeats):
        for name in names[r % 2 :] + names[: r % 2]:
            model, is_ours = models[name]
            times[name].append(train_step(model, optimizers[name], tokens, is_ours))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\n### Training step: blocks {blocks!r}, E={E}, T={T}, B={B}, vocab {vocab} (median of {repeats})\n")
    print("| candidate | ms / step | tokens / s |")
    print("|---|---:|---:|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds * 1e3:.1f} | {B * T / seconds:,.0f} |")
    ratio = medians["authors xLSTMLMModel"] / medians["lstmkit xLSTMLM"]
    print(f"\nratio (lstmkit tokens/s ÷ authors tokens/s): {ratio:.2f}")


@torch.no_grad()
def per_token(step, state, tokens: list[int]) -> float:
    times = []
    for token in tokens:
        start = time.perf_counter()
        state = step(torch.tensor([[token]]), state)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generation(blocks: str, E: int, vocab: int, contexts: tuple[int, ...], new_tokens: int) -> None:
    from lstmkit.nn.compat import from_xlstm

    torch.manual_seed(0)
    theirs = their_model(blocks, E, vocab, 16).eval()
    ours = from_xlstm(theirs).eval()
    sampled = torch.randint(0, vocab, (new_tokens,), generator=torch.Generator().manual_seed(3)).tolist()
    print(f"\n### Generation: one new token after a context, blocks {blocks!r}, E={E}, batch 1 "
          f"(median of {new_tokens} tokens)\n")  # fmt: skip
    print("| context | lstmkit ms / token | authors step() ms / token |")
    print("|---:|---:|---:|")
    ours_ms = {}
    for context in contexts:
        prompt = torch.randint(0, vocab, (1, context), generator=torch.Generator().manual_seed(context))
        with torch.no_grad():
            _, state = ours(prompt)
        ours_ms[context] = per_token(lambda x, s: ours(x, s)[1], state, sampled) * 1e3
        their_state = None  # their step() from the zero state; its cost does not depend on the context either
        with torch.no_grad():
            for token in prompt[0, -8:].tolist():
                _, their_state = theirs.step(torch.tensor([[token]]), their_state)
        theirs_ms = per_token(lambda x, s: theirs.step(x, s)[1], their_state, sampled) * 1e3
        print(f"| {context} | {ours_ms[context]:.2f} | {theirs_ms:.2f} |")
    low, high = min(contexts), max(contexts)
    print(f"\nratio (lstmkit ms/token at context {high} ÷ at {low}): {ours_ms[high] / ours_ms[low]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        training("msms", 32, 32, 2, 64, repeats=2)
        generation("msms", 32, 64, (16, 64), new_tokens=4)
    else:
        training("msms", 128, 256, 8, 256, repeats=5)
        generation("msms", 128, 256, (64, 4096), new_tokens=32)


if __name__ == "__main__":
    main()
