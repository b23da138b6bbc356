"""expRNN: the matrix exponential against SciPy, the layer against float64 NumPy equations, orthogonality
kept through optimizer steps, gradients (both TensorFlow loops) against finite differences, config, `.keras`
files and errors. The hand-written gradient loop against TensorFlow's is in test_fused_gradients.py."""

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from tests import reference
from tests.reference import randomize_weights
from zoo.layers import RECURRENT_LAYERS, ExpRNN, ExpRNNCell, recurrent_layer
from zoo.layers._loop import TF_CHUNKS
from zoo.layers.unitary import HenaffInit, expm, skew

B, T, I, H = 3, 7, 5, 4


@pytest.fixture
def rng():
    return np.random.default_rng(2019)


def _mask(lengths):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _recurrent_matrix(layer):
    a = layer.cell.recurrent_parameter.numpy().astype(np.float64)
    return scipy.linalg.expm(a - a.T)


def _reference(layer, xs, mask=None, initial=None):
    cell = layer.cell
    w = _recurrent_matrix(layer)
    bias = cell.bias.numpy() if cell.use_bias else None

    def step(x, states):
        return reference.exprnn_step(x, states, cell.kernel.numpy(), w, bias)

    return reference.run_sequence(step, xs, initial if initial is not None else [np.zeros((len(xs), H))], mask)


def _built(rng, dtype="float64", **kwargs):
    layer = ExpRNN(H, return_sequences=True, return_state=True, dtype=dtype, **kwargs)
    layer.build((B, T, I))
    randomize_weights(layer, rng)
    return layer


@pytest.mark.parametrize("scale", [0.01, 0.3, 2.0, 20.0])
def test_expm_matches_scipy_in_float64(rng, scale):
    """Scales from no squaring to eight: the squarings' conditions pick the right count."""
    a = rng.normal(scale=scale, size=(12, 12))
    for matrix in (a, a - a.T):
        got = np.asarray(expm(keras.ops.convert_to_tensor(matrix)))
        expected = scipy.linalg.expm(matrix)
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11 * np.abs(expected).max())


def test_expm_of_skew_matrix_is_orthogonal_in_float32(rng):
    a = rng.normal(size=(64, 64)).astype("float32")
    w = np.asarray(expm(skew(keras.ops.convert_to_tensor(a))), np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(64), atol=3e-5)


def test_henaff_init_gives_planar_rotations():
    a = np.asarray(HenaffInit(seed=3)((7, 7)), np.float64)
    s = a - a.T
    blocks = [s[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] for k in range(3)]
    assert all(b[0, 1] == -b[1, 0] and b[0, 0] == b[1, 1] == 0 and 0 < abs(b[0, 1]) <= np.pi for b in blocks)
    off_blocks = s.copy()
    for k in range(3):
        off_blocks[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = 0
    np.testing.assert_array_equal(off_blocks, 0)  # the odd last unit included: W = 1 there
    with pytest.raises(ValueError, match=r"square matrix. Received: shape=\(3, 4\)"):
        HenaffInit()((3, 4))


@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_float64_equations_with_masks_and_initial_state(rng, use_bias):
    layer = _built(rng, use_bias=use_bias)
    xs = rng.normal(size=(B, T, I))
    mask = _mask(rng.integers(1, T + 1, size=B))
    initial = [rng.normal(size=(B, H))]

    outputs, h = layer(xs, initial_state=initial, mask=mask)
    expected_outputs, (expected_h,) = _reference(layer, xs, mask, initial)

    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(h, expected_h, rtol=1e-10, atol=1e-10)
    if use_bias:  # modReLU's dead zone is exercised, not just its linear part
        assert np.mean(outputs.numpy() == 0) > 0.05


def test_without_mask_and_with_default_initializers(rng):
    layer = ExpRNN(H, return_sequences=True, dtype="float64")
    xs = rng.normal(size=(B, T, I))
    outputs = layer(xs)
    np.testing.assert_allclose(outputs, _reference(layer, xs)[0], rtol=1e-10, atol=1e-10)


def test_recurrent_matrix_is_outside_the_loop():
    """The exponential is taken once per call: every loop body holds only the recurrent matmul."""
    layer = ExpRNN(H)
    layer.build((None, None, I))
    assert reference.matmuls_per_loop_body(layer, tf.TensorSpec([None, None, I])) == [1] * TF_CHUNKS


@pytest.mark.parametrize("masked", [False, True], ids=["hand-written gradient loop", "TensorFlow's gradient"])
def test_finite_difference_gradients(rng, masked):
    """Unmasked, the TensorFlow loop runs the cell's hand-written `step_backward`; masked, TensorFlow's own."""
    layer = ExpRNN(H, return_sequences=True, return_state=True, dtype="float64")
    xs = tf.constant(rng.normal(size=(2, 5, I)))
    mask = tf.constant([[True] * 5, [True] * 3 + [False] * 2]) if masked else None
    layer.build(xs.shape)
    randomize_weights(layer, rng)
    initial = tf.constant(rng.normal(size=(2, H)))
    target = rng.normal(size=(2, 5, H))

    def loss():
        outputs, h = layer(xs, initial_state=[initial], mask=mask)
        return tf.reduce_sum((outputs - target) ** 2) + tf.reduce_sum(h**3)

    grads = reference.assert_gradients_match_finite_differences(loss, layer.trainable_weights, rng, probes=4)
    assert all(np.abs(g).max() > 1e-3 for g in grads.values())


@pytest.mark.slow
def test_recurrent_matrix_stays_orthogonal_through_training(rng):
    """Large RMSprop steps move A far; W = exp(A − Aᵀ) stays orthogonal to float32 rounding."""
    layer = ExpRNN(16, return_sequences=True)
    head = keras.layers.Dense(1)
    xs = tf.constant(rng.normal(size=(4, 12, 3)).astype("float32"))
    targets = tf.cumsum(xs[..., :1], axis=1)
    layer.build(xs.shape)
    head.build((None, None, 16))
    variables = layer.trainable_weights + head.trainable_weights
    optimizer = keras.optimizers.RMSprop(3e-2)
    before = layer.cell.recurrent_parameter.numpy().copy()

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((head(layer(xs)) - targets) ** 2)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    losses = [float(train_step()) for _ in range(20)]
    assert losses[-1] < losses[0]
    assert np.abs(layer.cell.recurrent_parameter.numpy() - before).max() > 0.1  # A really moved
    w = np.asarray(layer.cell.recurrent_matrix(), np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(16), atol=1e-5)
    np.testing.assert_allclose(w @ w.T, np.eye(16), atol=1e-5)


def test_config_round_trip_and_keras_file(tmp_path, rng):
    layer = ExpRNN(H, use_bias=True, recurrent_initializer=HenaffInit(seed=5), return_sequences=True,
                   go_backwards=True)
    config = layer.get_config()
    assert {"units", "use_bias", "kernel_initializer", "recurrent_initializer", "bias_initializer",
            "return_sequences", "return_state", "go_backwards"} <= set(config)
    assert ExpRNN.from_config(config).get_config() == config

    inputs = keras.Input((None, I))
    model = keras.Model(inputs, layer(inputs))
    randomize_weights(layer, rng)
    xs = rng.normal(size=(B, T, I)).astype("float32")
    path = tmp_path / "exprnn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(xs), model(xs), atol=1e-6)
    np.testing.assert_array_equal(restored.layers[-1].cell.recurrent_parameter.numpy(),
                                  layer.cell.recurrent_parameter.numpy())
    assert isinstance(restored.layers[-1].cell.recurrent_initializer, HenaffInit)


def test_registered_under_exprnn():
    assert RECURRENT_LAYERS["exprnn"] is ExpRNN
    layer = recurrent_layer("exprnn", 6, use_bias=False)
    assert isinstance(layer, ExpRNN) and isinstance(layer.cell, ExpRNNCell) and layer.units == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "`units` must be a positive integer. Received: units=0"),
        ({"units": 2.5}, "`units` must be a positive integer. Received: units=2.5"),
        ({"units": 4, "recurrent_initializer": "henaf"},
         "`recurrent_initializer` must be 'henaff' or a Keras initializer.* Received: recurrent_initializer='henaf'"),
        ({"units": 4, "kernel_initializer": "glorot"},
         "`kernel_initializer` must be a Keras initializer.* Received: kernel_initializer='glorot'"),
    ],
)
def test_bad_configuration_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExpRNN(**kwargs)
