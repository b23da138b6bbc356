"""Bidirectional: a right-padded batch equals each sequence run alone, merge modes,
serialization, and zoo layers inside Keras's own `keras.layers.Bidirectional`."""

import keras
import numpy as np
import pytest

from tests.reference import randomize_weights
from zoo.layers import GRU, Bidirectional, Elman, PeepholeLSTM
from zoo.layers.esn import EchoState

B, T, I, H = 3, 7, 5, 4
LENGTHS = [T, 4, 1]

FAMILIES = {
    "elman": lambda **kw: Elman(H, learn_initial_state=True, **kw),
    "gru": lambda **kw: GRU(H, **kw),
    "gru_reset_before": lambda **kw: GRU(H, reset_after=False, **kw),
    "peephole_lstm": lambda **kw: PeepholeLSTM(H, **kw),
    "echo_state": lambda **kw: EchoState(H, leak_rate=0.5, rc_connectivity=1.0, input_connectivity=1.0, seed=3, **kw),
}


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def _padded_batch(rng, dtype="float64"):
    """(B, T, I) inputs whose padding is large garbage: any leak into a real step would show."""
    mask = np.arange(T)[None, :] < np.asarray(LENGTHS)[:, None]
    xs = np.where(mask[..., None], rng.normal(size=(B, T, I)), 10.0 * rng.normal(size=(B, T, I)))
    return xs.astype(dtype), mask


def _built(wrapper, rng):
    wrapper.build((B, T, I))
    randomize_weights(wrapper, rng)
    return wrapper


@pytest.mark.parametrize("family", FAMILIES)
def test_right_padded_batch_equals_each_sequence_run_alone(rng, family):
    layer = FAMILIES[family](return_sequences=True, return_state=True, dtype="float64")
    wrapper = _built(Bidirectional(layer, merge_mode=None), rng)
    xs, mask = _padded_batch(rng)
    n = len(layer.cell.state_size)

    forward, backward, *states = wrapper(xs, mask=mask)
    for b, length in enumerate(LENGTHS):
        alone = xs[b : b + 1, :length]
        f_out, *f_states = wrapper.forward_layer(alone)
        b_out, *b_states = wrapper.backward_layer(alone[:, ::-1])
        np.testing.assert_allclose(forward[b, :length], f_out[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(backward[b, :length], b_out[0, ::-1], rtol=1e-12, atol=1e-12)
        for got, want in zip(states, [*f_states, *b_states]):
            np.testing.assert_allclose(got[b], want[0], rtol=1e-12, atol=1e-12)
    assert len(states) == 2 * n


def test_last_outputs_of_a_padded_batch_equal_each_sequence_run_alone(rng):
    wrapper = _built(Bidirectional(GRU(H, dtype="float64")), rng)
    xs, mask = _padded_batch(rng)
    merged = wrapper(xs, mask=mask)  # (B, 2H): forward's last real step, backward's after step 0
    for b, length in enumerate(LENGTHS):
        alone = xs[b : b + 1, :length]
        expected = np.concatenate([wrapper.forward_layer(alone), wrapper.backward_layer(alone[:, ::-1])], axis=-1)
        np.testing.assert_allclose(merged[b], expected[0], rtol=1e-12, atol=1e-12)


def test_without_a_mask_the_whole_time_axis_is_reversed(rng):
    wrapper = _built(Bidirectional(Elman(H, return_sequences=True, dtype="float64"), merge_mode=None), rng)
    xs = rng.normal(size=(B, T, I))
    forward, backward = wrapper(xs)
    np.testing.assert_allclose(forward, wrapper.forward_layer(xs), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backward, wrapper.backward_layer(xs[:, ::-1])[:, ::-1], rtol=1e-12, atol=1e-12)


MERGES = {
    "concat": lambda f, b: np.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mul": lambda f, b: f * b,
    "ave": lambda f, b: (f + b) / 2,
}


@pytest.mark.parametrize("merge_mode", MERGES)
def test_merge_modes(rng, merge_mode):
    xs, mask = _padded_batch(rng)
    split = _built(Bidirectional(GRU(H, return_sequences=True, return_state=True, dtype="float64"), None), rng)
    forward, backward, *states = split(xs, mask=mask)
    merged = Bidirectional(GRU(H, return_sequences=True, return_state=True, dtype="float64"), merge_mode)
    merged.build(xs.shape)
    merged.set_weights(split.get_weights())

    output, *merged_states = merged(xs, mask=mask)
    np.testing.assert_allclose(output, MERGES[merge_mode](np.asarray(forward), np.asarray(backward)), atol=1e-12)
    for got, want in zip(merged_states, states):
        np.testing.assert_allclose(got, want, atol=1e-12)
    shapes = merged.compute_output_shape(xs.shape)
    assert [tuple(t.shape) for t in (output, *merged_states)] == [tuple(s) for s in shapes]
    assert shapes[0] == (B, T, 2 * H if merge_mode == "concat" else H)


@pytest.mark.parametrize("keras_layer", [keras.layers.SimpleRNN, keras.layers.GRU], ids=["simple_rnn", "gru"])
def test_equals_keras_bidirectional_on_a_padded_batch(rng, keras_layer):
    zoo_layer = Elman if keras_layer is keras.layers.SimpleRNN else GRU
    xs, mask = _padded_batch(rng, "float32")
    ours = _built(Bidirectional(zoo_layer(H, return_sequences=True, return_state=True)), rng)
    theirs = keras.layers.Bidirectional(keras_layer(H, return_sequences=True, return_state=True))
    theirs.build(xs.shape)
    theirs.set_weights(ours.get_weights())

    (ours_out, *ours_states), (theirs_out, *theirs_states) = ours(xs, mask=mask), theirs(xs, mask=mask)
    for b, length in enumerate(LENGTHS):  # Keras zeroes padded steps; only the real ones are defined
        np.testing.assert_allclose(ours_out[b, :length], theirs_out[b, :length], atol=1e-5)
    for a, b in zip(ours_states, theirs_states):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_initial_state_is_forward_then_backward(rng):
    layer = PeepholeLSTM(H, return_sequences=True, return_state=True, dtype="float64")
    wrapper = _built(Bidirectional(layer, merge_mode=None), rng)
    xs = rng.normal(size=(B, T, I))
    initial = [rng.normal(size=(B, H)) for _ in range(4)]
    forward, backward, *states = wrapper(xs, initial_state=initial)
    f_out, *f_states = wrapper.forward_layer(xs, initial_state=initial[:2])
    b_out, *b_states = wrapper.backward_layer(xs[:, ::-1], initial_state=initial[2:])
    for got, want in zip([forward, backward, *states], [f_out, b_out[:, ::-1], *f_states, *b_states]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    with pytest.raises(ValueError, match=r"expects 2 forward then 2 backward initial state tensor\(s\). Received: 2"):
        wrapper(xs, initial_state=initial[:2])


def test_backward_layer_may_be_another_family(rng):
    wrapper = Bidirectional(
        GRU(H, return_sequences=True, return_state=True),
        backward_layer=Elman(H - 1, return_sequences=True, return_state=True, name="back"),
    )
    xs, mask = _padded_batch(rng, "float32")
    output, h_forward, h_backward = wrapper(xs, mask=mask)
    assert (output.shape, h_forward.shape, h_backward.shape) == ((B, T, 2 * H - 1), (B, H), (B, H - 1))
    assert wrapper.compute_output_shape(xs.shape) == [(B, T, 2 * H - 1), (B, H), (B, H - 1)]
    assert isinstance(wrapper.backward_layer, Elman) and wrapper.backward_layer.name == "back"


def test_config_round_trip_keeps_the_names_and_layers():
    wrapper = Bidirectional(GRU(H, reset_after=False, return_sequences=True, name="enc"), merge_mode="sum")
    config = wrapper.get_config()
    assert config["merge_mode"] == "sum"
    assert config["layer"]["config"]["name"] == "forward_enc"
    assert config["backward_layer"]["config"]["name"] == "backward_enc"
    clone = Bidirectional.from_config(config)
    assert clone.get_config() == config
    assert (clone.forward_layer.name, clone.backward_layer.name) == ("forward_enc", "backward_enc")
    assert clone.forward_layer.cell.reset_after is False


def test_keras_file_round_trip_with_a_mask_from_the_model(tmp_path, rng):
    inputs = keras.Input((None, I))
    masked = keras.layers.Masking(mask_value=0.0)(inputs)
    wrapper = Bidirectional(Elman(H, learn_initial_state=True, return_sequences=True), merge_mode="ave")
    model = keras.Model(inputs, wrapper(masked))
    randomize_weights(wrapper, rng)
    xs, mask = _padded_batch(rng, "float32")
    xs[~mask] = 0.0  # what Masking recognises as padding

    # The mask Masking computes must reach the wrapper: same as passing it by hand.
    np.testing.assert_allclose(model(xs), wrapper(xs, mask=mask), atol=1e-6)
    path = tmp_path / "bidirectional.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(xs), model(xs), atol=1e-6)
    assert isinstance(restored.layers[-1], Bidirectional)


@pytest.mark.parametrize("family", ["elman", "gru", "peephole_lstm", "echo_state"])
def test_keras_bidirectional_wraps_zoo_layers_and_round_trips(tmp_path, rng, family):
    xs, mask = _padded_batch(rng, "float32")
    inputs = keras.Input((None, I))
    theirs = keras.layers.Bidirectional(FAMILIES[family](return_sequences=True))
    model = keras.Model(inputs, theirs(inputs))
    randomize_weights(theirs, rng)
    assert theirs.backward_layer.go_backwards and not theirs.forward_layer.go_backwards

    # Same weights in the zoo wrapper: Keras's go_backwards + mask is exact on right padding too.
    ours = Bidirectional(FAMILIES[family](return_sequences=True))
    ours.build(xs.shape)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(theirs(xs), ours(xs), atol=1e-5)
    masked_theirs, masked_ours = theirs(xs, mask=mask), ours(xs, mask=mask)
    for b, length in enumerate(LENGTHS):
        np.testing.assert_allclose(masked_theirs[b, :length], masked_ours[b, :length], atol=1e-5)

    path = tmp_path / f"keras_bidirectional_{family}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(xs), model(xs), atol=1e-6)


def test_keras_bidirectional_returns_both_final_states_eagerly(rng):
    xs = rng.normal(size=(B, T, I)).astype("float32")
    theirs = keras.layers.Bidirectional(PeepholeLSTM(H, return_state=True))
    output, *states = theirs(xs)
    _, *backward_states = theirs.backward_layer(xs)
    assert output.shape == (B, 2 * H) and len(states) == 4
    np.testing.assert_allclose(states[2], backward_states[0], atol=1e-6)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (
            lambda: Bidirectional(GRU(H), merge_mode="max"),
            ValueError,
            r"`merge_mode` must be one of 'concat', 'sum', 'mul', 'ave' or None. Received: merge_mode='max'",
        ),
        (
            lambda: Bidirectional(GRU(H, go_backwards=True)),
            ValueError,
            r"`layer` must have go_backwards=False.*Received: layer.go_backwards=True",
        ),
        (
            lambda: Bidirectional(GRU(H), backward_layer=GRU(H, go_backwards=True)),
            ValueError,
            r"`backward_layer` must have go_backwards=False",
        ),
        (
            lambda: Bidirectional(keras.layers.GRU(H)),
            TypeError,
            r"`layer` must be a zoo RecurrentLayer .* Received: layer=",
        ),
        (
            lambda: Bidirectional(GRU(H, return_sequences=True), backward_layer=GRU(H)),
            ValueError,
            r"must agree on `return_sequences` .* layer.return_sequences=True, backward_layer.return_sequences=False",
        ),
        (
            lambda: Bidirectional(GRU(H), merge_mode="sum", backward_layer=GRU(H + 1)),
            ValueError,
            r"must agree on `units` \(merge_mode='sum'\). Received: layer.units=4, backward_layer.units=5",
        ),
        (lambda: Bidirectional(Elman(0)), ValueError, r"`units` must be a positive integer. Received: units=0"),
    ],
    ids=["merge_mode", "go_backwards", "backward_go_backwards", "not_zoo", "return_sequences", "units", "bad_units"],
)
def test_bad_configuration_is_explained(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_keras_bidirectional_with_return_state_in_a_functional_model():
    inputs = keras.Input((None, I))
    output, *states = keras.layers.Bidirectional(GRU(H, return_sequences=True, return_state=True))(inputs)
    assert output.shape == (None, None, 2 * H) and len(states) == 2
