"""`lstmkit gradients`: the vanishing-gradient claim of the seeds, measured with the reference BPTT."""

import json

import numpy as np

from lstmkit.cli import main
from lstmkit.explain import gradients


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
