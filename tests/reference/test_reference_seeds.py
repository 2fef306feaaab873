"""The seeds' worked example: step-1 pre-activations, hand mode and exact mode."""

import numpy as np
import pytest

from lstmkit.reference import exact, examples, hand, lstm


def run_seeds(mode):
    ex = examples.seeds_lstm()
    return lstm.run(ex.params, ex.xs, ex.state0, mode)


def test_example_sizes_and_initial_state():
    ex = examples.seeds_lstm()
    assert ex.xs.shape == (3, 3)
    assert ex.params.hidden_size == 2 and ex.params.input_size == 3
    np.testing.assert_array_equal(ex.state0.h, [1, 1])
    np.testing.assert_array_equal(ex.state0.c, [0.3, -0.5])


def test_weights_are_small_integers():
    for W in (examples.W_F, examples.W_I, examples.W_C, examples.W_O):
        assert np.array_equal(W, np.round(W)) and np.abs(W).max() <= 2


@pytest.mark.parametrize("mode", [hand, exact])
def test_step1_pre_activations_are_the_seeds(mode):
    s1 = run_seeds(mode)[0]
    expected = examples.STEP1_PRE_ACTIVATIONS
    np.testing.assert_array_equal(s1.pre_f, expected["f"])
    np.testing.assert_array_equal(s1.pre_i, expected["i"])
    np.testing.assert_array_equal(s1.pre_o, expected["o"])
    np.testing.assert_array_equal(s1.pre_g, expected["g"])


def test_hand_mode_reproduces_the_seeds_figure():
    s1 = run_seeds(hand)[0]
    np.testing.assert_array_equal(s1.f, [0, 0])
    np.testing.assert_array_equal(s1.i, [1, 1])
    np.testing.assert_array_equal(s1.o, [1, 0])
    np.testing.assert_array_equal(s1.g, [0.8, -1])
    np.testing.assert_array_equal(s1.c, [0.8, -1])
    np.testing.assert_array_equal(s1.tanh_c, [0.7, -0.8])
    np.testing.assert_array_equal(s1.h, [0.7, 0])


def test_hand_mode_carries_the_rounded_values_forward():
    s1, s2, _ = run_seeds(hand)
    np.testing.assert_array_equal(s2.h_prev, s1.h)
    np.testing.assert_array_equal(s2.c_prev, s1.c)
    # step 2's linear transform uses the rounded h1 = [0.7, 0]: W_f [0.7, 0, 1, -1, 0] + b_f
    np.testing.assert_allclose(s2.pre_f, examples.W_F @ [0.7, 0, 1, -1, 0] + examples.B_F)


def test_exact_mode_step1():
    s1 = run_seeds(exact)[0]
    np.testing.assert_allclose(s1.c, [0.765107, -0.983238], atol=5e-7)
    np.testing.assert_allclose(s1.h, [0.632491, -0.005050], atol=5e-7)
    # the correct input term is C̃1 ⊙ i1 (one seed writes C̃1 ⊙ o1)
    np.testing.assert_allclose(s1.input_term, s1.g * s1.i)
    assert not np.allclose(s1.c, s1.forget_term + s1.g * s1.o)


@pytest.mark.parametrize(
    ("value", "rounded"),
    [(0.25, 0.3), (-0.25, -0.3), (0.35, 0.4), (0.04, 0.0), (-0.04, 0.0), (0.9975, 1.0), (-5.55, -5.6)],
)
def test_hand_rounding_is_half_away_from_zero(value, rounded):
    out = hand(np.array([value]))
    assert out[0] == rounded
    assert not np.signbit(out[0]) or rounded < 0


def test_rnn_and_gru_examples_share_the_inputs():
    for make in (examples.seeds_rnn, examples.seeds_gru):
        ex = make()
        np.testing.assert_array_equal(ex.xs, examples.XS)
        np.testing.assert_array_equal(ex.state0.h, examples.H0)
