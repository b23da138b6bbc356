"""Echo state reservoir, ridge readout and closed-loop forecast: golden values against
float64 NumPy, the reservoir's defining properties, reservoirpy's Mackey–Glass
benchmark, `.keras` round trips and errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import reference
from training.data.mackey_glass import mackey_glass
from zoo.layers._loop import TF_CHUNKS
from zoo.layers.esn import SPARSE_MAX_CONNECTIVITY, EchoState, EchoStateCell, forecast, harvest_states
from zoo.layers.ridge import RidgeReadout
from zoo.models.esn_forecaster import ESNForecaster

B, T, I, H = 3, 9, 4, 20


@pytest.fixture
def rng():
    return np.random.default_rng(2025)


def _weights(layer):
    cell = layer.cell
    return cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()


def _reference(layer, xs, initial=None, mask=None):
    kernel, recurrent, bias = _weights(layer)
    if layer.cell.feedback_dim:
        kernel = np.concatenate([kernel, layer.cell.feedback_kernel.numpy()], axis=0)

    def step(u, states):
        return reference.esn_step(u, states, kernel, recurrent, bias, layer.cell.leak_rate)

    return reference.run_sequence(step, xs, initial if initial is not None else [np.zeros((len(xs), H))], mask)


# Reservoir ------------------------------------------------------------------------------------


def test_shapes_and_float64_default(rng):
    xs = rng.normal(size=(B, T, I))
    assert EchoState(H, seed=0)(xs).shape == (B, H)
    layer = EchoState(H, seed=0, return_sequences=True, return_state=True)
    outputs, x = layer(xs)
    assert outputs.shape == (B, T, H) and x.shape == (B, H)
    assert layer.compute_output_shape((B, T, I)) == ((B, T, H), (B, H))
    assert outputs.dtype == "float64" and layer.cell.recurrent_kernel.dtype == "float64"
    assert EchoState(H, seed=0, dtype="float32")(xs.astype("float32")).dtype == "float32"


def test_weights_are_fixed_and_non_trainable():
    layer = EchoState(H, seed=0, feedback_dim=2)
    layer.build((None, None, I + 2))
    assert layer.trainable_weights == []
    names = [w.path.split("/")[-1] for w in layer.non_trainable_weights]
    assert names == ["kernel", "recurrent_kernel", "bias", "feedback_kernel"]
    assert [tuple(w.shape) for w in layer.non_trainable_weights] == [(I, H), (H, H), (H,), (2, H)]


@pytest.mark.parametrize("spectral_radius", [0.5, 1.25, 3.0])
def test_spectral_radius_is_exact(spectral_radius):
    layer = EchoState(60, spectral_radius=spectral_radius, rc_connectivity=0.2, seed=7)
    layer.build((None, None, 1))
    w = layer.cell.recurrent_kernel.numpy()
    np.testing.assert_allclose(np.max(np.abs(np.linalg.eigvals(w))), spectral_radius, rtol=1e-10)
    np.testing.assert_allclose(np.max(np.abs(np.linalg.eigvals(w.T))), spectral_radius, rtol=1e-10)


def test_connectivity_and_scalings_as_configured():
    layer = EchoState(
        200, rc_connectivity=0.05, input_connectivity=0.3, input_scaling=0.4, bias_scaling=0.2, seed=3
    )
    layer.build((None, None, 10))
    kernel, recurrent, bias = _weights(layer)
    assert abs(np.count_nonzero(recurrent) / recurrent.size - 0.05) < 1e-3
    assert abs(np.count_nonzero(kernel) / kernel.size - 0.3) < 1e-3
    assert abs(np.count_nonzero(bias) / bias.size - 0.3) < 1e-2
    assert set(np.unique(kernel)) == {-0.4, 0.0, 0.4}  # reservoirpy's Bernoulli ±input_scaling
    assert set(np.unique(bias)) == {-0.2, 0.0, 0.2}
    nonzero = recurrent[recurrent != 0]
    assert abs(np.mean(nonzero)) < 0.2 * np.std(nonzero)  # centred normal values


def test_seed_fixes_the_weights_and_the_input_width_leaves_w_alone():
    def built(seed, width):
        layer = EchoState(30, seed=seed)
        layer.build((None, None, width))
        return _weights(layer)

    for a, b in zip(built(5, 2), built(5, 2)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(built(5, 2)[1], built(5, 6)[1])
    assert not np.array_equal(built(5, 2)[1], built(6, 2)[1])
    assert EchoState(30).get_config()["seed"] != EchoState(30).get_config()["seed"]  # None draws, and records


@pytest.mark.parametrize("leak_rate", [1.0, 0.3])
def test_matches_float64_equations_with_mask_initial_state_and_feedback(rng, leak_rate):
    layer = EchoState(
        H, spectral_radius=1.1, leak_rate=leak_rate, input_connectivity=0.5, feedback_dim=2, seed=1,
        return_sequences=True, return_state=True,
    )  # fmt: skip
    xs = rng.normal(size=(B, T, I + 2))
    initial = [rng.normal(size=(B, H))]
    mask = np.arange(T)[None, :] < np.array([T, 5, 1])[:, None]

    one_step, x1 = layer(xs[:, :1], initial_state=initial)
    expected, _ = reference.esn_step(
        xs[:, 0], initial, *_with_feedback(layer), layer.cell.leak_rate
    )  # fmt: skip
    np.testing.assert_allclose(x1, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(one_step[:, 0], expected, rtol=1e-13, atol=1e-13)

    outputs, x = layer(xs, initial_state=initial, mask=mask)
    expected_outputs, (expected_x,) = _reference(layer, xs, initial, mask)
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x, expected_x, rtol=1e-12, atol=1e-12)


def _with_feedback(layer):
    kernel, recurrent, bias = _weights(layer)
    return np.concatenate([kernel, layer.cell.feedback_kernel.numpy()], axis=0), recurrent, bias


def test_echo_state_property_forgets_the_initial_state(rng):
    layer = EchoState(100, spectral_radius=0.9, leak_rate=0.5, seed=11, return_sequences=True)
    run = tf.function(layer)
    u = tf.constant(rng.uniform(-1, 1, size=(1, 500, 1)))
    a = run(u, initial_state=[rng.normal(size=(1, 100))]).numpy()[0]
    b = run(u, initial_state=[rng.normal(size=(1, 100))]).numpy()[0]
    distance = np.linalg.norm(a - b, axis=-1)
    assert distance[-1] < 1e-6 * distance[0]
    assert np.all(distance[100::100] < distance[:-100:100])  # shrinking all along


def _loop_body_ops(layer):
    """Op types of each `tf.while_loop` body of `layer`, one list per body (one body per chunk)."""
    spec = tf.TensorSpec([None, None, layer.cell.input_dim], tf.float64)
    graph = tf.function(layer).get_concrete_function(spec).graph
    return [[n.op for n in f.node_def] for f in graph.as_graph_def().library.function if "body" in f.signature.name]


def test_input_projection_is_outside_the_loop():
    """Every loop body (one per chunk) holds the recurrent matmul only: one MatMul (dense W)."""
    layer = EchoState(H, rc_connectivity=0.5, seed=0)
    layer.build((None, None, I))
    assert not layer.cell.uses_sparse_recurrence()
    assert reference.matmuls_per_loop_body(layer, tf.TensorSpec([None, None, I], tf.float64)) == [1] * TF_CHUNKS


def test_sparse_w_is_converted_once_and_multiplied_sparse_in_the_loop():
    """At reservoirpy's 10% connectivity the step's product is one sparse·dense matmul; W's sparse
    form is built before the loop (no dense matmul, no conversion inside the body)."""
    layer = EchoState(H, seed=0)
    layer.build((None, None, I))
    assert layer.cell.uses_sparse_recurrence()
    bodies = _loop_body_ops(layer)
    assert len(bodies) == TF_CHUNKS
    for ops_in_body in bodies:
        assert ops_in_body.count("SparseTensorDenseMatMul") == 1
        assert not {"MatMul", "BatchMatMulV2", "Where", "GatherNd"} & set(ops_in_body)
    assert layer.cell._sparse_recurrent_kernel is None  # the scope is left after the trace


@pytest.mark.parametrize("connectivity", [0.1, 0.5])
def test_sparse_and_dense_recurrence_agree_with_the_equations(rng, connectivity):
    layer = EchoState(50, leak_rate=0.4, rc_connectivity=connectivity, seed=4, return_sequences=True)
    xs = rng.normal(size=(2, 30, 3))
    assert layer.cell.uses_sparse_recurrence() == (connectivity <= SPARSE_MAX_CONNECTIVITY)
    eager, graph = layer(xs), tf.function(layer)(xs)
    kernel, recurrent, bias = _weights(layer)
    step = lambda u, states: reference.esn_step(u, states, kernel, recurrent, bias, 0.4)  # noqa: E731
    expected, _ = reference.run_sequence(step, xs, [np.zeros((2, 50))])
    np.testing.assert_allclose(eager, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(graph, expected, rtol=1e-12, atol=1e-13)


# harvest_states: the NumPy path that fits readouts ------------------------------------------------


@pytest.mark.parametrize("leak_rate, feedback_dim, batch", [(0.3, 0, 1), (1.0, 2, 3)])
def test_harvest_states_are_the_layers_states(rng, leak_rate, feedback_dim, batch):
    layer = EchoState(H, leak_rate=leak_rate, feedback_dim=feedback_dim, seed=5, return_sequences=True,
                      return_state=True)
    xs = rng.normal(size=(batch, T, I + feedback_dim))
    initial = rng.normal(size=(batch, H))
    expected, expected_x = layer(xs, initial_state=[initial])
    states, x = harvest_states(layer, xs, [initial])
    assert states.shape == (batch, T, H) and x.shape == (batch, H) and states.dtype == np.float64
    np.testing.assert_allclose(states, expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(x, expected_x, rtol=1e-13, atol=1e-14)
    one, one_x = harvest_states(layer, xs[0], initial[0])  # a bare (T, I) sequence and (H,) state
    assert one.shape == (T, H) and one_x.shape == (H,)
    np.testing.assert_array_equal(one, states[0])
    head, mid = harvest_states(layer, xs[:, :4], [initial])  # continuing from the final state is seamless
    np.testing.assert_allclose(np.concatenate([head, harvest_states(layer, xs[:, 4:], mid)[0]], 1), states,
                               rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("batch", [1, 3])
def test_the_direct_csr_kernel_and_scipys_matmul_agree(rng, batch):
    import scipy.sparse

    from zoo.layers.esn import _csr_accumulate

    w = scipy.sparse.random(40, 40, density=0.1, format="csr", random_state=1)
    x = rng.normal(size=(40, batch)).squeeze(-1) if batch == 1 else rng.normal(size=(40, batch))
    start = rng.normal(size=x.shape)
    direct, fallback = start.copy(), start.copy()
    _csr_accumulate(w, batch)(x, direct)
    wide = w.copy()
    wide.indices = wide.indices.astype(np.int64)  # not the kernel's int32 indices: `@` instead
    _csr_accumulate(wide, batch)(x, fallback)
    np.testing.assert_allclose(direct, start + w @ x, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(fallback, start + w @ x, rtol=1e-14, atol=1e-15)


def test_harvest_states_noise_enters_inside_the_activation(rng):
    layer = EchoState(H, leak_rate=0.5, seed=2)
    xs = rng.normal(size=(1, T, I))
    clean, _ = harvest_states(layer, xs)
    noisy, _ = harvest_states(layer, xs, noise=1e-3, noise_seed=7)
    np.testing.assert_array_equal(noisy, harvest_states(layer, xs, noise=1e-3, noise_seed=7)[0])
    kernel, recurrent, bias = _weights(layer)
    nu = 1e-3 * (np.random.default_rng(7).random((T, H, 1)) - 0.5)  # drawn as (T, H, B)
    x, expected = np.zeros((1, H)), []
    for t in range(T):
        x = 0.5 * x + 0.5 * np.tanh(xs[:, t] @ kernel + x @ recurrent + bias + nu[t].T)
        expected.append(x)
    np.testing.assert_allclose(noisy[0], np.concatenate(expected), rtol=1e-12, atol=1e-14)
    assert 1e-6 < np.abs(noisy - clean).max() < 1e-2


def test_harvest_states_follows_loaded_weights(rng):
    layer = EchoState(H, seed=1)
    layer.build((None, None, I))
    xs = rng.normal(size=(1, T, I))
    before, _ = harvest_states(layer, xs)
    other = EchoState(H, seed=2)
    other.build((None, None, I))
    layer.set_weights(other.get_weights())  # the cached CSR W must not survive this
    np.testing.assert_array_equal(harvest_states(layer, xs)[0], harvest_states(other, xs)[0])
    assert not np.array_equal(before, harvest_states(layer, xs)[0])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda layer: harvest_states(layer, np.ones((2, 5, I)), np.ones((1, H))), r"`initial_state` must be \(2, 20"),
        (lambda layer: harvest_states(layer, np.ones((1, 5, I)), noise=-1), r"`noise` must be a non-negative number"),
        (lambda layer: harvest_states(EchoState(H, activation="relu"), np.ones((1, 5, I))), r"tanh reservoirs only"),
        (lambda layer: harvest_states(EchoState(H, go_backwards=True), np.ones((1, 5, I))), r"go_backwards=True"),
    ],
)  # fmt: skip
def test_harvest_states_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call(EchoState(H, seed=0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, r"`units` must be a positive integer. Received: units=0"),
        ({"spectral_radius": -1}, r"`spectral_radius` must be a positive number. Received: spectral_radius=-1"),
        ({"spectral_radius": 0}, r"`spectral_radius` must be a positive number. Received: spectral_radius=0"),
        ({"leak_rate": 0}, r"`leak_rate` must be a number in \(0, 1\]. Received: leak_rate=0"),
        ({"leak_rate": 1.5}, r"`leak_rate` must be a number in \(0, 1\]. Received: leak_rate=1.5"),
        ({"rc_connectivity": 0}, r"`rc_connectivity` must be a number in \(0, 1\]. Received: rc_connectivity=0"),
        ({"input_connectivity": 1.1}, r"`input_connectivity` must be a number in \(0, 1\]. Received: input_co"),
        ({"input_scaling": 0}, r"`input_scaling` must be a positive number. Received: input_scaling=0"),
        ({"bias_scaling": -0.1}, r"`bias_scaling` must be a non-negative number. Received: bias_scaling=-0.1"),
        ({"feedback_dim": -1}, r"`feedback_dim` must be a non-negative integer. Received: feedback_dim=-1"),
        ({"seed": "a"}, r"`seed` must be a non-negative integer or None. Received: seed='a'"),
        ({"activation": "tanhh"}, r"`activation` must be a Keras activation .* Received: activation='tanhh'"),
    ],
)
def test_bad_configuration_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EchoState(**{"units": H, **kwargs})


def test_too_few_channels_for_the_feedback():
    with pytest.raises(ValueError, match=r"fewer than `feedback_dim`. Received: feedback_dim=3"):
        EchoState(H, feedback_dim=3).build((None, None, 2))


# Ridge readout --------------------------------------------------------------------------------


def _ridge_lstsq(x, y, ridge):
    """Ridge on centred data as one least-squares problem: [X̃; √λ·I] W ≈ [Ỹ; 0]."""
    mx, my = x.mean(0), y.mean(0)
    a = np.concatenate([x - mx, np.sqrt(ridge) * np.eye(x.shape[1])])
    b = np.concatenate([y - my, np.zeros((x.shape[1], y.shape[1]))])
    w = np.linalg.lstsq(a, b, rcond=None)[0]
    return w, my - mx @ w


def test_ridge_equals_least_squares_of_centred_augmented_system(rng):
    x = rng.normal(size=(4, 50, 6)) + 3.0  # far from centred: an uncentred fit would differ
    y = x @ rng.normal(size=(6, 2)) + 5.0 + 0.1 * rng.normal(size=(4, 50, 2))
    readout = RidgeReadout(ridge=0.5, warmup=10).fit(x, y)
    w, b = _ridge_lstsq(x[:, 10:].reshape(-1, 6), y[:, 10:].reshape(-1, 2), 0.5)
    np.testing.assert_allclose(readout.kernel.numpy(), w, rtol=1e-10)
    np.testing.assert_allclose(readout.bias.numpy(), b, rtol=1e-10)
    np.testing.assert_allclose(readout.predict(x[0]), x[0] @ w + b, rtol=1e-10)
    np.testing.assert_allclose(readout(x).numpy(), x @ w + b, rtol=1e-10)

    streamed = RidgeReadout(ridge=0.5, warmup=10)  # uneven batches, the last a bare (T, H) sequence
    streamed.partial_fit(x[:1], y[:1]).partial_fit(x[1:3], y[1:3]).partial_fit(x[3], y[3]).finalize()
    assert streamed.count == 4 * 40
    np.testing.assert_allclose(streamed.kernel.numpy(), readout.kernel.numpy(), rtol=1e-10)
    np.testing.assert_allclose(streamed.bias.numpy(), readout.bias.numpy(), rtol=1e-10)


@pytest.mark.parametrize("degree", [2, 4])
def test_a_polynomial_readout_is_the_ridge_fit_of_the_states_powers(rng, degree):
    x = rng.normal(size=(3, 40, 5))
    y = np.concatenate([x[..., :1] ** 2 - x[..., 1:2], x[..., 2:3] * x[..., 2:3]], axis=-1)  # even in the state
    readout = RidgeReadout(ridge=1e-3, warmup=4, degree=degree).fit(x, y)
    features = np.concatenate([x**p for p in range(1, degree + 1)], axis=-1)
    w, b = _ridge_lstsq(features[:, 4:].reshape(-1, 5 * degree), y[:, 4:].reshape(-1, 2), 1e-3)
    assert readout.kernel.shape == (5 * degree, 2)
    np.testing.assert_allclose(readout.kernel.numpy(), w, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(readout.predict(x), features @ w + b, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(readout(x).numpy(), features @ w + b, rtol=1e-9, atol=1e-11)  # the graph path
    online = RidgeReadout(ridge=1e-3, warmup=4, degree=degree, online=True).fit(x, y)  # the same powers, by RLS
    np.testing.assert_allclose(online.predict(x), readout.predict(x), rtol=1e-6, atol=1e-8)
    assert np.abs(readout.predict(x) - y).max() < 1e-2  # the linear readout cannot: y is even in x
    assert np.abs(RidgeReadout(ridge=1e-3, warmup=4).fit(x, y).predict(x) - y).max() > 0.5
    clone = RidgeReadout.from_config(readout.get_config())
    assert clone.degree == degree and clone(x[:, :2]).shape == (3, 2, 2)


def test_a_forecaster_with_a_polynomial_readout_runs_it_in_numpy_in_the_graph_saved_and_exported(tmp_path):
    from zoo.export import export_saved_model

    series = mackey_glass(400)
    model = ESNForecaster(units=30, warmup=20, seed=0, readout_degree=4)
    model.fit_readout(series[None, :-1], series[None, 1:])
    warm = series[None, 100:150]
    predictions = np.asarray(model.forecast(warm, 4)[0])  # the graph's closed loop
    one_step, state = model.one_step(warm)  # NumPy: the first forecast is the last one-step prediction
    expected = [one_step[0, -1]]
    for _ in range(3):  # each prediction fed back as the next input
        following, state = model.one_step(np.asarray(expected[-1])[None, None], initial_state=state)
        expected.append(following[0, -1])
    np.testing.assert_allclose(predictions[0], expected, rtol=1e-10, atol=1e-12)
    keras.saving.save_model(model, tmp_path / "esn.keras")
    restored = keras.saving.load_model(tmp_path / "esn.keras")
    assert restored.readout.degree == 4
    np.testing.assert_array_equal(np.asarray(restored.forecast(warm, 4)[0]), predictions)
    served = tf.saved_model.load(str(export_saved_model(model, tmp_path / "esn"))).signatures["forecast"]
    answer = served(inputs=tf.constant(warm), steps=tf.constant([4], tf.int32))["forecast"].numpy()
    np.testing.assert_allclose(answer, np.asarray(model.forecast(warm, 4)[0]), rtol=1e-10, atol=1e-12)


def test_ridge_does_not_regularise_the_bias(rng):
    x = rng.normal(size=(200, 3))
    y = x @ np.array([[1.0], [2.0], [3.0]]) + 7.0
    readout = RidgeReadout(ridge=1e12).fit(x, y)
    assert np.abs(readout.kernel.numpy()).max() < 1e-8
    np.testing.assert_allclose(readout.bias.numpy(), y.mean(0), rtol=1e-8)
    exact = RidgeReadout(ridge=0.0).fit(x, y)
    np.testing.assert_allclose(exact.kernel.numpy(), [[1.0], [2.0], [3.0]], rtol=1e-10)
    np.testing.assert_allclose(exact.bias.numpy(), [7.0], rtol=1e-10)


def test_online_readout_converges_to_the_ridge_solution_on_a_stationary_stream(rng):
    """Recursive least squares over a stream of batches ends where the closed form on all of it is."""
    mixing = rng.normal(size=(8, 8))
    x = np.tanh(rng.normal(size=(12, 60, 8)) @ mixing + 0.5)  # stationary, correlated, off-centre states
    y = x @ rng.normal(size=(8, 2)) - 1.5 + 0.05 * rng.normal(size=(12, 60, 2))
    closed = RidgeReadout(ridge=1e-2, warmup=5).fit(x, y)
    online = RidgeReadout(ridge=1e-2, warmup=5, online=True)
    distances = []
    for batch in range(12):  # the readout is usable after every batch
        online.partial_fit(x[batch : batch + 1], y[batch : batch + 1])
        distances.append(np.abs(online.kernel.numpy() - closed.kernel.numpy()).max())
    assert online.finalize() is online and online.count == closed.count == 12 * 55
    np.testing.assert_allclose(online.kernel.numpy(), closed.kernel.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(online.bias.numpy(), closed.bias.numpy(), rtol=1e-6, atol=1e-7)
    assert distances[-1] < 1e-3 * distances[0]
    exact = RidgeReadout(ridge=1e-2, warmup=5)  # exactly the ridge with the bias penalised by λ·prior
    rows = np.concatenate([x[:, 5:].reshape(-1, 8), np.ones((12 * 55, 1))], axis=1)
    penalty = 1e-2 * np.diag([1.0] * 8 + [RidgeReadout.ONLINE_BIAS_PRIOR])
    w = np.linalg.solve(rows.T @ rows + penalty, rows.T @ y[:, 5:].reshape(-1, 2))
    np.testing.assert_allclose(online.kernel.numpy(), w[:-1], rtol=1e-9, atol=1e-10)
    assert exact.get_config()["online"] is False and online.get_config()["forgetting"] == 1.0


def test_online_readout_with_forgetting_tracks_a_change():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 400, 3))
    y = np.concatenate([x[:1] @ np.ones((3, 1)), x[1:] @ -np.ones((3, 1))])  # the map flips halfway
    tracking = RidgeReadout(ridge=1e-3, online=True, forgetting=0.95).fit(x, y)
    np.testing.assert_allclose(tracking.kernel.numpy(), -np.ones((3, 1)), atol=1e-6)
    remembering = RidgeReadout(ridge=1e-3, online=True).fit(x, y)
    assert np.abs(remembering.kernel.numpy()).max() < 0.2  # the average of both halves


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RidgeReadout(ridge=-1), r"`ridge` must be a non-negative number. Received: ridge=-1"),
        (lambda: RidgeReadout(warmup=-2), r"`warmup` must be a non-negative integer. Received: warmup=-2"),
        (lambda: RidgeReadout(units=0), r"`units` must be a positive integer or None. Received: units=0"),
        (lambda: RidgeReadout(online=True), r"needs `ridge` > 0. Received: ridge=0, online=True"),
        (lambda: RidgeReadout(ridge=1, online=True, forgetting=0), r"`forgetting` must be a number in \(0, 1\]"),
        (lambda: RidgeReadout(warmup=5).fit(np.ones((5, 2)), np.ones((5, 1))), r"longer than `warmup`"),
        (lambda: RidgeReadout().fit(np.ones((5, 2)), np.ones((4, 1))), r"same B and T"),
        (lambda: RidgeReadout().finalize(), r"call `partial_fit` first"),
        (lambda: RidgeReadout().fit(np.ones((5, 2)), np.ones((5, 1))).fit(np.ones((5, 3)), np.ones((5, 1))),
         r"maps states of 2 features to 1 outputs"),
        (lambda: RidgeReadout(degree=2).fit(np.ones((5, 2)), np.ones((5, 1))).fit(np.ones((5, 4)), np.ones((5, 1))),
         r"maps states of 2 features to 1 outputs. Received: states with 4 features"),
        (lambda: RidgeReadout(degree=0), r"`degree` must be a positive integer. Received: degree=0"),
        (lambda: RidgeReadout(degree=True), r"`degree` must be a positive integer. Received: degree=True"),
        (lambda: ESNForecaster(readout_degree=0), r"`readout_degree` must be a positive integer. Received: "
                                                  r"readout_degree=0"),
    ],
)  # fmt: skip
def test_ridge_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
    with pytest.raises(TypeError, match=r"`online` must be True or False. Received: online='yes'"):
        RidgeReadout(ridge=1, online="yes")


# Mackey–Glass, reservoirpy's README protocol ----------------------------------------------------


def _mackey_glass_split():
    """2,000 steps of reservoirpy's series, one-step-ahead pairs, the last 20% (400) for test."""
    series = mackey_glass(2000)
    inputs, targets = series[:-1], series[1:]
    test = round(0.2 * len(series))
    return inputs[:-test], targets[:-test], inputs[-test:], targets[-test:]


def _fitted_readme_esn(seed, u_train, y_train):
    reservoir = EchoState(100, spectral_radius=1.25, leak_rate=0.3, seed=seed, return_sequences=True, return_state=True)
    states, x = tf.function(reservoir)(tf.constant(u_train[None]))
    readout = RidgeReadout(ridge=1e-5, warmup=100).fit(states, y_train[None])
    return reservoir, readout, x


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mackey_glass_one_step_rmse_within_reservoirpys_published_range(seed):
    u_train, y_train, u_test, y_test = _mackey_glass_split()
    reservoir, readout, x = _fitted_readme_esn(seed, u_train, y_train)
    states, _ = tf.function(reservoir)(tf.constant(u_test[None]), initial_state=[x])  # state carried on
    rmse = np.sqrt(np.mean((readout.predict(states[0]) - y_test) ** 2))
    assert rmse <= 0.0030, rmse  # reservoirpy: 0.0020, 0.0019–0.0030 across seeds


@pytest.mark.slow
def test_forecast_matches_a_numpy_closed_loop_and_continues(rng):
    u_train, y_train, _, _ = _mackey_glass_split()
    reservoir, readout, x = _fitted_readme_esn(0, u_train, y_train)
    warmup = u_train[None, -30:]
    predictions, (state,) = forecast(reservoir, readout, warmup, 25, initial_state=[x])
    assert predictions.shape == (1, 25, 1) and state.shape == (1, 100)

    kernel, recurrent, bias = _weights(reservoir)
    w_out, b_out = readout.kernel.numpy(), readout.bias.numpy()
    states = [x.numpy()]
    for u in warmup[0]:
        _, states = reference.esn_step(u[None], states, kernel, recurrent, bias, 0.3)
    expected = []
    for _ in range(25):
        y = states[0] @ w_out + b_out
        expected.append(y)
        _, states = reference.esn_step(y, states, kernel, recurrent, bias, 0.3)
    np.testing.assert_allclose(predictions[0], np.concatenate(expected), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state, states[0], rtol=1e-10, atol=1e-12)
    # The first free-running prediction is the ordinary one-step-ahead prediction.
    teacher, _ = reservoir(warmup, initial_state=[x])
    np.testing.assert_allclose(predictions[0, 0], readout.predict(teacher[0, -1]), rtol=1e-12)
    # Starting again from the returned state continues the same trajectory.
    first, (middle,) = forecast(reservoir, readout, warmup, 10, initial_state=[x])
    rest, _ = forecast(reservoir, readout, warmup[:, :0], 15, initial_state=[middle])
    np.testing.assert_allclose(np.concatenate([first, rest], axis=1), predictions, rtol=1e-12)
    # And a one-step-trained ESN tracks the series for a while when running free.
    truth = mackey_glass(2000)[len(u_train) : len(u_train) + 10]
    short, _ = forecast(reservoir, readout, warmup[:, :0], 10, initial_state=[x])
    assert np.abs(short[0] - truth).max() < 0.03


def test_forecast_rejects_widths_that_do_not_chain():
    reservoir = EchoState(10, seed=0)
    reservoir.build((None, None, 2))
    readout = RidgeReadout(units=1)
    with pytest.raises(ValueError, match=r"both must be 1 wide. Received: input width 2"):
        forecast(reservoir, readout, np.zeros((1, 3, 2)), 5)
    with pytest.raises(ValueError, match=r"`steps` must be a positive integer. Received: steps=0"):
        forecast(reservoir, readout, np.zeros((1, 3, 2)), 0)


# Serialization --------------------------------------------------------------------------------


def test_config_round_trip_and_keras_file_with_a_fitted_readout(tmp_path, rng):
    reservoir = EchoState(
        30, spectral_radius=0.8, leak_rate=0.5, input_scaling=0.5, bias_scaling=0.3, rc_connectivity=0.2,
        input_connectivity=0.4, feedback_dim=1, feedback_scaling=0.7, seed=42, return_sequences=True,
    )  # fmt: skip
    config = reservoir.get_config()
    assert (config["spectral_radius"], config["seed"], config["feedback_dim"]) == (0.8, 42, 1)
    assert EchoState.from_config(config).get_config() == config

    inputs = keras.Input((None, 3), dtype="float64")
    states = reservoir(inputs)
    readout = RidgeReadout(units=2, ridge=1e-6, warmup=5)
    model = keras.Model(inputs, readout(states))
    xs = rng.normal(size=(2, 40, 3))
    readout.fit(reservoir(xs).numpy(), rng.normal(size=(2, 40, 2)))

    path = tmp_path / "esn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    for a, b in zip(model.weights, restored.weights):
        assert a.path == b.path and a.dtype == b.dtype == "float64"
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert restored.trainable_weights == []
    np.testing.assert_array_equal(restored(xs), model(xs))
    assert isinstance(restored.layers[1].cell, EchoStateCell)
    assert restored.layers[2].get_config()["ridge"] == 1e-6
