"""The README's Python examples run as written (each in a fresh namespace, in a temporary working folder).

A block that quotes the library's source (the LSTM step) is checked to be in that source, line by line; the block
that loads the xLSTM authors' models gets those models built with their package, under the names it uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)
QUOTED = {"z = p.W_ih @ x": ROOT / "lstmkit" / "reference" / "lstm.py"}
"""First words of a block -> the source file it quotes."""


def their_models() -> dict:
    """The names the compat example uses: a model of the xLSTM authors' package, its state dict and config."""
    xlstm = pytest.importorskip("xlstm")
    from lstmkit.nn import xLSTMConfig, xLSTMLM

    block = xlstm.mLSTMBlockConfig(
        mlstm=xlstm.mLSTMLayerConfig(conv1d_kernel_size=4, qkv_proj_blocksize=4, num_heads=4)
    )
    config = xlstm.xLSTMLMModelConfig(
        vocab_size=41, mlstm_block=block, context_length=32, num_blocks=2, embedding_dim=32, slstm_at=[]
    )
    their_model = xlstm.xLSTMLMModel(config)
    their_model.reset_parameters()
    our_lm = xLSTMLM(xLSTMConfig(vocab_size=40, embedding_dim=32, blocks="mm"))
    return {
        "their_model": their_model,
        "their_state_dict": their_model.state_dict(),
        "their_config": config,
        "our_xlstm_lm": our_lm,
    }


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0][:40] for b in BLOCKS])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for start, source in QUOTED.items():
        if block.startswith(start):
            text = source.read_text()
            missing = [line for line in block.splitlines() if line.strip() and line.strip() not in text]
            assert not missing, f"the README quotes lines that {source.name} no longer has: {missing}"
            return
    namespace = their_models() if "from lstmkit.nn.compat import" in block else {}
    torch.manual_seed(0)
    exec(compile(block, "README.md", "exec"), namespace)  # the README's own code, as a user runs it
