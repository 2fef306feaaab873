"""`lstmkit gradients`: the vanishing-gradient claim of the seeds, measured with the reference BPTT; the diagonal
SSM's and Mamba's curves next to them, checked against the convolution kernel and torch autograd."""

import io
import json

import numpy as np
import torch

from lstmkit import reference
from lstmkit.cli import main
from lstmkit.explain import gradients
from tests.helpers import assert_close


def test_lstm_with_forget_bias_keeps_orders_of_magnitude_more_gradient_at_lag_50():
    rnn, _, lstm2, *_ = gradients.gradient_by_lag(length=100, forget_biases=(0.0, 2.0))
    assert rnn.name == "tanh RNN" and lstm2.name == "LSTM, forget bias 2"
    assert lstm2.ratios[50] > 1e3 * rnn.ratios[50], (lstm2.ratios[50], rnn.ratios[50])
    assert rnn.ratios[50] < 1e-6  # the RNN's gradient has vanished
    assert lstm2.ratios[50] > 1e-3 * lstm2.ratios[0]  # the biased LSTM's has not


def test_forget_bias_one_is_enough_and_zero_is_not():
    rnn, lstm0, lstm1, *_ = gradients.gradient_by_lag(length=100, forget_biases=(0.0, 1.0), seed=3)
    assert lstm1.ratios[50] > 1e3 * rnn.ratios[50]
    assert lstm1.ratios[50] > 1e3 * lstm0.ratios[50]


NAMES = ["tanh RNN", "LSTM, forget bias 0", "LSTM, forget bias 2", "diagonal SSM (S4D init)", "Mamba (S6)"]


def test_ratios_start_at_one_and_cover_every_lag():
    curves = gradients.gradient_by_lag(length=30)
    assert [c.name for c in curves] == NAMES
    for curve in curves:
        assert curve.ratios.shape == (30,) and curve.ratios[0] == 1.0 and np.all(curve.ratios > 0)


def test_cli_table_and_json(capsys):
    assert main(["gradients", "--length", "60"]) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("tanh RNN", "forget", "diagonal", "(S4D", "Mamba (S6)", "At lag 50")), out
    assert main(["gradients", "--length", "60", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| lag | " + " | ".join(NAMES) + " |" in out
    assert main(["gradients", "--length", "60", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "lstmkit.gradients/1"
    assert [c["name"] for c in data["curves"]] == NAMES
    assert all(len(c["ratios"]) == 60 and c["ratios"][0] == 1.0 for c in data["curves"])
    curves = gradients.gradient_by_lag(length=60)
    for entry, curve in zip(data["curves"], curves, strict=True):
        assert_close(np.array(entry["ratios"]), curve.ratios, entry["name"], atol=0.0, rtol=1e-12)


def test_png_plot_of_the_curves(tmp_path, capsys):
    import matplotlib as mpl
    from matplotlib.colors import to_rgb
    from PIL import Image

    from lstmkit.explain.trained.pictures import SIZES, gradient_plot

    target = tmp_path / "g.png"
    assert main(["gradients", "--length", "30", "--format", "png", "-o", str(target)]) == 0
    assert capsys.readouterr().out == f"wrote {target}\n"
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(target).size == SIZES["gradients"]
    assert target.stat().st_mode & 0o777 != 0o600  # readable like any file the user writes
    pixels = np.asarray(Image.open(target).convert("RGB"))
    without = np.asarray(Image.open(io.BytesIO(gradient_plot(gradients.gradient_by_lag(length=30)[:3]))).convert("RGB"))
    for k in (3, 4):  # the diagonal SSM's and Mamba's colours: drawn only when their curves are
        colour = np.array(to_rgb(mpl.rcParams["axes.prop_cycle"].by_key()["color"][k])) * 255
        assert np.all(pixels == colour.round(), axis=2).sum() > 100, k
        assert np.all(without == colour.round(), axis=2).sum() == 0, k
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
    for curve, want in zip(curves[:3], expected, strict=True):
        assert_close(curve.ratios, want, curve.name, atol=0.0, rtol=1e-9)


def drawn(length: int, hidden: int, inputs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The inputs xs and the state-space cells' unit vector w, drawn as gradient_by_lag draws them."""
    rng = np.random.default_rng(seed)
    xs, _, w = rng.normal(size=(length, inputs)), rng.normal(size=hidden), rng.normal(size=inputs)
    return xs, w / np.linalg.norm(w)


def test_ssm_curve_is_the_convolution_kernel_weighted_by_v():
    """LTI, h_0 = 0, D = 0: y_T = Σ_lag K_lag ⊙ x_{T-lag}, so ∂L/∂x_{T-lag} = w ⊙ K_lag for L = w · y_T."""
    length, hidden, inputs, state, seed = 50, 6, 3, 7, 5
    curve = gradients.gradient_by_lag(length, hidden, inputs, (1.0,), seed, state)[2]
    assert curve.name == "diagonal SSM (S4D init)"
    xs, w = drawn(length, hidden, inputs, seed)
    p = reference.ssm.SSMParams.random(inputs, state, seed=seed + 1)
    kernel = reference.ssm.convolution(p, xs).kernel  # (T, C): K_lag, lag = 0..T-1
    norms = np.linalg.norm(w * kernel, axis=1)
    assert_close(curve.ratios, norms / norms[0], curve.name, atol=0.0, rtol=1e-10)
    assert curve.ratios[0] == 1.0 and curve.ratios[length - 1] > 1e-3  # Ā close to 1: the kernel decays slowly


def mamba_autograd_ratios(p, xs: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The ratios for L = w · y_T through Mamba's selective scan written from its equations in torch, D = 0:
    Δ_t = softplus(W_Δ x_t + b_Δ), B_t = W_B x_t, C_t = W_C x_t, h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t x_t,
    y_t = h_t C_t."""
    A, W_delta, b_delta, W_B, W_C = (torch.from_numpy(a) for a in p[:5])
    x = torch.from_numpy(xs).requires_grad_()
    h = torch.zeros(A.shape, dtype=torch.float64)
    for t in range(len(xs)):
        delta = torch.nn.functional.softplus(W_delta @ x[t] + b_delta)  # (C,)
        B, C = W_B @ x[t], W_C @ x[t]  # (N,)
        h = torch.exp(delta[:, None] * A) * h + delta[:, None] * B[None, :] * x[t][:, None]
    (dx,) = torch.autograd.grad(torch.from_numpy(w) @ (h @ C), x)
    norms = dx.norm(dim=1).flip(0)
    return (norms / norms[0]).numpy()


def test_mamba_curve_equals_torch_autograd_and_depends_on_the_input():
    length, hidden, inputs, state, seed = 40, 5, 3, 4, 6
    curve = gradients.gradient_by_lag(length, hidden, inputs, (), seed, state)[-1]
    assert curve.name == "Mamba (S6)"
    xs, w = drawn(length, hidden, inputs, seed)
    p = reference.mamba.MambaParams.random(inputs, state, seed=seed + 1)
    assert_close(curve.ratios, mamba_autograd_ratios(p, xs, w), curve.name, atol=0.0, rtol=1e-9)
    # the LTI SSM's curve is the same for any input, the selective scan's is not
    ssm1, mamba1 = gradients.state_space_curves(xs, w, state, seed)
    ssm2, mamba2 = gradients.state_space_curves(2 * xs[::-1], w, state, seed)
    assert_close(ssm1.ratios, ssm2.ratios, "SSM", atol=0.0, rtol=1e-12)
    assert np.abs(mamba1.ratios - mamba2.ratios).max() > 1e-3


def test_state_size_is_checked(capsys):
    from tests.helpers import one_line_error

    for bad in ("0", "513"):
        code = main(["gradients", "--state-size", bad])
        one_line_error(code, capsys.readouterr().err, f"state_size is {bad}", "expected an integer from 1 to 512")
    code = main(["gradients", "--length", "10000", "--input-size", "512", "--state-size", "8"])
    one_line_error(
        code, capsys.readouterr().err, "length × input_size × state_size is 40,960,000", "at most 20,000,000"
    )
    assert main(["gradients", "--length", "20", "--state-size", "3"]) == 0 and "Mamba (S6)" in capsys.readouterr().out
