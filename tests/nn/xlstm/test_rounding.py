"""Widths rounded as the peers round them: the xLSTM authors' packages and transformers compute a feed-forward or
projection width as ⌊(f·E + m − 1) / m⌋ · m on the float f·E, so an excess under 1 over a multiple rounds down.
A checkpoint of theirs has those shapes, so lstmkit must compute the same widths."""

from __future__ import annotations

import pytest

from lstmkit.nn import xLSTMConfig, xLSTMLargeConfig
from lstmkit.nn.xlstm.config import round_up

CASES = [(768, 2.6667), (4096, 2.667), (1024, 2.667), (128, 1.3), (64, 1.3), (96, 2.0), (130, 1.0)]
"""(E, factor): 2.6667 · 768 = 2048.03, just above a multiple of 64 (ceil would give 2112); the 7B's 4096 · 2.667."""


@pytest.mark.parametrize(("E", "factor"), CASES)
def test_round_up_is_the_authors_rounding(E, factor):
    utils = pytest.importorskip("xlstm.xlstm_large.utils")
    assert round_up(factor * E, 64) == utils.round_up_to_next_multiple_of(factor * E, 64)


def test_the_large_models_feed_forward_width_is_transformers():
    transformers = pytest.importorskip("transformers")
    theirs = transformers.xLSTMConfig(vocab_size=10, hidden_size=768, num_hidden_layers=1, num_heads=4,
                                      ffn_proj_factor=2.6667)  # fmt: skip
    ours = xLSTMLargeConfig(vocab_size=10, embedding_dim=768, num_heads=4, num_blocks=1, ffn_proj_factor=2.6667)
    assert ours.ffn_inner_size == 2048
    model = transformers.xLSTMForCausalLM(theirs)
    assert model.backbone.blocks[0].ffn.proj_up.out_features == ours.ffn_inner_size


def test_the_small_models_widths_are_the_authors():
    components = pytest.importorskip("xlstm.components.util")
    config = xLSTMConfig(vocab_size=10, embedding_dim=768, ffn_proj_factor=2.6667)
    assert config.ffn_inner_size == components.round_to_multiple(2.6667 * 768, 64) == 2048
