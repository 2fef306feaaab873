"""Mamba's selective scan and Mamba-2's SSD scan against mambapy's and transformers' CPU code, side by side.

Selective scan, (B, D, N) = (2, 256, 16), float32, T from 256 to 16384, forward and forward + backward; every
candidate computes y = (Σ_n h_t C_t + D ⊙ x_t) ⊙ SiLU(z_t) from the same x, Δ, A, B, C, D, z:

    lstmkit auto                our `selective_scan(form="auto")`: the fused C++ loop on CPU
    lstmkit auto (control)      the same call raced against itself: the ratio is the noise floor (≈ 1.00)
    lstmkit parallel            our chunked linear scan in torch, its own backward (up to `PARALLEL_UP_TO`)
    mambapy pscan               exp(Δ A) and Δ x B formed (B, T, D, N), `mambapy.pscan.pscan`, then the C
                                contraction, D skip and gate: mambapy's own `selective_scan` with the gate
    transformers sequential     `transformers...modeling_mamba.mamba_selective_scan`, its CPU default, a Python
                                loop over time; forward only and only up to `SEQUENTIAL_UP_TO` (its backward
                                goes through per-step indexing, O(T²): minutes at T = 1024)

Target (issue 18): forward + backward ≥ 2× mambapy at T ≥ 1024. At the longest T a call takes seconds, so it
gets `LONG_ROUNDS` rounds at most (still one warm-up, still interleaved).

SSD (Mamba-2), (B, H, P, N) = (2, 8, 64, 64), one group, no gate: our `ssd_scan(form="chunkwise")` against
`transformers...modeling_mamba2.mamba2_chunk_scan` (their pure-torch chunked scan), both with our automatic
chunk length; FLOPs as `ssd_flops` for the GEMM fraction.

The language-model rows (training step, generation, peak memory) are in `mamba_models.py`; `rows` runs both.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from lstmkit.bench import mamba_models
from lstmkit.bench.flops import with_backward
from lstmkit.bench.peers import need
from lstmkit.bench.results import Row
from lstmkit.bench.timing import MODES, median_ms, race

SCAN = "Mamba selective scan vs T"
SSD = "Mamba-2 SSD scan vs T"
SCAN_SIZES = (2, 256, 16)  # (B, D, N)
LENGTHS, QUICK_LENGTHS = (256, 1024, 4096, 16384), (32, 64)
PARALLEL_UP_TO = 4096
SEQUENTIAL_UP_TO = 256
LONG, LONG_ROUNDS = 16384, 3
SSD_SIZES, QUICK_SSD_SIZES = (2, 8, 64, 64), (1, 2, 16, 16)  # (B, H, P, N)
SSD_LENGTHS, QUICK_SSD_LENGTHS = (256, 1024, 4096), (64,)

AUTO, CONTROL, PARALLEL = "lstmkit auto", "lstmkit auto (control)", "lstmkit parallel"
PSCAN, SEQUENTIAL = "mambapy pscan", "transformers sequential loop"
OURS_SSD, HF_SSD = "lstmkit ssd chunkwise", "transformers mamba2_chunk_scan"


def scan_inputs(B: int, T: int, D: int, N: int, grad: bool) -> tuple:
    """x, Δ, A, B, C, D, z as a Mamba mixer makes them: Δ in [0.001, 0.1], A = -(1..N) per channel."""
    g = torch.Generator().manual_seed(T)
    x, z = torch.randn(B, T, D, generator=g), torch.randn(B, T, D, generator=g)
    delta = torch.exp(torch.empty(B, T, D).uniform_(-6.9, -2.3, generator=g))
    A = -torch.arange(1, N + 1, dtype=torch.float32).expand(D, N).clone()
    Bm, Cm = torch.randn(B, T, N, generator=g), torch.randn(B, T, N, generator=g)
    skip = torch.ones(D)
    return tuple(t.requires_grad_(grad) for t in (x, delta, A, Bm, Cm, skip, z))


def scan_candidates(inputs: tuple, T: int, mode: str) -> dict:
    """{name: fn() -> y (B, T, D)} for the candidates that run at this T and mode."""
    from lstmkit.nn.mamba import selective_scan

    pscan = need("mambapy.pscan").pscan
    hf = need("transformers.models.mamba.modeling_mamba")
    x, delta, A, B, C, D, z = inputs

    def mambapy_scan():
        a = torch.exp(delta[..., None] * A)  # (B, T, D, N)
        b = (delta * x)[..., None] * B[:, :, None, :]
        h = pscan(a, b)
        return ((h @ C[..., None]).squeeze(-1) + D * x) * F.silu(z)

    fns = {
        AUTO: lambda: selective_scan(x, delta, A, B, C, D, z, None, form="auto")[0],
        CONTROL: lambda: selective_scan(x, delta, A, B, C, D, z, None, form="auto")[0],
        PSCAN: mambapy_scan,
    }
    if T <= PARALLEL_UP_TO:
        fns[PARALLEL] = lambda: selective_scan(x, delta, A, B, C, D, z, None, form="parallel")[0]
    if T <= SEQUENTIAL_UP_TO and mode == "fwd":
        t = lambda v: v.transpose(1, 2)  # noqa: E731  (their layout: (B, D, T), B and C (B, N, T))
        fns[SEQUENTIAL] = lambda: hf.mamba_selective_scan(t(x), t(delta), A, t(B), t(C), D=D, z=t(z))
    return fns


def scan_rows(quick: bool, repeats: int) -> Iterator[Row]:
    B, D, N = SCAN_SIZES
    for T in QUICK_LENGTHS if quick else LENGTHS:
        for mode, wrap in MODES.items():
            fns = scan_candidates(scan_inputs(B, T, D, N, grad=mode == "fwd+bwd"), T, mode)
            rounds = min(repeats, LONG_ROUNDS) if T >= LONG else repeats
            runs = race({name: wrap(fn) for name, fn in fns.items()}, rounds)
            pairs = [(AUTO, CONTROL, None), (AUTO, PSCAN, 2.0 if T >= 1024 and mode == "fwd+bwd" else None)]
            pairs += [(PARALLEL, PSCAN, None)] if PARALLEL in fns else []
            pairs += [(AUTO, SEQUENTIAL, None)] if SEQUENTIAL in fns else []
            for ours, peer, target in pairs:
                yield Row(
                    family=SCAN,
                    case=f"B{B} T{T} D{D} N{N}",
                    mode=mode,
                    ours=ours,
                    ours_value=median_ms(runs[ours]),
                    peer=peer,
                    peer_value=median_ms(runs[peer]),
                    target=target,
                    ours_runs=runs[ours],
                    peer_runs=runs[peer],
                )


def ssd_inputs(B: int, T: int, H: int, P: int, N: int, grad: bool) -> tuple:
    """x (B, T, H, P), Δ (B, T, H) in [0.001, 0.1], A (H,) in [-16, -1], B, C (B, T, 1, N), D (H,)."""
    g = torch.Generator().manual_seed(T)
    x = torch.randn(B, T, H, P, generator=g)
    delta = torch.exp(torch.empty(B, T, H).uniform_(-6.9, -2.3, generator=g))
    A = -torch.empty(H).uniform_(1, 16, generator=g)
    Bm, Cm = torch.randn(B, T, 1, N, generator=g), torch.randn(B, T, 1, N, generator=g)
    return tuple(t.requires_grad_(grad) for t in (x, delta, A, Bm, Cm, torch.ones(H)))


def ssd_flops(B: int, T: int, H: int, P: int, N: int, G: int, L: int) -> float:
    """Forward matrix-product FLOPs of the chunkwise SSD: per chunk of L steps, C Bᵀ once per group (L·L·N),
    and per head the intra-chunk product (L·L·P), the carried state's output C h (L·N·P) and the state
    update Bᵀ U (L·N·P)."""
    chunks = -(-T // L)
    return 2.0 * B * chunks * (G * L * L * N + H * (L * L * P + 2 * L * N * P))


def ssd_candidates(inputs: tuple, L: int) -> dict:
    """{name: fn() -> y (B, T, H, P)}: ours and transformers' chunked scan, both in chunks of L steps."""
    from lstmkit.nn.mamba import ssd_scan

    hf = need("transformers.models.mamba2.modeling_mamba2")
    x, delta, A, B, C, D = inputs
    return {
        OURS_SSD: lambda: ssd_scan(x, delta, A, B, C, D, None, None, form="chunkwise", chunk_size=L)[0],
        HF_SSD: lambda: hf.mamba2_chunk_scan(x, delta, A, B, C, L, D=D),
    }


def ssd_rows(quick: bool, repeats: int) -> Iterator[Row]:
    from lstmkit.nn.mlstm.chunkwise import auto_chunk_size

    need("transformers.models.mamba2.modeling_mamba2")
    B, H, P, N = QUICK_SSD_SIZES if quick else SSD_SIZES
    for T in QUICK_SSD_LENGTHS if quick else SSD_LENGTHS:
        L = auto_chunk_size(T, N, P)
        for mode, wrap in MODES.items():
            fns = ssd_candidates(ssd_inputs(B, T, H, P, N, grad=mode == "fwd+bwd"), L)
            runs = race({name: wrap(fn) for name, fn in fns.items()}, repeats)
            yield Row(
                family=SSD,
                case=f"B{B} T{T} H{H} P{P} N{N} G1",
                mode=mode,
                ours=f"{OURS_SSD} (L={L})",
                ours_value=median_ms(runs[OURS_SSD]),
                peer=f"{HF_SSD} (L={L})",
                peer_value=median_ms(runs[HF_SSD]),
                flops=with_backward(ssd_flops(B, T, H, P, N, 1, L), mode),
                ours_runs=runs[OURS_SSD],
                peer_runs=runs[HF_SSD],
            )


def rows(quick: bool, repeats: int) -> Iterator[Row]:
    """The whole family: scan, SSD, LM training step, generation, peak memory."""
    yield from scan_rows(quick, repeats)
    yield from ssd_rows(quick, repeats)
    yield from mamba_models.training_rows(quick, repeats)
    yield from mamba_models.generation_rows(quick, repeats)
    yield from mamba_models.memory_rows(quick, repeats)
