"""Encoder–decoder layers and the Seq2Seq model: golden values against float64
NumPy, masks, teacher forcing against step-by-step decoding, serialization,
a short training run and errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import reference
from tests.reference import randomize_weights
from zoo.layers import RecurrentDecoder, RecurrentEncoder
from zoo.models.seq2seq import Seq2Seq

B, S, T, E, H, V = 3, 6, 5, 4, 3, 7
CELLS = ["elman", "gru", "peephole_lstm"]


@pytest.fixture
def rng():
    return np.random.default_rng(3)


def _numpy_step(rnn):
    """The float64 reference step for a zoo recurrent layer, with its current weights."""
    cell = rnn.cell
    weights = [cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()]
    if rnn.__class__.__name__ == "Elman":
        return lambda x, states: reference.elman_step(x, states, *weights)
    if rnn.__class__.__name__ == "GRU":
        return lambda x, states: reference.gru_step(x, states, *weights, reset_after=cell.reset_after)
    return lambda x, states: reference.peephole_lstm_step(x, states, *weights, peephole=cell.peephole.numpy())


def _run_alone(step, xs, states, length):
    """Final states after the first `length` steps of one row (B=1)."""
    _, final = reference.run_sequence(step, xs[None, :length], [s[None] for s in states])
    return [s[0] for s in final]


@pytest.mark.parametrize("cell", CELLS)
def test_decoder_step_and_sequence_match_float64_equations(rng, cell):
    decoder = RecurrentDecoder(cell, H, V, return_state=True, dtype="float64")
    decoder.build((B, T, E))
    randomize_weights(decoder, rng)
    step = _numpy_step(decoder.rnn)
    kernel, bias = decoder.head.kernel.numpy(), decoder.head.bias.numpy()
    xs = rng.normal(size=(B, T, E))
    initial = [rng.normal(size=(B, H)) for _ in decoder.state_sizes]
    mask = np.arange(T)[None, :] < np.array([[T], [2], [4]])

    logits, new_states = decoder.step(xs[:, 0], initial)
    expected_h, expected_states = step(xs[:, 0], initial)
    np.testing.assert_allclose(logits, expected_h @ kernel + bias, rtol=1e-12, atol=1e-12)
    for got, want in zip(new_states, expected_states):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    sequence_logits, *final = decoder(xs, initial_state=initial, mask=mask)
    outputs, expected_final = reference.run_sequence(step, xs, initial, mask)
    np.testing.assert_allclose(sequence_logits, outputs @ kernel + bias, rtol=1e-12, atol=1e-12)
    for got, want in zip(final, expected_final):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["gru", "peephole_lstm"])
@pytest.mark.parametrize("bridge", ["dense", "sum"])
def test_bidirectional_encoder_bridges_each_rows_unpadded_states(rng, cell, bridge):
    encoder = RecurrentEncoder(cell, H, bidirectional=True, bridge=bridge, dtype="float64")
    encoder.build((B, S, E))
    randomize_weights(encoder, rng)
    forward, backward = _numpy_step(encoder.rnn.forward_layer), _numpy_step(encoder.rnn.backward_layer)
    xs = rng.normal(size=(B, S, E))
    lengths = [S, 2, 4]
    mask = np.arange(S)[None, :] < np.array(lengths)[:, None]
    zeros = [np.zeros(H) for _ in encoder.state_sizes]

    states = encoder(xs, mask=mask)
    assert len(states) == len(encoder.state_sizes)
    for row, length in enumerate(lengths):
        ahead = _run_alone(forward, xs[row], zeros, length)
        behind = _run_alone(backward, xs[row, :length][::-1], zeros, length)
        for i, (f, b) in enumerate(zip(ahead, behind)):
            if bridge == "sum":
                expected = f + b
            else:
                dense = encoder.bridges[i]
                expected = np.concatenate([f, b]) @ dense.kernel.numpy() + dense.bias.numpy()
            np.testing.assert_allclose(states[i][row], expected, rtol=1e-12, atol=1e-12)


def test_unidirectional_encoder_hands_over_its_final_states(rng):
    encoder = RecurrentEncoder("peephole_lstm", H, return_sequences=True, dtype="float64")
    encoder.build((B, S, E))
    randomize_weights(encoder, rng)
    xs = rng.normal(size=(B, S, E))
    mask = np.arange(S)[None, :] < np.array([[S], [1], [3]])
    outputs, h, c = encoder(xs, mask=mask)
    expected_outputs, (expected_h, expected_c) = reference.run_sequence(
        _numpy_step(encoder.rnn), xs, [np.zeros((B, H))] * 2, mask
    )
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, expected_c, rtol=1e-12, atol=1e-12)


def _model(rng, **kwargs):
    model = Seq2Seq("0123456789+", "0123456789", **{"units": 8, "embedding_dim": 5, **kwargs})
    sources, target_in, _, _ = model.prepare_batch(["12+345", "7", "99+1"], ["357", "7", "100"])
    model((sources, target_in))
    randomize_weights(model, rng)
    return model, sources, target_in


@pytest.mark.parametrize(
    "cell, bidirectional", [("gru", False), ("peephole_lstm", True), ("elman", True)]
)
def test_teacher_forced_logits_equal_step_by_step_decoding(rng, cell, bidirectional):
    model, sources, target_in = _model(rng, cell=cell, bidirectional_encoder=bidirectional)
    logits = model((sources, target_in)).numpy()
    states = model.encode_source(sources)
    for t in range(target_in.shape[1]):
        step_logits, states = model.decoder_step(target_in[:, t], states)
        real = target_in[:, t] != model.PAD_ID  # padded steps are the mask's to ignore
        np.testing.assert_allclose(step_logits.numpy()[real], logits[real, t], rtol=1e-5, atol=1e-5)


def test_prepare_batch_shifts_targets_behind_start_and_ends_them(rng):
    model, _, _ = _model(rng)
    sources, target_in, target_out, weights = model.prepare_batch(["1+2", "3"], ["3", "30"])
    np.testing.assert_array_equal(sources, [[4, 13, 5], [6, 0, 0]])
    np.testing.assert_array_equal(target_in, [[1, 6, 0], [1, 6, 3]])
    np.testing.assert_array_equal(target_out, [[6, 2, 0], [6, 3, 2]])
    np.testing.assert_array_equal(weights, [[1, 1, 0], [1, 1, 1]])
    assert model.decode_ids([6, 3, 2, 9]) == "30"


def test_layers_round_trip_through_a_keras_file(tmp_path, rng):
    encoder = RecurrentEncoder("peephole_lstm", H, bidirectional=True, cell_options={"use_peepholes": False})
    decoder = RecurrentDecoder("peephole_lstm", H, V, return_state=True, cell_options={"use_peepholes": False})
    for layer in (encoder, decoder):
        assert layer.__class__.from_config(layer.get_config()).get_config() == layer.get_config()
    sources, targets = keras.Input((None, E)), keras.Input((None, E))
    h, c = encoder(sources)
    logits, *_ = decoder(targets, initial_state=[h, c])
    model = keras.Model([sources, targets], logits)
    randomize_weights(model, rng)
    xs = [rng.normal(size=(B, S, E)).astype("float32"), rng.normal(size=(B, T, E)).astype("float32")]
    path = tmp_path / "encoder_decoder.keras"
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(xs), model(xs), atol=1e-6)


def test_seq2seq_round_trips_through_a_keras_file(tmp_path, rng):
    model, sources, target_in = _model(rng, cell="peephole_lstm", bidirectional_encoder=True, bridge="sum")
    assert Seq2Seq.from_config(model.get_config()).get_config() == model.get_config()
    path = tmp_path / "seq2seq.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored((sources, target_in)), model((sources, target_in)), atol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RecurrentEncoder("lstm", H), "`cell` must be one of .*Received: cell='lstm'"),
        (lambda: RecurrentDecoder("transformer", H, V), "Received: cell='transformer'"),
        (lambda: Seq2Seq("ab", "ab", cell="rnn"), "Received: cell='rnn'"),
        (lambda: RecurrentEncoder("gru", H, bridge="mean"), "`bridge` must be one of .*Received: bridge='mean'"),
        (lambda: RecurrentEncoder("gru", 0), "`units` must be a positive integer. Received: units=0"),
        (lambda: RecurrentDecoder("gru", H, -3), "`vocab_size` must be a positive integer. Received: vocab_size=-3"),
        (lambda: Seq2Seq("abca", "ab"), "`source_vocabulary` must be .*each once. Received: source_vocabulary='abca'"),
        (lambda: Seq2Seq("ab", ""), "Received: target_vocabulary=''"),
    ],
)
def test_bad_configuration_names_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_text_outside_the_vocabulary_is_refused(rng):
    model, _, _ = _model(rng)
    with pytest.raises(ValueError, match=r"source text holds characters outside the source vocabulary: \['x'\]"):
        model.prepare_batch(["1x"], ["1"])


@pytest.mark.slow
def test_finite_difference_gradients_through_encoder_bridge_and_decoder(rng):
    model = Seq2Seq("0123", "01", units=3, embedding_dim=2, cell="peephole_lstm", bidirectional_encoder=True,
                    dtype="float64")
    sources, target_in, _, _ = model.prepare_batch(["0123", "21"], ["01", "1"])
    model((sources, target_in))
    randomize_weights(model, rng)
    probe = tf.constant(rng.normal(size=(2, target_in.shape[1], model.target_vocab_size)))

    @tf.function  # one trace; the variables it reads are assigned between calls
    def loss():
        return tf.reduce_sum(model((sources, target_in)) * probe)

    reference.assert_gradients_match_finite_differences(loss, model.trainable_variables, rng, rtol=1e-5, atol=1e-7)
