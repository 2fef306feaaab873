"""Configurations, the xLSTM authors' package `xlstm` (2.0.6) and lstmkit's, translated both ways.

    their mLSTMLayerConfig                      ->  mLSTMLayer's arguments       `mlstm_layer_args`
    their sLSTMLayerConfig                      ->  (checked: function, backend)  `check_slstm_cell`
    their xLSTMBlockStackConfig / LMModelConfig ->  xLSTMConfig                  `stack_config`
    their xLSTMLargeConfig                      ->  xLSTMLargeConfig             `large_config`
    xLSTMConfig                                 ->  their xLSTMLMModelConfig     `their_lm_config`

A configuration lstmkit cannot represent raises `Unsupported`, naming which part and why.
"""

from __future__ import annotations

from lstmkit.nn.xlstm.config import xLSTMConfig
from lstmkit.nn.xlstm.large import xLSTMLargeConfig


class Unsupported(ValueError):
    """A module or configuration the importer cannot map (says which and why)."""


def mlstm_layer_args(c) -> dict:
    return {
        "embedding_dim": c.embedding_dim,
        "inner_size": c._inner_embedding_dim,
        "num_heads": c.num_heads,
        "conv_kernel": c.conv1d_kernel_size,
        "qkv_blocksize": c.qkv_proj_blocksize,
        "bias": c.bias,
        "dropout": c.dropout,
    }


def check_slstm_cell(c) -> None:
    if c.function != "slstm":
        raise Unsupported(f"their sLSTM cell function is {c.function!r}, expected 'slstm'")
    if c.backend not in ("vanilla", "cuda"):
        raise Unsupported(f"their sLSTM backend is {c.backend!r}, expected 'vanilla' or 'cuda'")


def slstm_backend(c) -> str:
    return c.slstm_block.slstm.backend if c.slstm_block is not None else "vanilla"


def stack_config(c, vocab_size: int = 1, tie_weights: bool = False) -> xLSTMConfig:
    """Their xLSTMBlockStackConfig (or xLSTMLMModelConfig) -> xLSTMConfig, checked against their sizes."""
    blocks = "".join("ms"[int(b)] for b in c._block_map.split(","))
    m = c.mlstm_block.mlstm if c.mlstm_block is not None and "m" in blocks else None
    s = c.slstm_block.slstm if c.slstm_block is not None and "s" in blocks else None
    ffn = c.slstm_block.feedforward if s is not None else None
    fields = {
        "vocab_size": vocab_size,
        "embedding_dim": c.embedding_dim,
        "blocks": blocks,
        "dropout": c.dropout,
        "final_norm": c.add_post_blocks_norm,
        "tie_weights": tie_weights,
    }
    roundings, biases = set(), set()
    if m is not None:
        fields.update(
            mlstm_heads=m.num_heads,
            mlstm_proj_factor=m.proj_factor,
            mlstm_conv_kernel=m.conv1d_kernel_size,
            qkv_blocksize=m.qkv_proj_blocksize,
        )
        roundings.add((m.round_proj_up_to_multiple_of, m.round_proj_up_dim_up))
        biases.add(m.bias)
    if s is not None:
        check_slstm_cell(s)
        if ffn is None:
            raise Unsupported("their sLSTM blocks have no feed-forward; lstmkit's sLSTM block always has one")
        fields.update(
            slstm_heads=s.num_heads,
            slstm_conv_kernel=s.conv1d_kernel_size,
            ffn_proj_factor=ffn.proj_factor,
            ffn_activation=ffn.act_fn,
        )
        roundings.add((ffn.round_proj_up_to_multiple_of, ffn.round_proj_up_dim_up))
        biases.add(ffn.bias)
    if len(biases) > 1:
        raise Unsupported("their mLSTM layers and feed-forwards disagree on bias; lstmkit has one `bias` for both")
    if len(roundings) > 1 or any(not up for _, up in roundings):
        raise Unsupported(
            f"their inner widths are rounded as {sorted(roundings)} (multiple, up); "
            "lstmkit rounds all up to one multiple"
        )
    fields["bias"] = biases.pop() if biases else False
    if roundings:
        fields["round_up_to"] = roundings.pop()[0]
    return xLSTMConfig(**fields)


def large_config(c) -> xLSTMLargeConfig:
    return xLSTMLargeConfig(
        vocab_size=c.vocab_size,
        embedding_dim=c.embedding_dim,
        num_heads=c.num_heads,
        num_blocks=c.num_blocks,
        qk_dim_factor=c.qk_dim_factor,
        v_dim_factor=c.v_dim_factor,
        ffn_proj_factor=c.ffn_proj_factor,
        ffn_round_up_to=c.ffn_round_up_to_multiple_of,
        gate_soft_cap=c.gate_soft_cap,
        output_logit_soft_cap=c.output_logit_soft_cap,
        norm_eps=c.norm_eps,
        eps=c.eps,
        use_bias=c.use_bias,
        add_out_norm=c.add_out_norm,
        chunk_size=c.chunk_size,
    )


def their_lm_config(c: xLSTMConfig, context_length: int):
    from xlstm import (
        FeedForwardConfig,
        mLSTMBlockConfig,
        mLSTMLayerConfig,
        sLSTMBlockConfig,
        sLSTMLayerConfig,
        xLSTMLMModelConfig,
    )

    mlstm = mLSTMLayerConfig(
        conv1d_kernel_size=c.mlstm_conv_kernel,
        qkv_proj_blocksize=c.qkv_blocksize,
        num_heads=c.mlstm_heads,
        proj_factor=c.mlstm_proj_factor,
        round_proj_up_to_multiple_of=c.round_up_to,
    )
    slstm = sLSTMLayerConfig(
        backend="vanilla",
        num_heads=c.slstm_heads,
        conv1d_kernel_size=c.slstm_conv_kernel,
        dtype="float32",
        enable_automatic_mixed_precision=False,
    )
    ffn = FeedForwardConfig(
        proj_factor=c.ffn_proj_factor, act_fn=c.ffn_activation, bias=c.bias, round_proj_up_to_multiple_of=c.round_up_to
    )
    return xLSTMLMModelConfig(
        mlstm_block=mLSTMBlockConfig(mlstm=mlstm),
        slstm_block=sLSTMBlockConfig(slstm=slstm, feedforward=ffn),
        context_length=context_length,
        num_blocks=c.num_blocks,
        embedding_dim=c.embedding_dim,
        bias=c.bias,
        dropout=c.dropout,
        add_post_blocks_norm=c.final_norm,
        vocab_size=c.vocab_size,
        tie_weights=c.tie_weights,
        slstm_at=[i for i, letter in enumerate(c.blocks) if letter == "s"],
    )
