"""Mamba language models against transformers' and mambapy's, the same weights loaded into each.

Training step = forward + cross-entropy + backward + AdamW step, batch B of T tokens, E = 128, 2 layers, N = 16:

    lstmkit MambaLM                         the scan's "auto" form (the C++ loop on CPU)
    transformers MambaForCausalLM           use_mambapy=True: mambapy's parallel scan inside HF's mixer, its
                                            fastest CPU path (the default is a Python loop over time)
    mambapy Mamba                           mambapy.mamba.Mamba with an embedding, final RMSNorm and tied head
                                            around it (mambapy.lm needs mamba_ssm, which does not import on CPU)

Weights: lstmkit's random ones copied by name (`hf_state_dict`): their backbone.embeddings = our embedding,
backbone.layers.{i}.mixer.X = our stack.blocks.{i}.layer.X (conv1d.weight (I, 1, K) there, (I, K) here),
backbone.layers.{i}.norm = our stack.blocks.{i}.norm, backbone.norm_f = our stack.norm; the head is tied.
Target: ≥ 2× each peer (so ≥ 2× the fastest).

Generation: the time of one new token (batch 1) after a context of 64 … 4096 tokens: our `model(token, state)`
after one forward pass over the context, their `model(token, cache_params=cache, use_cache=True)` after their
prefill. The flatness row races ours at the longest context against ours at the shortest, interleaved (at most
1.2× slower): two separate races would compare different moments of a shared machine.
Target per token ≥ 2× transformers.

Peak memory of one training step as T grows, each (candidate, T) in a fresh process (`memory.py`'s method:
VmHWM - VmRSS before the step); the linearity row compares our peak at the longest T with our peak at the
shortest scaled by the ratio of lengths (at or above 1: no worse than linear in T).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from lstmkit.bench.flops import with_backward
from lstmkit.bench.peers import need
from lstmkit.bench.results import Row
from lstmkit.bench.timing import median_ms, race

TRAINING = "Mamba LM training step"
GENERATION = "Mamba generation latency vs context"
MEMORY = "Mamba peak memory vs T (LM training step)"
LM_SIZES, QUICK_LM_SIZES = {"E": 128, "T": 256, "B": 8, "vocab": 256}, {"E": 32, "T": 32, "B": 2, "vocab": 64}
CONTEXTS, QUICK_CONTEXTS = (64, 256, 1024, 4096), (8, 32)
MEMORY_LENGTHS, QUICK_MEMORY_LENGTHS = (256, 1024, 4096), (32, 64)
LAYERS, STATE = 2, 16
OURS, HF, MAMBAPY = "lstmkit MambaLM", "transformers MambaForCausalLM (use_mambapy)", "mambapy Mamba + head"


def ours_lm(E: int, vocab: int, seed: int = 0):
    from lstmkit.nn.mamba import MambaConfig, MambaLM

    torch.manual_seed(seed)
    return MambaLM(MambaConfig(vocab_size=vocab, embedding_dim=E, num_layers=LAYERS, state_size=STATE))


def hf_state_dict(ours) -> dict[str, torch.Tensor]:
    """Our MambaLM's weights under transformers' names (a copy; the conv weight gains its middle axis)."""
    out = {"backbone.embeddings.weight": ours.embedding.weight, "backbone.norm_f.weight": ours.stack.norm.weight}
    for name, tensor in ours.stack.blocks.state_dict().items():
        i, part, rest = name.split(".", 2)  # "0", "layer" or "norm", the rest
        theirs = f"backbone.layers.{i}.{'mixer' if part == 'layer' else 'norm'}.{rest}"
        out[theirs] = tensor[:, None, :] if rest == "conv1d.weight" else tensor
    out["lm_head.weight"] = ours.head.weight
    return {k: v.detach().clone() for k, v in out.items()}


def hf_lm(ours):
    """transformers' MambaForCausalLM with use_mambapy, our weights."""
    hf = need("transformers")
    need("mambapy.pscan")  # without it use_mambapy silently falls back to the loop
    c = ours.config
    config = hf.MambaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.embedding_dim,
        state_size=c.state_size,
        num_hidden_layers=c.num_layers,
        expand=c.expand,
        conv_kernel=c.conv_kernel,
        layer_norm_epsilon=c.norm_eps,
        use_mambapy=True,
        tie_word_embeddings=True,
    )
    model = hf.MambaForCausalLM(config)
    model.load_state_dict(hf_state_dict(ours), strict=True)
    return model


class MambapyLM(nn.Module):
    """mambapy's Mamba stack between an embedding and a tied head, as mambapy.lm would put them."""

    def __init__(self, ours) -> None:
        super().__init__()
        mp = need("mambapy.mamba")
        c = ours.config
        config = mp.MambaConfig(
            d_model=c.embedding_dim, n_layers=c.num_layers, d_state=c.state_size, expand_factor=c.expand
        )
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        self.mamba = mp.Mamba(config)
        self.norm_f = mp.RMSNorm(c.embedding_dim, c.norm_eps)
        theirs = hf_state_dict(ours)
        mamba = {k.removeprefix("backbone."): v for k, v in theirs.items() if k.startswith("backbone.layers.")}
        self.mamba.load_state_dict(mamba, strict=True)
        self.embedding.weight.data.copy_(theirs["backbone.embeddings.weight"])
        self.norm_f.weight.data.copy_(theirs["backbone.norm_f.weight"])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm_f(self.mamba(self.embedding(tokens)))
        return x @ self.embedding.weight.t()


def lm_flops(E: int, vocab: int, B: int, T: int, mode: str) -> float:
    """Matrix-product FLOPs of our LM on B·T tokens: per layer in_proj, x_proj, dt_proj, out_proj; the head."""
    from lstmkit.nn.mamba import MambaConfig

    c = MambaConfig(vocab_size=vocab, embedding_dim=E, num_layers=LAYERS, state_size=STATE)
    I, R, N = c.inner_size, c.rank, c.state_size
    per_token = LAYERS * 2 * (E * 2 * I + I * (R + 2 * N) + R * I + I * E) + 2 * E * vocab
    return with_backward(B * T * per_token, mode)


def train_step(model, tokens: torch.Tensor, logits_of):
    """A call that runs one step: next-token cross-entropy, backward, AdamW (the model's own optimizer)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def run() -> None:
        logits = logits_of(model, tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return run


LOGITS = {
    OURS: lambda model, x: model(x)[0],
    HF: lambda model, x: model(x).logits,
    MAMBAPY: lambda model, x: model(x),
}
BUILD = {OURS: lambda ours: ours, HF: hf_lm, MAMBAPY: MambapyLM}


def training_rows(quick: bool, repeats: int) -> Iterator[Row]:
    s = QUICK_LM_SIZES if quick else LM_SIZES
    tokens = torch.randint(0, s["vocab"], (s["B"], s["T"] + 1), generator=torch.Generator().manual_seed(1))
    ours = ours_lm(s["E"], s["vocab"])
    models = {name: build(ours).train() for name, build in BUILD.items()}
    runs = race({name: train_step(m, tokens, LOGITS[name]) for name, m in models.items()}, repeats)
    for peer in (HF, MAMBAPY):
        yield Row(
            family=TRAINING,
            case=f"E{s['E']} T{s['T']} B{s['B']} N{STATE} vocab {s['vocab']} {LAYERS} layers",
            mode="train step",
            ours=OURS,
            ours_value=median_ms(runs[OURS]),
            peer=peer,
            peer_value=median_ms(runs[peer]),
            target=2.0,
            flops=lm_flops(s["E"], s["vocab"], s["B"], s["T"], "fwd+bwd"),
            ours_runs=runs[OURS],
            peer_runs=runs[peer],
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
def generation_rows(quick: bool, repeats: int) -> Iterator[Row]:
    s = QUICK_LM_SIZES if quick else LM_SIZES
    ours = ours_lm(s["E"], s["vocab"]).eval()
    theirs = hf_lm(ours).eval()
    contexts = QUICK_CONTEXTS if quick else CONTEXTS
    new_tokens = max(repeats, 9 if quick else 32)
    states = {}
    hf_name = "transformers MambaForCausalLM, cached step"
    for context in contexts:
        prompt = torch.randint(0, s["vocab"], (1, context), generator=torch.Generator().manual_seed(context))
        _, state = ours(prompt)
        states[context] = state
        cache = theirs(prompt, use_cache=True).cache_params
        runs = race(
            {
                OURS: stepper(lambda x, st: ours(x, st)[1], state),
                hf_name: stepper(lambda x, c: theirs(x, cache_params=c, use_cache=True).cache_params, cache),
            },
            new_tokens,
        )
        yield Row(
            family=GENERATION,
            case=f"E{s['E']} {LAYERS} layers, context {context}",
            mode="per token",
            ours=OURS,
            ours_value=median_ms(runs[OURS]),
            peer=hf_name,
            peer_value=median_ms(runs[hf_name]),
            target=2.0,
            ours_runs=runs[OURS],
            peer_runs=runs[hf_name],
        )
    low, high = min(contexts), max(contexts)  # the two contexts raced against each other: the same moments
    flat = race(
        {f"lstmkit, context {c}": stepper(lambda x, st: ours(x, st)[1], states[c]) for c in (high, low)}, new_tokens
    )
    yield Row(
        family=GENERATION,
        case=f"flatness: context {high} vs {low}",
        mode="per token",
        ours=f"lstmkit, context {high}",
        ours_value=median_ms(flat[f"lstmkit, context {high}"]),
        peer=f"lstmkit, context {low}",
        peer_value=median_ms(flat[f"lstmkit, context {low}"]),
        target=1 / 1.2,
        ours_runs=flat[f"lstmkit, context {high}"],
        peer_runs=flat[f"lstmkit, context {low}"],
    )


SCRIPT = """
import torch
torch.set_num_threads({threads})
from lstmkit.bench.mamba_models import memory_step
step = memory_step({name!r}, {quick}, {T})

def status_kb(key):
    line = next(x for x in open("/proc/self/status") if x.startswith(key + ":"))
    return int(line.split()[1])

before = status_kb("VmRSS")
step()
print((status_kb("VmHWM") - before) / 1024)
"""


def memory_step(name: str, quick: bool, T: int):
    """The training step of candidate `name` at length T, built (weights, optimizer, tokens) but not run."""
    s = QUICK_LM_SIZES if quick else LM_SIZES
    tokens = torch.randint(0, s["vocab"], (s["B"], T + 1), generator=torch.Generator().manual_seed(1))
    model = BUILD[name](ours_lm(s["E"], s["vocab"])).train()
    return train_step(model, tokens, LOGITS[name])


def peak_mb(name: str, quick: bool, T: int) -> float:
    """MB above the resident memory before the step, at the step's peak, in a fresh process."""
    script = SCRIPT.format(threads=torch.get_num_threads(), name=name, quick=quick, T=T)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"peak memory of {name} at T={T} failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(out.stdout.strip().splitlines()[-1])


def memory_rows(quick: bool, repeats: int) -> Iterator[Row]:
    need("mambapy.mamba")
    s = QUICK_LM_SIZES if quick else LM_SIZES
    lengths = QUICK_MEMORY_LENGTHS if quick else MEMORY_LENGTHS
    ours_mb = {}
    for T in lengths:
        ours_mb[T] = peak_mb(OURS, quick, T)
        # quick: one peer at the shortest T (each process imports torch: seconds on a loaded machine)
        peers = (HF, MAMBAPY) if not quick else (MAMBAPY,) if T == lengths[0] else ()
        for peer in peers:
            yield Row(
                family=MEMORY,
                case=f"E{s['E']} B{s['B']} T{T} {LAYERS} layers",
                mode="peak",
                ours=OURS,
                ours_value=ours_mb[T],
                peer=peer,
                peer_value=peak_mb(peer, quick, T),
                unit="MB",
            )
    low, high = min(lengths), max(lengths)
    yield Row(
        family=MEMORY,
        case=f"linearity: T{high} vs T{low} × {high // low}",
        mode="peak",
        ours=f"lstmkit, T{high}",
        ours_value=ours_mb[high],
        peer=f"lstmkit, T{low} × {high // low}",
        peer_value=ours_mb[low] * high / low,
        unit="MB",
        target=1.0,
    )
