"""Our sLSTM == the xLSTM authors' vanilla sLSTM cell (xlstm 2.0.6, backend="vanilla", CPU), float64.

Weight layout: their internal recurrent kernel (NH, 4·DH, DH) is our R (NH, 4, DH, DH) flattened over
(gate, out); their internal bias is our gate-major b. Their input is (B, T, 4H) gate-major like ours;
their output is (B, NH, T, DH) and their state (4, B, H) = (h, c, n, m).
"""

import pytest
import torch

from lstmkit.nn.slstm import slstm, sLSTMState

cell_module = pytest.importorskip("xlstm.blocks.slstm.cell")
F64 = torch.float64


def authors_cell(R, b):
    NH, _, DH, _ = R.shape
    config = cell_module.sLSTMCellConfig(
        hidden_size=NH * DH, num_heads=NH, backend="vanilla", dtype="float32", enable_automatic_mixed_precision=False
    )
    cell = cell_module.sLSTMCell(config).double()
    with torch.no_grad():
        cell._recurrent_kernel_.copy_(R.reshape(NH, 4 * DH, DH))
        cell._bias_.copy_(b)
    return cell


@pytest.mark.parametrize("with_state", [False, True])
def test_values_states_and_gradients(with_state):
    NH, DH, B, T = 2, 3, 2, 6
    H = NH * DH
    g = torch.Generator().manual_seed(0)
    R = torch.randn(NH, 4, DH, DH, generator=g, dtype=F64) * 0.5
    b = torch.randn(4 * H, generator=g, dtype=F64)
    x = (torch.randn(B, T, 4 * H, generator=g, dtype=F64) * 2).requires_grad_()
    state = None
    if with_state:
        h, c, m = (torch.randn(B, H, generator=g, dtype=F64) for _ in range(3))
        state = sLSTMState(h, c, torch.rand(B, H, generator=g, dtype=F64) + 0.5, m)
    cell = authors_cell(R, b)
    out, final = cell(x, None if state is None else torch.stack(state))
    theirs = out.permute(0, 2, 1, 3).reshape(B, T, H)
    R_ours, b_ours = R.clone().requires_grad_(), b.clone().requires_grad_()
    ours, ours_final = slstm(x, R_ours, b_ours, state)
    assert float((ours - theirs).detach().abs().max()) < 1e-12
    for name, a, b_ in zip("hcnm", ours_final, final, strict=True):
        assert float((a - b_).detach().abs().max()) < 1e-12, name

    w = torch.randn(B, T, H, generator=g, dtype=F64)
    g_theirs = torch.autograd.grad((theirs * w).sum(), [x, cell._recurrent_kernel_, cell._bias_])
    g_ours = torch.autograd.grad((ours * w).sum(), [x, R_ours, b_ours])
    assert float((g_ours[0] - g_theirs[0]).abs().max()) < 1e-10, "dx"
    assert float((g_ours[1].reshape(NH, 4 * DH, DH) - g_theirs[1]).abs().max()) < 1e-10, "dR"
    assert float((g_ours[2] - g_theirs[2]).abs().max()) < 1e-10, "db"
