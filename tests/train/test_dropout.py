"""ModelConfig.dropout: on the body's input and output in training only; nothing changes in eval or at 0."""

from __future__ import annotations

import pytest
import torch

from lstmkit.models import ModelConfig, SequenceModel
from lstmkit.tasks.synthetic.formal import Parity


@pytest.mark.parametrize("name", ["lstm", "xlstm", "mamba", "transformer"])
def test_dropout_acts_in_training_only(name):
    task = Parity(max_length=12)
    batch = task.batch(4, torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    plain = SequenceModel(ModelConfig(name, hidden_size=16, num_heads=2), task.spec)
    dropped = SequenceModel(ModelConfig(name, hidden_size=16, num_heads=2, dropout=0.5), task.spec)
    dropped.load_state_dict(plain.state_dict())  # the same weights: dropout has none
    plain.eval(), dropped.eval()
    assert torch.equal(plain(batch.x, batch.lengths), dropped(batch.x, batch.lengths))
    dropped.train()
    torch.manual_seed(1)
    first = dropped(batch.x, batch.lengths)
    torch.manual_seed(2)
    assert not torch.equal(first, dropped(batch.x, batch.lengths)), "training outputs depend on the dropout mask"
    plain.train()
    assert torch.equal(plain(batch.x, batch.lengths), plain(batch.x, batch.lengths)), "dropout 0 draws nothing"


@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan"), True, "0.5"])
def test_bad_dropout_is_one_line(value):
    with pytest.raises(ValueError, match=r"dropout is .*, expected a number in \[0, 1\)"):
        ModelConfig("lstm", dropout=value)
