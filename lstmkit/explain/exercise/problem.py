"""A fresh by-hand exercise: a random small example with friendly numbers, and its answer key.

The answer key is the reference in hand mode, `walkthrough.build(example, "hand")`: every value rounded
to one decimal, half away from zero, and carried forward, which is what a careful person with pencil and
paper gets. The exact values (`walkthrough.build(example, "exact")`) go beside it in small print.

What is drawn, from `numpy.random.default_rng(seed)` (the same seed always gives the same exercise):

    gated cells (lstm, gru, rnn, slstm)
    weight matrices  integers in -2..2     (the spec's layout: W_f, W_i, ... acting on [h_{t-1}, x_t])
    biases           integers in -1..1
    inputs x_t       integers in -2..2     T rows of I numbers
    h0, and c0       integers in -1..1     (c0 for the LSTM and the sLSTM)
    sLSTM            one head, n0 = 1 and m0 = 0 (a memory that already holds c0, so c0 / n0 = c0, as in
                     the seeds' sLSTM; not an empty one)

    ssm (C = input size channels, N = state size; the discretization, zoh by default, is the user's: it
        changes no number drawn, so one seed shows the three side by side unless a draw is dull for one)
    Δ                0.5 or 1, per channel
    ΔA               one of -0.1, -0.2, -0.5, -0.7, -0.9, -1.2, -1.6 per entry: the multiples of 0.1 whose
                     exp is within 0.02 of a tenth (Ā = 0.9, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2), so rounding Ā
                     moves the zoh's B̄ = (Ā - 1) / A B little; A = ΔA / Δ has one decimal, and ΔA is exact
    B, C             integers in -2..2     D integers in -1..1
    inputs x_t       integers in -2..2     h0 integers in -1..1 (so the convolution view has a free response)

    mamba (C channels, N = state size)
    A                -1 or -2, per entry (S4D-Real's -(1, 2, ...) in spirit; Δ A stays a multiple of 0.1)
    W_Δ, b_Δ         integers in -1..1     (so W_Δ x + b_Δ is an integer and softplus is read from the table)
    W_B, W_C         integers in -1..1     D integers in -1..1
    inputs x_t       integers in -1..2     h0 = 0 (Mamba starts from an empty state)
    gate z_t         integers in -1..2, always: Mamba's block gates every output by SiLU(z)

Dull draws are redrawn: the next draw from the same generator, so a seed still names one exercise. A
gated cell's draw is dull when

    a gate's weight matrix is all zeros (the gate would ignore h and x), or
    at some time step more than half of the pre-activations (the values σ, tanh or the sLSTM's exp act
    on) have |z| >= 3, where σ is within 0.05 of 0 or 1 and tanh within 0.005 of ±1: most gates of
    that step saturate and the step teaches nothing. A step where every gate saturates never appears.

A state-space cell's draw is dull when

    ssm: a channel's B or C is all zeros (the state is never written, or never read);
    mamba: W_Δ, W_B or W_C is all zeros (Δ ignores the input, nothing is written, nothing is read), or
    every Δ_t of the sequence is the same (no selection to see), where there is more than one;
    both: at some step the state h_t or the output is all zeros, a channel's state stays zeros at every
    step (that channel does nothing), or a hand-mode value exceeds LARGE in magnitude (the numbers blow
    up past pencil and paper).

Sizes are for pencil and paper: 1 to 4 time steps, input, hidden and state sizes 1 to 4. For ssm and mamba
`hidden_size` is the state size N (the CLI's --state-size), and `Exercise.command` prints --state-size
(and the ssm's --discretization), so the printed line makes the exercise again.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lstmkit.explain import walkthrough
from lstmkit.explain.numbers import dumps
from lstmkit.explain.walkthrough import example_file, stages
from lstmkit.reference.examples import Example
from lstmkit.reference.rounding import hand
from lstmkit.reference.ssm import DISCRETIZATIONS

GATED = ("lstm", "gru", "rnn", "slstm")
"""The gated cells (the mLSTM's matrix memory is too much for one sheet)."""
STATE_SPACE = example_file.STATE_SPACE
"""The state-space cells: a state size N in place of a hidden size."""
CELLS = GATED + STATE_SPACE
"""The cells an exercise can use."""
MAX_STEPS = 4
MAX_SIZE = 4
WEIGHTS = (-2, 2)
"""Range of a weight matrix's integer entries (inclusive)."""
BIASES = (-1, 1)
INPUTS = (-2, 2)
STATE = (-1, 1)
"""Range of h0 and c0 (and the ssm's h0)."""
SATURATED = 3.0
"""|z| from which σ(z) and tanh(z) count as saturated."""
MAX_DRAWS = 10_000
"""Redraws allowed; the least lively size (4, 4, 4) needs about 15 on average and under 100 in practice."""

SSM_DELTAS = (0.5, 1.0)
SSM_DELTA_A = (-0.1, -0.2, -0.5, -0.7, -0.9, -1.2, -1.6)
"""The ssm's ΔA: exp(ΔA) = 0.905, 0.819, 0.607, 0.497, 0.407, 0.301, 0.202."""
SSM_BC = (-2, 2)
SKIP = (-1, 1)
"""Range of D (both state-space cells)."""
MAMBA_A = (-2, -1)
MAMBA_WEIGHTS = (-1, 1)
"""Range of Mamba's W_Δ, b_Δ, W_B and W_C."""
MAMBA_INPUTS = (-1, 2)
MAMBA_GATES = (-1, 2)
LARGE = 10.0
"""A state-space hand value past this magnitude makes the draw dull (it blew up)."""

PRE_ACTIVATIONS = {
    "lstm": ("pre_i", "pre_f", "pre_g", "pre_o"),
    "gru": ("pre_r", "pre_z", "pre_n"),
    "rnn": ("pre",),
    "slstm": ("pre_i", "pre_f", "pre_z", "pre_o"),
}
"""cell -> the trace fields that a squashing function (σ, tanh, exp) acts on."""


class Exercise(NamedTuple):
    """One exercise: how it was made, the example, and its worked answers in both modes."""

    seed: int
    example: Example
    hand: walkthrough.Walkthrough
    """The answer key: every value rounded to 0.1 and carried forward."""
    exact: walkthrough.Walkthrough
    """The same example at full precision, shown in small print beside the answers."""

    @property
    def command(self) -> str:
        """The command line that makes this exercise again."""
        p, cell = self.example.params, self.example.cell
        if cell in STATE_SPACE:
            sizes = f"--state-size {p.state_size} --input-size {p.input_size}"
            sizes += f" --discretization {p.discretization}" if cell == "ssm" else ""
        else:
            sizes = f"--hidden-size {p.hidden_size} --input-size {p.input_size}"
        return f"lstmkit exercise --cell {cell} --seed {self.seed} --steps {len(self.example.xs)} {sizes}"


def make(
    cell: str, seed: int, steps: int = 2, input_size: int = 2, hidden_size: int = 2, discretization: str = "zoh"
) -> Exercise:
    """A random exercise with its answer key (hand mode) and exact values. For ssm and mamba, `hidden_size` is
    the state size N; `discretization` is the ssm's (the other cells take only the default)."""
    example = random_example(cell, seed, steps, input_size, hidden_size, discretization)
    return Exercise(seed, example, walkthrough.build(example, "hand"), walkthrough.build(example, "exact"))


def spec_text(example: Example) -> str:
    """The example as a spec file (`lstmkit walkthrough --spec`), whole numbers written without '.0'."""
    return dumps(_whole_as_int(example_file.to_dict(example)))


def _whole_as_int(data):
    if isinstance(data, dict):
        return {k: _whole_as_int(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_whole_as_int(v) for v in data]
    return int(data) if isinstance(data, float) and data.is_integer() else data


def random_example(
    cell: str, seed: int, steps: int = 2, input_size: int = 2, hidden_size: int = 2, discretization: str = "zoh"
) -> Example:
    """Small friendly numbers drawn from `seed`, redrawn while dull (see above)."""
    _check(cell, seed, steps, input_size, hidden_size, discretization)
    rng = np.random.default_rng(seed)
    for _ in range(MAX_DRAWS):
        if cell == "ssm":
            spec = _draw_ssm(rng, steps, input_size, hidden_size, discretization)
        elif cell == "mamba":
            spec = _draw_mamba(rng, steps, input_size, hidden_size)
        else:
            spec = _draw(rng, cell, steps, input_size, hidden_size)
        example = example_file.from_dict(spec)
        if not is_dull(example):
            return example
    raise ValueError(f"seed {seed} gave no lively {cell} exercise in {MAX_DRAWS} draws, expected one: try another seed")


def _check(cell: str, seed: int, steps: int, input_size: int, hidden_size: int, discretization: str) -> None:
    if cell not in CELLS:
        raise ValueError(f"cell is {cell!r}, expected one of {', '.join(CELLS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed is {seed!r}, expected a non-negative integer")
    for name, value, most in (
        ("steps", steps, MAX_STEPS),
        ("input size", input_size, MAX_SIZE),
        ("state size" if cell in STATE_SPACE else "hidden size", hidden_size, MAX_SIZE),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= most:
            raise ValueError(f"{name} is {value!r}, expected an integer from 1 to {most} (an exercise by hand)")
    if discretization not in DISCRETIZATIONS:
        raise ValueError(f"discretization is {discretization!r}, expected one of {', '.join(DISCRETIZATIONS)}")
    if cell != "ssm" and discretization != "zoh":
        raise ValueError(f"discretization is {discretization!r}, but only the ssm has one (cell is {cell!r})")


def _integers(rng: np.random.Generator, bounds: tuple[int, int], shape) -> list:
    low, high = bounds
    return rng.integers(low, high + 1, shape).tolist()


def _draw(rng: np.random.Generator, cell: str, T: int, I: int, H: int) -> dict:
    """One draw, as a spec (`lstmkit.explain.walkthrough.example_file`); weights in the order the spec lists them."""
    table = example_file.CELLS[cell]
    sizes = {"H": H, "I": I, "H+I": H + I}
    weights = {}
    for name, dims in table.weights.items():
        bounds = WEIGHTS if name.startswith("W") else BIASES
        weights[name] = _integers(rng, bounds, tuple(sizes[d] for d in dims))
    state = {"h": _integers(rng, STATE, H)}
    if "c" in table.state:
        state["c"] = _integers(rng, STATE, H)
    if cell == "slstm":
        state.update(n=[1] * H, m=[0] * H)
    inputs = _integers(rng, INPUTS, (T, I))
    return {
        "cell": cell,
        "input_size": I,
        "hidden_size": H,
        "weights": weights,
        "inputs": inputs,
        "initial_state": state,
    }


def _draw_ssm(rng: np.random.Generator, T: int, C: int, N: int, discretization: str) -> dict:
    """One ssm draw as a spec; one channel drops the channel axis, as the spec does."""
    delta = rng.choice(SSM_DELTAS, C)  # (C,)
    dA = rng.choice(SSM_DELTA_A, (C, N))  # (C, N)
    A = np.round(dA / delta[:, None], 1)  # one decimal: ΔA / 0.5 or ΔA / 1
    weights = {
        "A": A.tolist(),
        "B": _integers(rng, SSM_BC, (C, N)),
        "C": _integers(rng, SSM_BC, (C, N)),
        "D": _integers(rng, SKIP, C),
        "delta": delta.tolist(),
    }
    h0 = _integers(rng, STATE, (C, N))
    if C == 1:
        weights = {k: v[0] for k, v in weights.items()}
        h0 = h0[0]
    return {
        "cell": "ssm",
        "input_size": C,
        "state_size": N,
        "discretization": discretization,
        "weights": weights,
        "inputs": _integers(rng, INPUTS, (T, C)),
        "initial_state": {"h": h0},
    }


def _draw_mamba(rng: np.random.Generator, T: int, C: int, N: int) -> dict:
    """One mamba draw as a spec, gated, from the empty state."""
    weights = {
        "A": _integers(rng, MAMBA_A, (C, N)),
        "W_delta": _integers(rng, MAMBA_WEIGHTS, (C, C)),
        "b_delta": _integers(rng, MAMBA_WEIGHTS, C),
        "W_B": _integers(rng, MAMBA_WEIGHTS, (N, C)),
        "W_C": _integers(rng, MAMBA_WEIGHTS, (N, C)),
        "D": _integers(rng, SKIP, C),
    }
    return {
        "cell": "mamba",
        "input_size": C,
        "state_size": N,
        "weights": weights,
        "inputs": _integers(rng, MAMBA_INPUTS, (T, C)),
        "gate": _integers(rng, MAMBA_GATES, (T, C)),
        "initial_state": {"h": np.zeros((C, N), dtype=int).tolist()},
    }


def is_dull(example: Example) -> bool:
    """True when the draw would teach little (see the module docstring for each cell's rule)."""
    if example.cell in STATE_SPACE:
        return _state_space_is_dull(example)
    weights = example_file.to_dict(example)["weights"]
    if any(not np.any(w) for name, w in weights.items() if name.startswith("W")):
        return True
    with np.errstate(all="ignore"):
        steps = stages.trace(example, hand)
    for s in steps:
        if not all(np.isfinite(np.asarray(v, dtype=float)).all() for v in s):
            return True
        pre = np.concatenate([getattr(s, name) for name in PRE_ACTIVATIONS[example.cell]])
        if np.mean(np.abs(pre) >= SATURATED) > 0.5:
            return True
    return False


def _state_space_is_dull(example: Example) -> bool:
    p = example.params
    if example.cell == "ssm":
        unused = [m for m in (p.B, p.C) if not np.all(np.any(m, axis=1))]
    else:
        unused = [m for m in (p.W_delta, p.W_B, p.W_C) if not np.any(m)]
    if unused:
        return True
    with np.errstate(all="ignore"):
        steps = stages.trace(example, hand)
    for s in steps:
        values = np.concatenate([np.ravel(v) for v in s if v is not None])
        if not np.isfinite(values).all() or np.max(np.abs(values)) > LARGE:
            return True
        output = s.y if example.cell == "ssm" else s.out
        if not np.any(s.h) or not np.any(output):
            return True
    if not np.all(np.any([s.h for s in steps], axis=(0, 2))):  # (T, C, N) -> does each channel hold something
        return True
    if example.cell == "mamba":
        deltas = np.array([s.delta for s in steps])
        return bool(deltas.size > 1 and np.all(deltas == deltas.flat[0]))
    return False
