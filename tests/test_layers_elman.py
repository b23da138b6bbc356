"""Elman: golden values against float64 NumPy and Keras's SimpleRNN, gradients
(into the learned initial state too), config and errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import reference
from tests.reference import randomize_weights
from zoo.layers import RECURRENT_LAYERS, Elman, ElmanCell, recurrent_layer
from zoo.layers._loop import TF_CHUNKS

B, T, I, H = 3, 7, 5, 4

ACTIVATIONS = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0)}


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def _mask(lengths):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _reference(layer, xs, mask=None, initial=None, activation="tanh"):
    cell = layer.cell

    def step(x, states):
        return reference.elman_step(
            x, states, cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy(), ACTIVATIONS[activation]
        )

    return reference.run_sequence(step, xs, initial if initial is not None else [np.zeros((len(xs), H))], mask)


def _built(rng, dtype="float64", **kwargs):
    layer = Elman(H, return_sequences=True, return_state=True, dtype=dtype, **kwargs)
    layer.build((B, T, I))
    randomize_weights(layer, rng)
    return layer


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_matches_float64_equations_with_masks_and_initial_state(rng, activation):
    layer = _built(rng, activation=activation)
    xs = rng.normal(size=(B, T, I))
    mask = _mask(rng.integers(1, T + 1, size=B))
    initial = [rng.normal(size=(B, H))]

    outputs, h = layer(xs, initial_state=initial, mask=mask)
    expected_outputs, (expected_h,) = _reference(layer, xs, mask, initial, activation)

    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-12)


def test_learned_initial_state_starts_every_sequence_unless_a_state_is_passed(rng):
    layer = _built(rng, learn_initial_state=True)
    h0 = layer.cell.initial_state.numpy()
    assert np.abs(h0).max() > 0.1  # random, so using zeros instead would show
    xs = rng.normal(size=(B, T, I))
    mask = _mask([T, 3, 0])  # the empty row must come out with h0 itself

    outputs, h = layer(xs, mask=mask)
    expected_outputs, (expected_h,) = _reference(layer, xs, mask, [np.tile(h0, (B, 1))])
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h[2], h0, rtol=0, atol=0)

    carried = [rng.normal(size=(B, H))]
    _, h_carried = layer(xs, initial_state=carried, mask=mask)
    np.testing.assert_allclose(h_carried, _reference(layer, xs, mask, carried)[1][0], rtol=1e-12, atol=1e-12)


def test_learned_initial_state_starts_at_zero_and_appends_one_weight():
    layer = Elman(H, learn_initial_state=True)
    layer.build((None, None, I))
    assert [w.path.split("/")[-1] for w in layer.trainable_weights] == [
        "kernel",
        "recurrent_kernel",
        "bias",
        "initial_state",
    ]
    np.testing.assert_array_equal(layer.cell.initial_state.numpy(), np.zeros(H))


@pytest.mark.parametrize("masked", [False, True])
def test_equals_keras_simple_rnn(rng, masked):
    xs = rng.normal(size=(B, T, I)).astype("float32")
    mask = _mask(rng.integers(1, T + 1, size=B)) if masked else None
    ours = _built(rng, dtype="float32")
    theirs = keras.layers.SimpleRNN(H, return_sequences=True, return_state=True)
    theirs.build(xs.shape)
    theirs.set_weights(ours.get_weights())
    for a, b in zip(ours(xs, mask=mask), theirs(xs, mask=mask)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_relu_without_bias_equals_keras_simple_rnn(rng):
    xs = rng.normal(size=(B, T, I)).astype("float32")
    ours = _built(rng, dtype="float32", activation="relu", use_bias=False)
    theirs = keras.layers.SimpleRNN(H, activation="relu", use_bias=False, return_sequences=True)
    theirs.build(xs.shape)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(xs)[0], theirs(xs), atol=1e-5)


def test_input_projection_is_outside_the_loop():
    """Every loop body (one per chunk) holds the recurrent matmul only: one (H, H) MatMul."""
    layer = Elman(H)
    layer.build((None, None, I))
    assert reference.matmuls_per_loop_body(layer, tf.TensorSpec([None, None, I])) == [1] * TF_CHUNKS


def test_finite_difference_gradients_including_the_initial_state(rng):
    layer = Elman(H, learn_initial_state=True, return_sequences=True, dtype="float64")
    xs = tf.constant(rng.normal(size=(2, 5, I)))
    mask = tf.constant([[True] * 5, [True] * 3 + [False] * 2])
    layer.build(xs.shape)
    randomize_weights(layer, rng)
    target = rng.normal(size=(2, 5, H))

    def loss():
        return tf.reduce_sum((layer(xs, mask=mask) - target) ** 2)

    grads = reference.assert_gradients_match_finite_differences(loss, layer.trainable_weights, rng)
    assert np.abs(grads[layer.cell.initial_state.path]).max() > 1e-3  # h0 really receives gradient


def test_config_round_trip_and_keras_file(tmp_path, rng):
    layer = Elman(H, activation="relu", learn_initial_state=True, return_sequences=True, go_backwards=True)
    config = layer.get_config()
    assert (config["activation"], config["learn_initial_state"]) == ("relu", True)
    assert Elman.from_config(config).get_config() == config

    inputs = keras.Input((None, I))
    model = keras.Model(inputs, layer(inputs))
    randomize_weights(layer, rng)
    xs = rng.normal(size=(B, T, I)).astype("float32")
    path = tmp_path / "elman.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(xs), model(xs), atol=1e-6)
    np.testing.assert_array_equal(restored.layers[-1].cell.initial_state.numpy(), layer.cell.initial_state.numpy())


def test_registered_under_elman():
    assert RECURRENT_LAYERS["elman"] is Elman
    layer = recurrent_layer("elman", 6, activation="relu")
    assert isinstance(layer, Elman) and isinstance(layer.cell, ElmanCell) and layer.units == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "`units` must be a positive integer. Received: units=0"),
        ({"units": -3}, "`units` must be a positive integer. Received: units=-3"),
        ({"units": 2.5}, "`units` must be a positive integer. Received: units=2.5"),
        (
            {"units": 4, "activation": "tanhh"},
            "`activation` must be a Keras activation .* Received: activation='tanhh'",
        ),
    ],
)
def test_bad_configuration_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Elman(**kwargs)
