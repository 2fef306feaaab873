"""xLSTMLarge generation against the memory floor and its two peers, same weights, same run, interleaved rounds.

Decoding one token of a large model reads every weight once, so its floor is

    floor = (bytes of the weights one token reads) / (memory bandwidth)      ms per token

(the weights one token reads: all but the embedding table, of which it reads one row). The machine is shared, so
its bandwidth moves from one second to the next: the floor is measured in the same rounds as the decoders, as the
time of torch.sum over a float32 buffer of exactly those bytes (a streaming read, past every cache). A first row
gives the bandwidth of a 1 GiB read (the first rounds' median against the last rounds'). Rows, per model size:

    decode vs floor    ours' ms/token against the floor: ratio = floor / ours = the fraction of the floor reached
                       (target 0.75; none for the small model, which fits in the caches)
    decode vs peers    ms/token (batch 1, state carried; ours through `decode_in_place`, as `generate` steps it)
                       against transformers' xLSTMForCausalLM (its cache) and the xLSTM authors' xLSTMLarge in
                       inference mode with their native step kernel (CPU); target 2× (the small model: 3×)
    prefill vs peers   ms for a T-token prompt (tokens/s = T / ms · 1000), each model's prompt step as its own
                       generate runs it (`prefillers`): ours `prefill` (chunkwise form, the head on the last position
                       only), the peers' forward (every position's logits: neither peer's generate can ask for fewer);
                       target 1.5×. Untargeted rows race ours against the peers with the head on the last position
                       by hand ("last logits only"): the ratio without the head's saving
    control            the authors' model raced against itself in the same rounds, first in each size's peer rows
                       (control=True; the suite adds none of its own to this family): how far from 1.00 the
                       machine's noise alone moves a ratio; a control off flags its size's rows

All three models hold the same tensors (transformers' and the authors' are built on the meta device and given ours,
`lstmkit.nn.compat.xlstm_hf.weights_to_hf`; their keys equal but for the embedding), in bfloat16 with the random
init of `xLSTMLarge.reset_parameters`. Every candidate of a size runs in one race (`timing.race`): in each round
each candidate makes one call, in rotated order. The thread count is the caller's (torch.set_num_threads).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import torch

from lstmkit.bench.peers import need
from lstmkit.bench.results import Row
from lstmkit.bench.timing import median_ms, race

DECODE, PREFILL, FLOOR = "xLSTMLarge decode vs peers", "xLSTMLarge prefill vs peers", "xLSTMLarge decode vs floor"
VOCAB = 50304
SIZES = {
    "small E128 6 blocks": {"embedding_dim": 128, "num_blocks": 6, "num_heads": 4, "vocab_size": 256},
    "124M E640 12 blocks": {"embedding_dim": 640, "num_blocks": 12, "num_heads": 4, "vocab_size": VOCAB},
    "356M E1024 22 blocks": {"embedding_dim": 1024, "num_blocks": 22, "num_heads": 8, "vocab_size": VOCAB},
    "1.3B E2048 22 blocks": {"embedding_dim": 2048, "num_blocks": 22, "num_heads": 8, "vocab_size": VOCAB},
}
QUICK_SIZES = ("small E128 6 blocks", "124M E640 12 blocks")
PROMPT, QUICK_PROMPT = 256, 64
"""Prompt lengths (multiples of the chunk size 64: the authors' inference mode runs a remainder step by step)."""
OURS, HF, AUTHORS = "lstmkit xLSTMLarge", "transformers xLSTMForCausalLM", "authors xLSTMLarge (native step)"
READ = "floor: torch.sum over the weights' bytes"
AGAIN = " (again)"
LAST = ", last logits only"
BANDWIDTH_BYTES = 2**30


def bandwidth(repeats: int) -> list[float]:
    """GB/s of each of `repeats` sums over a 1 GiB float32 buffer (after one warm-up sum)."""
    buffer = torch.ones(BANDWIDTH_BYTES // 4)
    buffer.sum()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        buffer.sum()
        rates.append(BANDWIDTH_BYTES / (time.perf_counter() - start) / 1e9)
    return rates


def reader(nbytes: int) -> Callable[[], None]:
    """One streaming read of `nbytes` (torch.sum over a float32 buffer of that size): the decode floor."""
    buffer = torch.ones(nbytes // 4)
    return lambda: buffer.sum()


def ours_model(fields: dict):
    from lstmkit.nn.xlstm.large import xLSTMLarge, xLSTMLargeConfig

    torch.manual_seed(0)
    return xLSTMLarge(xLSTMLargeConfig(**fields), dtype=torch.bfloat16).eval()


def hf_model(ours):
    """transformers' xLSTMForCausalLM holding ours' tensors."""
    transformers = need("transformers")
    from lstmkit.nn.compat.xlstm_hf import config_to_hf, weights_to_hf

    transformers.logging.set_verbosity_error()
    config = transformers.xLSTMConfig(**config_to_hf(ours.config, torch.bfloat16))
    with torch.device("meta"):
        hf = transformers.xLSTMForCausalLM(config)
    hf.load_state_dict(weights_to_hf(ours), strict=True, assign=True)
    return hf.to(torch.bfloat16).eval()


def authors_model(ours):
    """The authors' xLSTMLarge (inference mode, native kernels) holding ours' tensors."""
    large = need("xlstm.xlstm_large.model")
    from lstmkit.nn.compat.xlstm_hf import weights_to_hf

    c = ours.config
    config = large.xLSTMLargeConfig(
        embedding_dim=c.embedding_dim,
        num_heads=c.num_heads,
        num_blocks=c.num_blocks,
        vocab_size=c.vocab_size,
        use_bias=c.use_bias,
        norm_eps=c.norm_eps,
        add_out_norm=c.add_out_norm,
        qk_dim_factor=c.qk_dim_factor,
        v_dim_factor=c.v_dim_factor,
        gate_soft_cap=c.gate_soft_cap,
        output_logit_soft_cap=c.output_logit_soft_cap,
        ffn_proj_factor=c.ffn_proj_factor,
        ffn_round_up_to_multiple_of=c.ffn_round_up_to,
        eps=c.eps,
        chunk_size=c.chunk_size,
        chunkwise_kernel="chunkwise--native_autograd",
        sequence_kernel="native_sequence__native",
        step_kernel="native",
        mode="inference",
        return_last_states=True,
        autocast_kernel_dtype="bfloat16",
        inference_state_dtype="float32",
    )
    weights = weights_to_hf(ours)
    weights["embedding.weight"] = weights.pop("backbone.embeddings.weight")
    with torch.device("meta"):
        theirs = large.xLSTMLarge(config)
    theirs.load_state_dict(weights, strict=True, assign=True)
    return theirs.eval()


def authors_state(ours, batch: int) -> dict:
    """Their zero state in bfloat16, as transformers' cache holds it: from None (float32 states) their native
    chunkwise kernel fails on bfloat16 inputs (xlstm 2.0.6: "expected m1 and m2 to have the same dtype")."""
    c = ours.config
    NH = c.num_heads
    DK, DV = c.qk_dim // NH, c.v_dim // NH

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(*shape, dtype=torch.bfloat16)

    return {i: (zeros(batch, NH, DK, DV), zeros(batch, NH, DK), zeros(batch, NH, 1)) for i in range(c.num_blocks)}


def decoders(ours, hf, theirs, prompt: torch.Tensor) -> dict[str, Callable[[], None]]:
    """One call = one new token (batch 1) with the state carried, for each model, after the same prompt."""
    holders = {OURS: [ours(prompt)[1]], HF: [hf(input_ids=prompt, use_cache=True).cache_params]}
    holders[AUTHORS] = [theirs(prompt, authors_state(ours, 1))[1]]
    holders[AUTHORS + AGAIN] = [theirs(prompt, authors_state(ours, 1))[1]]
    token = prompt[:, -1:]

    def ours_step() -> None:  # what `generate` calls after the prompt
        holders[OURS][0] = ours.decode_in_place(token, holders[OURS][0])[1]

    def hf_step() -> None:
        holders[HF][0] = hf(input_ids=token, cache_params=holders[HF][0], use_cache=True).cache_params

    def authors_step(name: str) -> Callable[[], None]:
        def step() -> None:
            holders[name][0] = theirs(token, holders[name][0])[1]

        return step

    return {
        OURS: ours_step,
        HF: hf_step,
        AUTHORS: authors_step(AUTHORS),
        AUTHORS + AGAIN: authors_step(AUTHORS + AGAIN),
        READ: reader(weight_bytes(ours)),
    }


def prefillers(ours, hf, theirs, prompt: torch.Tensor) -> dict[str, Callable[[], None]]:
    """One call = each model's prompt step of its own generate: ours `prefill` (the last position's logits, as
    `lstmkit.nn.generate` calls it), the peers' forward with every position's logits (their generate's prompt step:
    transformers 5.23's xLSTMForCausalLM.forward takes no `logits_to_keep`, so its generate cannot ask for the last
    row; the authors' `generate_tokens` calls forward on the whole prompt). The peers once more with the head on
    the last position only (`LAST`): the same saving given to them, by hand."""
    cap = ours.config.output_logit_soft_cap
    soft_cap = need("xlstm.xlstm_large.components").soft_cap

    def hf_last() -> None:
        x = hf.backbone(input_ids=prompt, use_cache=True).last_hidden_state  # out norm applied
        soft_cap(hf.lm_head(x[:, -1:]).float(), cap)

    def authors_last() -> None:
        x, _ = theirs.backbone(theirs.embedding(prompt), authors_state(ours, 1))  # out norm applied
        soft_cap(theirs.lm_head(x[:, -1:]), cap)

    return {
        OURS: lambda: ours.prefill(prompt),
        HF: lambda: hf(input_ids=prompt, use_cache=True),
        AUTHORS: lambda: theirs(prompt, authors_state(ours, 1)),
        AUTHORS + AGAIN: lambda: theirs(prompt, authors_state(ours, 1)),
        HF + LAST: hf_last,
        AUTHORS + LAST: authors_last,
    }


def kernel_name() -> str:
    """Which matrix-vector products ours' decode step runs (`lstmkit.nn.xlstm.large_step`)."""
    from lstmkit.nn.xlstm.large_step import extension

    ops = extension()
    if ops is None:
        return "the Python path (C++ step not built)"
    return "AVX-512 BF16 kernel" if ops.kernel(torch.ones(1, dtype=torch.bfloat16)) else "ATen mm"


def weight_bytes(ours) -> int:
    """Bytes one decoded token reads: every parameter but the embedding table (one row of it)."""
    return sum(p.numel() * p.element_size() for name, p in ours.named_parameters() if name != "embedding.weight")


def control_row(family: str, case: str, mode: str, runs: dict[str, list[float]]) -> Row:
    """The authors' model against itself in the same rounds (control=True): the noise alone, ideally 1.00."""
    return Row(
        family=family,
        case=f"{case}, control",
        mode=mode,
        ours=AUTHORS + AGAIN,
        ours_value=median_ms(runs[AUTHORS + AGAIN]),
        peer=AUTHORS,
        peer_value=median_ms(runs[AUTHORS]),
        ours_runs=runs[AUTHORS + AGAIN],
        peer_runs=runs[AUTHORS],
        control=True,
    )


def peer_rows(control: Row, case: str, runs: dict[str, list[float]], target: float) -> Iterator[Row]:
    """The control first, then ours against each peer (and each peer's `LAST` variant where raced, untargeted),
    flagged when the control is off."""
    yield control
    for peer in (HF, AUTHORS, HF + LAST, AUTHORS + LAST):
        if peer not in runs:
            continue
        yield Row(
            family=control.family,
            case=case,
            mode=control.mode,
            ours=OURS,
            ours_value=median_ms(runs[OURS]),
            peer=peer,
            peer_value=median_ms(runs[peer]),
            target=None if peer.endswith(LAST) else target,
            ours_runs=runs[OURS],
            peer_runs=runs[peer],
            control_off=control.off,
        )


@torch.no_grad()
def decode_rows(quick: bool, repeats: int) -> Iterator[Row]:
    """The bandwidth, then per size: decode vs floor, decode vs peers (+ control), prefill vs peers (+ control)."""
    need("transformers")
    need("xlstm.xlstm_large.model")
    rates = bandwidth(max(3, repeats))
    yield Row(
        family=FLOOR,
        case="stream read of 1 GiB float32 (torch.sum)",
        mode="GB/s",
        ours="read (first half of the rounds)",
        ours_value=statistics.median(rates[: len(rates) // 2 or 1]),
        peer="read (second half)",
        peer_value=statistics.median(rates[len(rates) // 2 :]),
        unit="GB/s",
    )
    T = QUICK_PROMPT if quick else PROMPT
    for name in QUICK_SIZES if quick else SIZES:
        ours = ours_model(SIZES[name])
        hf, theirs = hf_model(ours), authors_model(ours)
        prompt = torch.randint(0, ours.config.vocab_size, (1, T), generator=torch.Generator().manual_seed(0))
        small = ours.config.vocab_size < VOCAB
        rounds = max(repeats, 20 if small else 5 if quick else 7)
        runs = race(decoders(ours, hf, theirs, prompt), rounds)
        floor_ms = median_ms(runs[READ])
        case = f"{name} bf16 B1"
        decode_control = control_row(DECODE, case, "per token", runs)
        yield Row(
            family=FLOOR,
            case=f"{name} bf16 B1: {weight_bytes(ours) / 1e6:.0f} MB at {weight_bytes(ours) / floor_ms / 1e6:.1f} GB/s"
            f", products by {kernel_name()}",
            mode="per token",
            ours=OURS,
            ours_value=median_ms(runs[OURS]),
            peer=READ,
            peer_value=floor_ms,
            target=None if small else 0.75,
            ours_runs=runs[OURS],
            peer_runs=runs[READ],
            control_off=decode_control.off,  # the same race's control: the first of the next table's rows
        )
        yield from peer_rows(decode_control, case, runs, 3.0 if small else 2.0)
        runs = race(prefillers(ours, hf, theirs, prompt), max(repeats, 3))
        case = f"{name} bf16 B1 T{T}"
        yield from peer_rows(control_row(PREFILL, case, "prefill", runs), case, runs, 1.5)
        del ours, hf, theirs
