"""`lstmkit gradients`: the vanishing-gradient claim of the seeds, measured with the reference BPTT."""

import json

import numpy as np
import torch

from lstmkit import reference
from lstmkit.cli import main
from lstmkit.explain import gradients
from tests.helpers import assert_close


def test_lstm_with_forget_bias_keeps_orders_of_magnitude_more_gradient_at_lag_50():
    rnn, _, lstm2 = gradients.gradient_by_lag(length=100, forget_biases=(0.0, 2.0))
    assert rnn.name == "tanh RNN" and lstm2.name == "LSTM, forget bias 2"
    assert lstm2.ratios[50] > 1e3 * rnn.ratios[50], (lstm2.ratios[50], rnn.ratios[50])
    assert rnn.ratios[50] < 1e-6  # the RNN's gradient has vanished
    assert lstm2.ratios[50] > 1e-3 * lstm2.ratios[0]  # the biased LSTM's has not


def test_forget_bias_one_is_enough_and_zero_is_not():
    rnn, lstm0, lstm1 = gradients.gradient_by_lag(length=100, forget_biases=(0.0, 1.0), seed=3)
    assert lstm1.ratios[50] > 1e3 * rnn.ratios[50]
    assert lstm1.ratios[50] > 1e3 * lstm0.ratios[50]


def test_ratios_start_at_one_and_cover_every_lag():
    for curve in gradients.gradient_by_lag(length=30):
        assert curve.ratios.shape == (30,) and curve.ratios[0] == 1.0 and np.all(curve.ratios > 0)


def test_cli_table_and_json(capsys):
    assert main(["gradients", "--length", "60"]) == 0
    out = capsys.readouterr().out
    assert "tanh RNN" in out and "LSTM, forget bias 2" in out and "At lag 50" in out
    assert main(["gradients", "--length", "60", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "lstmkit.gradients/1"
    assert [c["name"] for c in data["curves"]] == ["tanh RNN", "LSTM, forget bias 0", "LSTM, forget bias 2"]
    assert all(len(c["ratios"]) == 60 for c in data["curves"])


def test_png_plot_of_the_curves(tmp_path, capsys):
    from PIL import Image

    from lstmkit.explain.trained.pictures import SIZES

    target = tmp_path / "g.png"
    assert main(["gradients", "--length", "30", "--format", "png", "-o", str(target)]) == 0
    assert capsys.readouterr().out == f"wrote {target}\n"
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(target).size == SIZES["gradients"]
    assert target.stat().st_mode & 0o777 != 0o600  # readable like any file the user writes
    assert main(["gradients", "--format", "png"]) == 2
    assert "name the file with -o" in capsys.readouterr().err


def autograd_ratios(p, xs: np.ndarray, v: np.ndarray, lstm_cell: bool) -> np.ndarray:
    """‖∂L/∂x_{T-lag}‖ / ‖∂L/∂x_T‖ for L = v/‖v‖ · h_T, by torch autograd through the plain recurrence
    (h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), or the LSTM's gates i, f, g, o), from zero state."""
    W_ih, W_hh, b_ih, b_hh = (torch.from_numpy(w) for w in p)
    x = torch.from_numpy(xs).requires_grad_()
    H = W_hh.shape[1]
    h, c = torch.zeros(H, dtype=torch.float64), torch.zeros(H, dtype=torch.float64)
    for t in range(len(xs)):
        z = W_ih @ x[t] + b_ih + W_hh @ h + b_hh
        if lstm_cell:
            i, f, g, o = (
                torch.sigmoid(z[:H]),
                torch.sigmoid(z[H : 2 * H]),
                torch.tanh(z[2 * H : 3 * H]),
                torch.sigmoid(z[3 * H :]),
            )
            c = f * c + i * g
            h = o * torch.tanh(c)
        else:
            h = torch.tanh(z)
    v = torch.from_numpy(v)
    (dx,) = torch.autograd.grad((v / v.norm()) @ h, x)
    norms = dx.norm(dim=1).flip(0)  # index = lag
    return (norms / norms[0]).numpy()


def test_ratios_equal_a_direct_autograd_computation():
    """The same inputs, v and weights as gradient_by_lag draws (from its seed), differentiated by torch."""
    length, hidden, inputs, seed = 40, 6, 3, 4
    curves = gradients.gradient_by_lag(length, hidden, inputs, forget_biases=(0.0, 2.0), seed=seed)
    rng = np.random.default_rng(seed)
    xs, v = rng.normal(size=(length, inputs)), rng.normal(size=hidden)
    expected = [autograd_ratios(reference.rnn.RNNParams.random(inputs, hidden, seed=seed + 1), xs, v, lstm_cell=False)]
    for bias in (0.0, 2.0):
        p = reference.lstm.LSTMParams.random(inputs, hidden, seed=seed + 1, forget_bias=bias)
        expected.append(autograd_ratios(p, xs, v, lstm_cell=True))
    for curve, want in zip(curves, expected, strict=True):
        assert_close(curve.ratios, want, curve.name, atol=0.0, rtol=1e-9)
