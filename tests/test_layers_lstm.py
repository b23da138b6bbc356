"""Peephole LSTM: golden values against float64 NumPy, Keras's LSTM, gradients, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import reference
from tests.reference import randomize_weights
from zoo.layers import PeepholeLSTM, PeepholeLSTMCell
from zoo.layers._loop import TF_CHUNKS

B, T, I, H = 3, 7, 5, 4


def _reference(layer, xs, mask=None, initial=None):
    cell = layer.cell
    peephole = cell.peephole.numpy() if cell.use_peepholes else None

    def step(x, states):
        return reference.peephole_lstm_step(
            x, states, cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy(), peephole
        )

    states = initial if initial is not None else [np.zeros((xs.shape[0], H))] * 2
    return reference.run_sequence(step, xs, states, mask)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _ragged_mask(rng):
    lengths = rng.integers(1, T + 1, size=B)
    return np.arange(T)[None, :] < lengths[:, None]


@pytest.mark.parametrize("use_peepholes", [True, False])
def test_matches_float64_equations_with_masks_and_initial_state(rng, use_peepholes):
    layer = PeepholeLSTM(H, use_peepholes=use_peepholes, return_sequences=True, return_state=True, dtype="float64")
    xs = rng.normal(size=(B, T, I))
    layer.build(xs.shape)
    randomize_weights(layer, rng)
    mask = _ragged_mask(rng)
    initial = [rng.normal(size=(B, H)), rng.normal(size=(B, H))]

    outputs, h, c = layer(xs, initial_state=initial, mask=mask)
    expected_outputs, (expected_h, expected_c) = _reference(layer, xs, mask, initial)

    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, expected_c, rtol=1e-12, atol=1e-12)


def test_peepholes_change_the_output(rng):
    layer = PeepholeLSTM(H, return_sequences=True, dtype="float64")
    xs = rng.normal(size=(B, T, I))
    layer.build(xs.shape)
    randomize_weights(layer, rng)
    with_peepholes = layer(xs)
    layer.cell.peephole.assign(np.zeros((3, H)))
    assert np.abs(with_peepholes - layer(xs)).max() > 1e-3


@pytest.mark.parametrize("masked", [False, True])
def test_without_peepholes_equals_keras_lstm(rng, masked):
    xs = rng.normal(size=(B, T, I)).astype("float32")
    mask = _ragged_mask(rng) if masked else None
    ours = PeepholeLSTM(H, use_peepholes=False, return_sequences=True, return_state=True)
    theirs = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    ours.build(xs.shape)
    theirs.build(xs.shape)
    randomize_weights(ours, rng)
    theirs.set_weights(ours.get_weights())
    for a, b in zip(ours(xs, mask=mask), theirs(xs, mask=mask)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_forget_bias_starts_at_one():
    cell = PeepholeLSTMCell(H)
    cell.build((None, I))
    bias = cell.bias.numpy()
    np.testing.assert_array_equal(bias[H : 2 * H], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[H : 2 * H]), 0.0)


def test_input_projection_is_outside_the_loop(rng):
    """Every loop body (one per chunk) holds the recurrent matmul only: one (H, 4H) MatMul."""
    layer = PeepholeLSTM(H)
    layer.build((None, None, I))
    assert reference.matmuls_per_loop_body(layer, tf.TensorSpec([None, None, I])) == [1] * TF_CHUNKS


def test_finite_difference_gradients(rng):
    layer = PeepholeLSTM(H, return_sequences=True, dtype="float64")
    xs = tf.constant(rng.normal(size=(2, 5, I)))
    layer.build(xs.shape)
    randomize_weights(layer, rng)
    target = rng.normal(size=(2, 5, H))

    def loss():
        return tf.reduce_sum((layer(xs) - target) ** 2)

    reference.assert_gradients_match_finite_differences(loss, layer.trainable_weights, rng, rtol=1e-5, atol=1e-8)


def test_config_round_trip_and_keras_file(tmp_path, rng):
    layer = PeepholeLSTM(H, use_peepholes=True, return_sequences=True, return_state=True, go_backwards=True)
    clone = PeepholeLSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    inputs = keras.Input((None, I))
    model = keras.Model(inputs, layer(inputs)[0])
    randomize_weights(layer, rng)
    xs = rng.normal(size=(B, T, I)).astype("float32")
    path = tmp_path / "lstm.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(xs), model(xs), atol=1e-6)


def test_go_backwards_reads_the_sequence_reversed(rng):
    xs = rng.normal(size=(B, T, I)).astype("float32")
    forward = PeepholeLSTM(H)
    backward = PeepholeLSTM(H, go_backwards=True)
    forward.build(xs.shape)
    backward.build(xs.shape)
    backward.set_weights(forward.get_weights())
    np.testing.assert_allclose(backward(xs), forward(xs[:, ::-1]), atol=1e-6)


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
        (
            {"units": 4, "recurrent_activation": "sigmoidd"},
            "`recurrent_activation` must be a Keras activation .* Received: recurrent_activation='sigmoidd'",
        ),
    ],
)
def test_bad_configuration_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PeepholeLSTM(**kwargs)


def test_wrong_number_of_initial_states_is_explained(rng):
    layer = PeepholeLSTM(H)
    with pytest.raises(ValueError, match="expects 2 initial state"):
        layer(rng.normal(size=(B, T, I)).astype("float32"), initial_state=[np.zeros((B, H), "float32")])
