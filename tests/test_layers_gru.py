"""GRU in both conventions: golden values against float64 NumPy and Keras's GRU,
the update gate's orientation, gradients, config and errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import reference
from tests.reference import randomize_weights
from zoo.layers import GRU, RECURRENT_LAYERS, GRUCell, recurrent_layer
from zoo.layers._loop import TF_CHUNKS

B, T, I, H = 3, 7, 5, 4

CONVENTIONS = [pytest.param(True, id="reset_after"), pytest.param(False, id="reset_before")]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _ragged_mask(rng):
    return np.arange(T)[None, :] < rng.integers(1, T + 1, size=B)[:, None]


def _built(rng, dtype="float64", **kwargs):
    layer = GRU(H, return_sequences=True, return_state=True, dtype=dtype, **kwargs)
    layer.build((B, T, I))
    randomize_weights(layer, rng)
    return layer


@pytest.mark.parametrize("reset_after", CONVENTIONS)
def test_matches_float64_equations_with_masks_and_initial_state(rng, reset_after):
    layer = _built(rng, reset_after=reset_after)
    cell = layer.cell
    xs = rng.normal(size=(B, T, I))
    mask = _ragged_mask(rng)
    initial = [rng.normal(size=(B, H))]

    def step(x, states):
        weights = cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()
        return reference.gru_step(x, states, *weights, reset_after=reset_after)

    outputs, h = layer(xs, initial_state=initial, mask=mask)
    expected_outputs, (expected_h,) = reference.run_sequence(step, xs, initial, mask)

    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-12)


def test_the_two_conventions_differ(rng):
    """Same kernels, the input bias only: where r applies must change the numbers."""
    xs = rng.normal(size=(B, T, I))
    after, before = _built(rng, reset_after=True), _built(rng, reset_after=False)
    before.set_weights([*after.get_weights()[:2], after.get_weights()[2][0]])
    assert np.abs(after(xs)[0] - before(xs)[0]).max() > 1e-3


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("reset_after", CONVENTIONS)
def test_equals_keras_gru(rng, reset_after, use_bias, masked):
    xs = rng.normal(size=(B, T, I)).astype("float32")
    mask = _ragged_mask(rng) if masked else None
    initial = [rng.normal(size=(B, H)).astype("float32")]
    ours = _built(rng, dtype="float32", reset_after=reset_after, use_bias=use_bias)
    theirs = keras.layers.GRU(
        H, reset_after=reset_after, use_bias=use_bias, return_sequences=True, return_state=True
    )
    theirs.build(xs.shape)
    theirs.set_weights(ours.get_weights())
    for a, b in zip(ours(xs, mask=mask, initial_state=initial), theirs(xs, mask=mask, initial_state=initial)):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("reset_after", CONVENTIONS)
def test_bias_layout_is_keras(reset_after):
    layer = GRU(H, reset_after=reset_after)
    layer.build((None, None, I))
    assert tuple(layer.cell.bias.shape) == ((2, 3 * H) if reset_after else (3 * H,))
    assert tuple(layer.cell.kernel.shape) == (I, 3 * H)
    assert tuple(layer.cell.recurrent_kernel.shape) == (H, 3 * H)


def test_update_gate_is_a_keep_gate(rng):
    """Keras's orientation: z → 1 copies h(t−1) whatever the input; z → 0 takes the candidate."""
    layer = _built(rng)
    xs = rng.normal(size=(B, T, I))
    initial = [rng.normal(size=(B, H))]
    bias = layer.cell.bias.numpy()
    bias[0, :H] = 50.0  # z = σ(50 + ...) = 1
    layer.cell.bias.assign(bias)
    _, h = layer(xs, initial_state=initial)
    np.testing.assert_allclose(h, initial[0], atol=1e-12)

    bias[0, :H] = -50.0  # z = 0: h(t) is the candidate, bounded by tanh, far from the initial state
    layer.cell.bias.assign(bias)
    _, h = layer(xs, initial_state=[100.0 * initial[0]])
    assert np.abs(h).max() < 1.0


@pytest.mark.parametrize("reset_after, matmuls", [(True, 1), (False, 2)])
def test_input_projection_is_outside_the_loop(reset_after, matmuls):
    """Every loop body (one per chunk) holds only the recurrent matmuls.

    One with reset_after, two (U_zr, then U_h) without.
    """
    layer = GRU(H, reset_after=reset_after)
    layer.build((None, None, I))
    assert reference.matmuls_per_loop_body(layer, tf.TensorSpec([None, None, I])) == [matmuls] * TF_CHUNKS


@pytest.mark.parametrize("reset_after", CONVENTIONS)
def test_finite_difference_gradients(rng, reset_after):
    layer = GRU(H, reset_after=reset_after, return_sequences=True, dtype="float64")
    xs = tf.constant(rng.normal(size=(2, 5, I)))
    mask = tf.constant([[True] * 5, [True] * 3 + [False] * 2])
    layer.build(xs.shape)
    randomize_weights(layer, rng)
    target = rng.normal(size=(2, 5, H))

    def loss():
        return tf.reduce_sum((layer(xs, mask=mask) - target) ** 2)

    reference.assert_gradients_match_finite_differences(loss, layer.trainable_weights, rng)


@pytest.mark.parametrize("reset_after", CONVENTIONS)
def test_config_round_trip_and_keras_file(tmp_path, rng, reset_after):
    layer = GRU(
        H, reset_after=reset_after, recurrent_activation="hard_sigmoid", return_sequences=True, return_state=True
    )
    config = layer.get_config()
    assert (config["reset_after"], config["recurrent_activation"]) == (reset_after, "hard_sigmoid")
    assert GRU.from_config(config).get_config() == config

    inputs = keras.Input((None, I))
    output, h = layer(inputs)
    model = keras.Model(inputs, [output, h])
    randomize_weights(layer, rng)
    xs = rng.normal(size=(B, T, I)).astype("float32")
    path = tmp_path / "gru.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    for a, b in zip(restored(xs), model(xs)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_registered_under_gru():
    assert RECURRENT_LAYERS["gru"] is GRU
    layer = recurrent_layer("gru", 6, reset_after=False)
    assert isinstance(layer, GRU) and isinstance(layer.cell, GRUCell)
    assert (layer.units, layer.cell.reset_after) == (6, False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "`units` must be a positive integer. Received: units=0"),
        ({"units": None}, "`units` must be a positive integer. Received: units=None"),
        ({"units": 4, "activation": "nope"}, "`activation` must be a Keras activation .* Received: activation='nope'"),
        (
            {"units": 4, "recurrent_activation": 3},
            "`recurrent_activation` must be a Keras activation .* Received: recurrent_activation=3",
        ),
    ],
)
def test_bad_configuration_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GRU(**kwargs)


def test_wrong_number_of_initial_states_is_explained(rng):
    layer = GRU(H)
    state = np.zeros((B, H), "float32")
    with pytest.raises(ValueError, match=r"expects 1 initial state tensor\(s\) of widths \[4\]. Received: 2"):
        layer(rng.normal(size=(B, T, I)).astype("float32"), initial_state=[state, state])
