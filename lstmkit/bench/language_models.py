"""xLSTM language models against the authors' models with the same (imported) weights.

Training step = forward + cross-entropy + backward + AdamW step, batch B of T tokens:

    lstmkit xLSTMLM     vs  authors' xLSTMLMModel (sLSTM backend "vanilla", their CPU path), blocks "msms"
    lstmkit xLSTMLarge  vs  authors' xLSTMLarge (chunkwise--native_autograd, native step kernels)

Each model has its own optimizer; both start from the same weights. Target (issue 8): xLSTMLM ≥ 1.5×.

Generation latency: the time of one new token (batch 1, `model(token, state)`) after a context of
64 … 4096 tokens, for our xLSTMLM (context read in one forward pass) and their `step()` (context read
step by step, their only way to build a state). The state has a fixed size, so the time should not
grow with the context: the flatness row compares ours at the longest context with ours at the shortest
(target: at most 1.2× slower, ratio ≥ 1/1.2).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from lstmkit.bench.peers import need
from lstmkit.bench.results import Row
from lstmkit.bench.timing import CPU, median_ms, race

TRAINING = "xLSTM LM training step"
GENERATION = "Generation latency vs context"
LM_SIZES, QUICK_LM_SIZES = {"E": 128, "T": 256, "B": 8, "vocab": 256}, {"E": 32, "T": 32, "B": 2, "vocab": 64}
CONTEXTS, QUICK_CONTEXTS = (64, 256, 1024, 4096), (8, 32)
BLOCKS = "msms"


def their_lm(E: int, vocab: int, context: int):
    x = need("xlstm")
    config = x.xLSTMLMModelConfig(
        mlstm_block=x.mLSTMBlockConfig(
            mlstm=x.mLSTMLayerConfig(conv1d_kernel_size=4, qkv_proj_blocksize=4, num_heads=4)
        ),
        slstm_block=x.sLSTMBlockConfig(
            slstm=x.sLSTMLayerConfig(
                backend="vanilla",
                num_heads=4,
                conv1d_kernel_size=4,
                dtype="float32",
                enable_automatic_mixed_precision=False,
            ),
            feedforward=x.FeedForwardConfig(proj_factor=1.3, act_fn="gelu"),
        ),
        context_length=context,
        num_blocks=len(BLOCKS),
        embedding_dim=E,
        vocab_size=vocab,
        slstm_at=[i for i, letter in enumerate(BLOCKS) if letter == "s"],
    )
    model = x.xLSTMLMModel(config)
    model.reset_parameters()
    return model


def their_large(E: int, vocab: int, chunk_size: int):
    large = need("xlstm.xlstm_large.model")
    config = large.xLSTMLargeConfig(
        embedding_dim=E,
        num_heads=4,
        num_blocks=2,
        vocab_size=vocab,
        chunkwise_kernel="chunkwise--native_autograd",
        sequence_kernel="native_sequence__native",
        step_kernel="native",
        mode="train",
        chunk_size=chunk_size,
        autocast_kernel_dtype="float32",
        inference_state_dtype="float32",
        norm_reduction_force_float32=False,
        return_last_states=True,  # with False their mLSTM layer unpacks h as if it were (h, state) (xlstm 2.0.6)
    )
    return large.xLSTMLarge(config)


def train_step(model, optimizer, tokens: torch.Tensor, returns_state: bool):
    """One step: next-token cross-entropy over the batch, backward, AdamW."""

    def run() -> None:
        out = model(tokens[:, :-1])
        logits = out[0] if returns_state else out
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return run


def training_rows(quick: bool, repeats: int, device: torch.device = CPU, sync=None) -> Iterator[Row]:
    from lstmkit.nn.compat import from_xlstm

    s = QUICK_LM_SIZES if quick else LM_SIZES
    tokens = torch.randint(0, s["vocab"], (s["B"], s["T"] + 1), generator=torch.Generator().manual_seed(1)).to(device)
    torch.manual_seed(0)
    chunk = min(64, s["T"] // 2)  # their chunkwise kernel needs T divisible by the chunk size
    pairs = [
        ("lstmkit xLSTMLM", "authors xLSTMLMModel", their_lm(s["E"], s["vocab"], s["T"]), 1.5),
        ("lstmkit xLSTMLarge", "authors xLSTMLarge", their_large(s["E"], s["vocab"], chunk), None),
    ]
    for ours_name, peer_name, theirs, target in pairs:
        theirs = theirs.to(device).train()
        ours = from_xlstm(theirs).train()
        returns_state = {ours_name: True, peer_name: peer_name == "authors xLSTMLarge"}
        steps = {
            name: train_step(model, torch.optim.AdamW(model.parameters(), lr=1e-3), tokens, returns_state[name])
            for name, model in ((ours_name, ours), (peer_name, theirs))
        }
        runs = race(steps, repeats, sync)
        case = f"E{s['E']} T{s['T']} B{s['B']} vocab {s['vocab']}" + (
            f" blocks {BLOCKS}" if "LMModel" in peer_name else " 2 blocks"
        )
        yield Row(
            family=TRAINING,
            case=case,
            mode="train step",
            ours=ours_name,
            ours_value=median_ms(runs[ours_name]),
            peer=peer_name,
            peer_value=median_ms(runs[peer_name]),
            target=target,
            ours_runs=runs[ours_name],
            peer_runs=runs[peer_name],
        )


def stepper(step, state):
    """A zero-argument call that feeds the next token and keeps the state it returns (tokens cycle)."""
    feed = iter(range(10**9))
    holder = [state]

    def run() -> None:
        token = torch.tensor([[next(feed) % 7]])
        holder[0] = step(token, holder[0])

    return run


@torch.no_grad()
def generation_rows(quick: bool, repeats: int, device: torch.device = CPU, sync=None) -> Iterator[Row]:
    from lstmkit.nn.compat import from_xlstm

    s = QUICK_LM_SIZES if quick else LM_SIZES
    torch.manual_seed(0)
    theirs = their_lm(s["E"], s["vocab"], 16).eval()
    ours = from_xlstm(theirs).eval()
    contexts = QUICK_CONTEXTS if quick else CONTEXTS
    new_tokens = max(repeats, 9 if quick else 32)
    ours_ms = {}
    for context in contexts:
        prompt = torch.randint(0, s["vocab"], (1, context), generator=torch.Generator().manual_seed(context))
        _, state = ours(prompt)
        their_state = None
        for token in prompt[0].tolist():
            _, their_state = theirs.step(torch.tensor([[token]]), their_state)
        runs = race(
            {
                "lstmkit xLSTMLM": stepper(lambda x, st: ours(x, st)[1], state),
                "authors xLSTMLMModel.step": stepper(lambda x, st: theirs.step(x, st)[1], their_state),
            },
            new_tokens,
            sync,
        )
        ours_ms[context] = runs["lstmkit xLSTMLM"]
        yield Row(
            family=GENERATION,
            case=f"E{s['E']} blocks {BLOCKS}, context {context}",
            mode="per token",
            ours="lstmkit xLSTMLM",
            ours_value=median_ms(runs["lstmkit xLSTMLM"]),
            peer="authors xLSTMLMModel.step",
            peer_value=median_ms(runs["authors xLSTMLMModel.step"]),
            ours_runs=runs["lstmkit xLSTMLM"],
            peer_runs=runs["authors xLSTMLMModel.step"],
        )
    low, high = min(contexts), max(contexts)
    yield Row(
        family=GENERATION,
        case=f"flatness: context {high} vs {low}",
        mode="per token",
        ours=f"lstmkit, context {high}",
        ours_value=median_ms(ours_ms[high]),
        peer=f"lstmkit, context {low}",
        peer_value=median_ms(ours_ms[low]),
        target=1 / 1.2,
        ours_runs=ours_ms[high],
        peer_runs=ours_ms[low],
    )
