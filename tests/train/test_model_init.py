"""A model the CLI builds (`SequenceModel`) is initialised as the library's own language model of the same
configuration: each block for its place in the stack (issue 19, item 5: every block used to get the 1-block init)."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit.models import ModelConfig, SequenceModel
from lstmkit.nn.parts.init import wang_init_std
from lstmkit.nn.xlstm.slstm_layer import forget_bias_schedule
from lstmkit.tasks.base import TaskSpec

SPEC = TaskSpec(name="lm", kind="tag", num_outputs=11, vocab_size=11)
E = 128


def body(name: str, **kw):
    torch.manual_seed(0)
    return SequenceModel(ModelConfig(name, hidden_size=E, **kw), SPEC).body


@pytest.mark.parametrize("blocks", ["ss", "sms", "ssss"])
def test_each_slstm_block_gets_its_own_forget_bias_schedule(blocks):
    stack, L = body("xlstm", blocks=blocks), len(blocks)
    for index, (letter, block) in enumerate(zip(blocks, stack.blocks, strict=True)):
        if letter == "s":
            DH = E // block.layer.num_heads
            expected = forget_bias_schedule(DH, index, L).repeat(block.layer.num_heads)
            assert torch.allclose(block.layer.cell.b[E : 2 * E], expected), f"block {index}"
        std = block.ffn.proj_down.weight.std().item() if letter == "s" else block.layer.proj_down.weight.std().item()
        assert math.isclose(std, wang_init_std(E, L), rel_tol=0.1), f"block {index}: proj_down std {std:.4f}"


def test_xlstm_large_blocks_are_initialised_for_the_stack():
    stack = body("xlstm-large", num_layers=4)
    for block in stack.blocks:
        assert (block.layer.igate.bias == -10).all() and (block.layer.igate.weight == 0).all()
        assert torch.equal(block.layer.fgate.bias, torch.linspace(3.0, 6.0, 4))
        std = block.layer.out_proj.weight.std().item()
        assert math.isclose(std, wang_init_std(E, 4), rel_tol=0.1), f"out_proj std {std:.4f}"


def test_mamba_out_projections_are_scaled_for_the_depth():
    stack = body("mamba", num_layers=4)
    for block in stack.blocks:  # U(±1/√I) / √layers: std 1/√(3·I·layers)
        std = block.layer.out_proj.weight.std().item()
        assert math.isclose(std, 1 / math.sqrt(3 * 2 * E * 4), rel_tol=0.1), f"out_proj std {std:.4f}"
