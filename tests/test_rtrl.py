"""RTRL and UORO (training.rtrl): with fixed weights RTRL's gradient equals BPTT's, both the layers' hand-written
BPTT and TensorFlow's differentiation of the plain loop, for each supported cell (float64, relative error 1e-10);
UORO's estimate is unbiased; the online learner lowers the loss on a stream and checks its arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.reference import randomize_weights
from training import rtrl
from zoo.layers import GRU, Elman, PeepholeLSTM

B, T, I, H, O = 2, 9, 3, 4, 2

CELLS = {
    "elman": lambda: Elman(H, return_sequences=True, dtype="float64"),
    "elman_learned_h0": lambda: Elman(H, learn_initial_state=True, return_sequences=True, dtype="float64"),
    "peephole_lstm": lambda: PeepholeLSTM(H, return_sequences=True, dtype="float64"),
    "gru": lambda: GRU(H, return_sequences=True, dtype="float64"),
}


def squared_error(outputs, targets):
    return tf.reduce_sum(tf.square(outputs - targets), axis=-1)


@pytest.fixture
def rng():
    return np.random.default_rng(1989)


def _problem(rng, name):
    layer, head = CELLS[name](), keras.layers.Dense(O, dtype="float64")
    layer.build((B, T, I))
    head.build((B, T, H))
    randomize_weights(layer, rng)  # nonzero peepholes and learned h0 too, so every weight's path is exercised
    return layer, head, rng.normal(size=(B, T, I)), rng.normal(size=(B, T, O))


def _bptt(layer, head, xs, ys, mask):
    """Σ_t mean_b l(t) and its gradient by backpropagation through the whole layer."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.reduce_mean(squared_error(head(layer(xs, mask=mask)), ys), axis=0))
    return loss, tape.gradient(loss, layer.trainable_weights + head.trainable_weights)


def _relative_error(got, expected):
    got = np.concatenate([np.ravel(g) for g in got])
    expected = np.concatenate([np.ravel(g) for g in expected])
    return np.linalg.norm(got - expected) / np.linalg.norm(expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reference", ["hand_written_bptt", "autodiff_bptt"])
def test_rtrl_gradient_equals_bptt(rng, name, reference):
    layer, head, xs, ys = _problem(rng, name)
    # Without a mask the TensorFlow loop runs the cells' own derivatives (zoo.layers._fused); an all-true mask
    # sends it through the plain loop, which TensorFlow differentiates itself.
    mask = None if reference == "hand_written_bptt" else np.ones((B, T), bool)
    expected_loss, expected = _bptt(layer, head, xs, ys, mask)

    loss, d_cell, d_head = rtrl.rtrl_gradients(layer.cell, head, squared_error, xs, ys)

    assert float(loss) == pytest.approx(float(expected_loss), rel=1e-12)
    assert _relative_error(d_cell + d_head, expected) <= 1e-10


@pytest.mark.slow
def test_uoro_is_unbiased_for_the_elman_cell(rng):
    layer, head, xs, ys = _problem(rng, "elman")
    _, exact, _ = rtrl.rtrl_gradients(layer.cell, head, squared_error, xs[:1], ys[:1])
    exact = np.concatenate([np.ravel(g) for g in exact])

    draws = rtrl.uoro_draws(layer.cell, head, squared_error, xs[:1], ys[:1], draws=4000, seed=3)

    mean, spread = draws.mean(axis=0), draws.std(axis=0) / np.sqrt(len(draws))
    # Unbiased: every coordinate's mean within 4 standard errors of the exact gradient, while one draw is far.
    assert np.all(np.abs(mean - exact) <= 4 * spread + 1e-12)
    assert np.linalg.norm(draws[0] - exact) > 0.1 * np.linalg.norm(exact)


def test_uoro_head_gradient_is_exact_and_cell_estimate_has_the_weights_shapes(rng):
    layer, head, xs, ys = _problem(rng, "peephole_lstm")
    _, exact_cell, exact_head = rtrl.rtrl_gradients(layer.cell, head, squared_error, xs, ys)

    _, d_cell, d_head = rtrl.uoro_gradients(layer.cell, head, squared_error, xs, ys, seed=0)

    assert [g.shape for g in d_cell] == [g.shape for g in exact_cell]
    assert _relative_error(d_head, exact_head) <= 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("method", rtrl.METHODS)
def test_online_learner_lowers_the_loss_of_a_stream(method):
    keras.utils.set_random_seed(0)  # UORO's estimate is noisy: fixed weights keep the test's outcome fixed
    rng = np.random.default_rng(0)
    layer, head = Elman(4, return_sequences=True), keras.layers.Dense(1)
    layer.build((1, 1, 1))
    head.build((1, 4))
    learner = rtrl.OnlineLearner(layer.cell, head, squared_error, keras.optimizers.Adam(0.05), method=method,
                                 update_every=2)
    bits = rng.integers(0, 2, size=400).astype(np.float32)
    # Echo the previous input: one step of memory, learnable online from the carried sensitivities alone.
    losses = [learner.step(bits[t : t + 1, None], bits[t - 1 : t, None] if t else np.zeros((1, 1), np.float32))[0]
              for t in range(len(bits))]
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:50])


def test_online_learner_rejects_bad_arguments():
    layer, head = Elman(2), keras.layers.Dense(1)
    layer.build((1, 1, 1))
    head.build((1, 2))
    optimizer = keras.optimizers.SGD(0.1)
    with pytest.raises(ValueError, match=r"`method` must be one of \('rtrl', 'uoro'\). Received: method='bptt'"):
        rtrl.OnlineLearner(layer.cell, head, squared_error, optimizer, method="bptt")
    with pytest.raises(ValueError, match="`update_every` must be a positive integer. Received: update_every=0"):
        rtrl.OnlineLearner(layer.cell, head, squared_error, optimizer, update_every=0)


def test_rtrl_gradients_rejects_mismatched_sequences(rng):
    layer, head, xs, ys = _problem(rng, "elman")
    with pytest.raises(ValueError, match=r"the same B and T. Received: inputs.shape=\(2, 9, 3\), "
                                         r"targets.shape=\(2, 8, 2\)"):
        rtrl.rtrl_gradients(layer.cell, head, squared_error, xs, ys[:, :-1])
