"""One contract for every registered architecture: it builds, its outputs have
the task's shape and no NaN, one training step lowers the loss on a task batch,
and a `.keras` file gives back the same model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from training.data import temporal_xor
from training.loop import task_loss
from training.recipes import RECIPES, fit_esn, recipe_for

# Small enough that the whole file runs in seconds; the task batch of each model
# comes from its own recipe, shortened.
TINY = {
    "char_lstm": {"units": 8, "embedding_dim": 4, "vocabulary": "abcdef"},
    "char_gru": {"units": 8, "embedding_dim": 4, "vocabulary": "abcdef"},
    "char_elman": {"units": 8, "embedding_dim": 4, "vocabulary": "abcdef"},
    "elman_grammar": {"units": 12},
    "binary_adder": {},
    "adding_lstm": {"units": 8},
    "adding_gru": {"units": 8},
    "adding_elman": {"units": 8},
    "bilstm_tagger": {"units": 8, "embedding_dim": 4},
    "lstm_tagger": {"units": 8, "embedding_dim": 4},
    "peephole_timing": {"units": 4},
    "esn_mackey_glass": {"units": 30, "warmup": 10},
    "esn_mackey_glass_jaeger": {"units": 30, "warmup": 10},
    "seq2seq_addition": {"units": 8, "embedding_dim": 4},
    "copying_exprnn": {"units": 8},
    "copying_lstm": {"units": 8},
    "adding_exprnn": {"units": 8},
    "temporal_xor": {"units": 4},
}
SHORT = {"seq_len": 8, "length": 12, "train_bits": 4, "min_interval": 3, "max_interval": 5, "train_pairs": 50,
         "test_pairs": 10, "blanks": 6}

# Models stepped by their recipe's optimizer: expRNN's recurrent matrix is exp(A − Aᵀ), and Adam at 1e-2 on every
# entry of A rotates it far enough in one step to raise the loss; its recipes train A at a tenth of the rate.
OWN_OPTIMIZER = ("adding_exprnn", "copying_exprnn")


def _task_batch(name):
    """(inputs, targets, loss kind, expected output shape) for a small batch of the model's task."""
    if name.startswith("char_"):
        ids = np.random.default_rng(0).integers(0, 6, size=(3, 9)).astype(np.int32)
        return ids[:, :-1], ids[:, 1:], "softmax", (3, 8, 6)
    if name == "temporal_xor":  # learned online (training.rtrl), no batch recipe: the stream cut into three rows
        inputs, targets, _ = temporal_xor.XorStream(0, streams=3).chunk(9)
        return inputs, targets, "sigmoid", (3, 9, 1)
    if name.startswith("esn_"):
        series = recipe_for("esn_mackey_glass", series_length=40).split()[0][None]  # (1, T, 1) float64
        return series, series, "mse", series.shape
    recipe = RECIPES[name]
    fields = {k: v for k, v in SHORT.items() if k in recipe.__dataclass_fields__}
    recipe = recipe_for(name, batch_size=3, **fields)
    inputs, targets = recipe.batch(recipe.rng(0))
    if isinstance(inputs, tuple):  # a Seq2Seq reads (source, target_in): logits over its target ids
        return inputs, targets, recipe.loss, (*targets.shape, zoo.get(name, **TINY[name]).target_vocab_size)
    width = {"softmax": {"elman_grammar": 31, "copying_exprnn": 9, "copying_lstm": 9}.get(name, 4)}.get(recipe.loss, 1)
    shape = (3, width) if targets.ndim == 2 and recipe.loss == "mse" else (*targets.shape[:2], width)
    return inputs, targets, recipe.loss, shape


def _outputs(model, inputs):
    out = model(inputs)
    return out[0] if isinstance(out, tuple) else out  # a CharLM also returns its states


def test_every_registered_model_is_covered():
    assert sorted(TINY) == zoo.list()


@pytest.mark.parametrize("name", sorted(n for n in zoo.list() if not n.startswith("esn_")))  # no gradients
def test_builds_has_the_task_shape_and_one_step_lowers_the_loss(name):
    keras.utils.set_random_seed(0)
    model = zoo.get(name, **TINY[name])
    inputs, targets, kind, shape = _task_batch(name)
    outputs = np.asarray(_outputs(model, inputs))
    assert outputs.shape == shape and np.all(np.isfinite(outputs))

    if name in OWN_OPTIMIZER:
        optimizer = recipe_for(name).make_optimizer(None, model.trainable_variables)
    else:
        optimizer = keras.optimizers.Adam(1e-2)

    def loss():
        return tf.reduce_mean(task_loss(kind, targets, _outputs(model, inputs)))

    before = float(loss())
    with tf.GradientTape() as tape:
        value = loss()
    optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)
    assert float(loss()) < before


def test_the_echo_state_network_fit_lowers_the_loss():
    recipe = recipe_for("esn_mackey_glass", series_length=300, overrides=TINY["esn_mackey_glass"])
    model = zoo.get("esn_mackey_glass", **TINY["esn_mackey_glass"])
    u, y, _, _ = recipe.split()
    before = float(np.mean((np.asarray(model(u[None]))[0] - y) ** 2))  # the unfitted readout predicts 0
    _, metrics = fit_esn(recipe, model)
    assert np.isfinite(before) and metrics["rmse"] ** 2 < before / 100


@pytest.mark.slow
def test_the_jaeger_recipe_fits_and_its_free_run_tracks_the_series():
    recipe = recipe_for("esn_mackey_glass_jaeger", train_steps=400, runs=3, teacher_steps=100, horizon=10)
    model, metrics = fit_esn(recipe, zoo.get("esn_mackey_glass_jaeger", **TINY["esn_mackey_glass_jaeger"]))
    assert set(metrics) == {"nrmse10", "nrmse1", "nrmse5"}
    assert metrics["nrmse1"] < 0.05 and metrics["nrmse10"] < 0.5  # predicting the mean scores 1


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list())
def test_keras_file_round_trip(name, tmp_path):
    model = zoo.get(name, **TINY[name])
    inputs = _task_batch(name)[0]
    expected = np.asarray(_outputs(model, inputs))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = zoo.get(name, weights=path)
    np.testing.assert_allclose(np.asarray(_outputs(loaded, inputs)), expected, rtol=1e-6, atol=1e-6)
    assert loaded.get_config() == model.get_config()


def test_elman_grammar_context_starts_at_one_half():
    model = zoo.get("elman_grammar", units=5)
    x = np.eye(31, dtype=np.float32)[[3, 7]][None]  # (1, 2, 31)
    logits = np.asarray(model(x))[0, 0]
    cell = model.recurrent[0].cell
    pre = x[0, 0] @ cell.kernel.numpy() + np.full(5, 0.5) @ cell.recurrent_kernel.numpy() + cell.bias.numpy()
    h = 1 / (1 + np.exp(-pre))
    np.testing.assert_allclose(logits, h @ model.head.kernel.numpy() + model.head.bias.numpy(), rtol=1e-5, atol=1e-6)


def test_binary_adder_output_lags_its_input_by_two_steps():
    model = zoo.get("binary_adder")
    a = np.random.default_rng(0).integers(0, 2, size=(1, 8, 2)).astype(np.float32)
    b = a.copy()
    b[0, 4] = 1 - b[0, 4]  # the column read at step 4 first shows in the output at step 6
    out_a, out_b = np.asarray(model(a))[0, :, 0], np.asarray(model(b))[0, :, 0]
    np.testing.assert_array_equal(out_a[:6], out_b[:6])
    assert abs(out_a[6] - out_b[6]) > 1e-6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"initial_state_value": 0.5, "bidirectional": True}, r"`initial_state_value` applies to one-directional"),
        ({"vocabulary_size": 5}, r"`vocabulary_size` needs `embedding_dim`\. Received: embedding_dim=None"),
        ({"output_delay": -1}, r"`output_delay` must be a non-negative integer\. Received: output_delay=-1"),
        ({"output_delay": 2, "return_sequences": False}, r"`output_delay` needs return_sequences=True"),
    ],
)
def test_sequence_model_bad_arguments(kwargs, message):
    from zoo.models.sequence import SequenceModel

    with pytest.raises(ValueError, match=message):
        SequenceModel(1, units=2, **kwargs)


def test_chrono_bias_opens_forget_gates_for_the_tasks_timescale():
    from zoo.models.initializers import ChronoBias

    bias = np.asarray(ChronoBias(200, seed=3)((4 * 64,), dtype="float32"))
    i, f, c, o = np.split(bias, 4)
    assert np.all(f >= 0) and np.all(f <= np.log(199) + 1e-6) and f.max() > np.log(50)
    np.testing.assert_array_equal(i, -f)
    assert not c.any() and not o.any()
    model = zoo.get("adding_lstm", units=4)
    model(np.zeros((1, 2, 2), np.float32))
    np.testing.assert_allclose(model.recurrent[0].cell.bias.numpy(), np.asarray(ChronoBias(200)((16,))), rtol=1e-6)
