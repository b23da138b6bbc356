"""The hand-written BPTT of zoo.layers._fused against TensorFlow's own differentiation of the same cells.

Without a mask, TensorFlow runs cells that bring their derivatives through the
fused loop; with a mask (here all True, which changes no number) it runs the
generic loop and differentiates it itself. Both must agree in float64 on every
gradient: kernels, biases, peepholes and initial states, through the outputs
and the final states.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests import reference
from tests.reference import randomize_weights
from zoo.layers import GRU, Elman, ExpRNN, PeepholeLSTM
from zoo.layers._fused import supports_fused
from zoo.layers._loop import TF_CHUNKS

B, T, I, H = 3, 6, 4, 5


@pytest.fixture
def rng():
    return np.random.default_rng(7)


CASES = {
    "elman_tanh": lambda: Elman(H, return_sequences=True, return_state=True, dtype="float64"),
    "elman_relu": lambda: Elman(H, activation="relu", return_sequences=True, return_state=True, dtype="float64"),
    "elman_sigmoid_learned_h0": lambda: Elman(
        H, activation="sigmoid", learn_initial_state=True, return_sequences=True, return_state=True, dtype="float64"
    ),
    "elman_backwards": lambda: Elman(H, go_backwards=True, return_sequences=True, return_state=True, dtype="float64"),
    "lstm": lambda: PeepholeLSTM(H, use_peepholes=False, return_sequences=True, return_state=True, dtype="float64"),
    "peephole_lstm": lambda: PeepholeLSTM(H, return_sequences=True, return_state=True, dtype="float64"),
    "gru": lambda: GRU(H, return_sequences=True, return_state=True, dtype="float64"),
    "gru_no_bias": lambda: GRU(H, use_bias=False, return_sequences=True, return_state=True, dtype="float64"),
    "exprnn": lambda: ExpRNN(H, return_sequences=True, return_state=True, dtype="float64"),
    "exprnn_no_bias": lambda: ExpRNN(H, use_bias=False, return_sequences=True, return_state=True, dtype="float64"),
}


def _setup(name, rng):
    layer = CASES[name]()
    xs = tf.constant(rng.normal(size=(B, T, I)))
    layer.build(xs.shape)
    randomize_weights(layer, rng)
    assert supports_fused(layer.cell), "the case must exercise the fused path"
    learned = getattr(layer.cell, "learn_initial_state", False)
    initial = None if learned else [tf.Variable(rng.normal(size=(B, s))) for s in layer.cell.state_size]
    # One random weighting per returned tensor, so every output and state carries gradient.
    weights = [rng.normal(size=(B, T, H))] + [rng.normal(size=(B, s)) for s in layer.cell.state_size]
    return layer, xs, initial, weights


def _loss_and_gradients(layer, xs, initial, weights, mask):
    sources = layer.trainable_weights + (initial or [])
    with tf.GradientTape() as tape:
        returned = layer(xs, initial_state=initial, mask=mask)
        loss = sum(tf.reduce_sum(value * w) for value, w in zip(returned, weights))
    return loss, tape.gradient(loss, sources)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_gradients_equal_tensorflows_differentiation(name, rng):
    layer, xs, initial, weights = _setup(name, rng)
    fused_loss, fused = _loss_and_gradients(layer, xs, initial, weights, mask=None)
    generic_loss, generic = _loss_and_gradients(layer, xs, initial, weights, mask=tf.ones((B, T), bool))
    np.testing.assert_allclose(fused_loss, generic_loss, rtol=1e-12)
    for variable, a, b in zip(layer.trainable_weights + (initial or []), fused, generic):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=getattr(variable, "path", "initial state"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_xla_compiled_loops_give_the_eager_numbers(name, rng):
    """The recipes' default step runs under XLA (`jit_compile="auto"`): the fused loop and the generic one,
    compiled, must give the float64 loss and gradients the eager loops give (which the tests above tie to
    TensorFlow's differentiation, finite differences and the NumPy references)."""
    layer, xs, initial, weights = _setup(name, rng)
    eager_loss, eager = _loss_and_gradients(layer, xs, initial, weights, mask=None)
    for mask in (None, tf.ones((B, T), bool)):
        compiled = tf.function(lambda m=mask: _loss_and_gradients(layer, xs, initial, weights, m), jit_compile=True)
        loss, gradients = compiled()
        np.testing.assert_allclose(loss, eager_loss, rtol=1e-12)
        for variable, a, b in zip(layer.trainable_weights + (initial or []), gradients, eager):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=getattr(variable, "path", "initial state"))


@pytest.mark.parametrize("name", ["peephole_lstm", "gru", "elman_sigmoid_learned_h0"])
def test_fused_gradients_match_finite_differences(name, rng):
    layer, xs, initial, weights = _setup(name, rng)

    def loss():
        returned = layer(xs, initial_state=initial)
        return sum(tf.reduce_sum(value * w) for value, w in zip(returned, weights))

    reference.assert_gradients_match_finite_differences(loss, layer.trainable_weights + (initial or []), rng,
                                                        rtol=1e-5, atol=1e-8)


@pytest.mark.slow
def test_fused_gradients_inside_tf_function(rng):
    """The training path: traced once, gradients as eager ones."""
    layer, xs, initial, weights = _setup("peephole_lstm", rng)
    eager = _loss_and_gradients(layer, xs, initial, weights, mask=None)[1]
    traced = tf.function(lambda: _loss_and_gradients(layer, xs, initial, weights, mask=None)[1])()
    for a, b in zip(eager, traced):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_unused_outputs_get_zero_gradient(rng):
    """Only the final state feeds the loss: the outputs' missing gradient counts as zero."""
    layer, xs, initial, _ = _setup("gru", rng)
    sources = layer.trainable_weights + initial
    results = []
    for mask in (None, tf.ones((B, T), bool)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(xs, initial_state=initial, mask=mask)[1] ** 2)
        results.append(tape.gradient(loss, sources))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_other_configurations_keep_tensorflows_differentiation():
    assert not supports_fused(GRU(H, reset_after=False).cell)  # a second matmul after r
    assert not supports_fused(Elman(H, activation="softplus").cell)  # f' not a function of f
    assert not supports_fused(PeepholeLSTM(H, activation="relu").cell)


def test_fused_loop_runs_under_a_tape_only(monkeypatch, rng):
    """Training (a tape records) takes the fused loop; inference and export keep the plain one,
    whose graph a SavedModel can hold without a gradient function."""
    import zoo.layers._fused as fused

    calls = []
    original = fused.fused_time_loop
    monkeypatch.setattr(fused, "fused_time_loop", lambda *args: calls.append(1) or original(*args))
    layer = Elman(H)
    xs = tf.constant(rng.normal(size=(B, T, I)), tf.float32)
    layer(xs)
    assert calls == []
    with tf.GradientTape():
        layer(xs)
    assert len(calls) == TF_CHUNKS


def test_sequences_shorter_than_the_chunk_count(rng):
    """Steps 0..3 leave some of the 4 chunks empty: outputs and gradients keep their shapes."""
    for steps in (1, 3):
        layer = PeepholeLSTM(H, return_sequences=True, dtype="float64")
        xs = tf.constant(rng.normal(size=(B, steps, I)))
        with tf.GradientTape() as tape:
            out = layer(xs)
            loss = tf.reduce_sum(out**2)
        assert out.shape == (B, steps, H)
        grads = tape.gradient(loss, layer.trainable_weights)
        assert all(g is not None and g.shape == w.shape for g, w in zip(grads, layer.trainable_weights))
