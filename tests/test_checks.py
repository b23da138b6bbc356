"""zoo._checks: every check accepts what it should and words each refusal the Keras way."""

import math

import numpy as np
import pytest
import tensorflow as tf

from zoo._checks import (
    GENERATION_ARGUMENTS,
    check_generation_arguments,
    check_non_negative_int,
    check_number,
    check_one_of,
    check_positive_int,
    generation_asserts,
    passed_through,
)


def test_accepted_values_come_back_as_plain_python():
    assert check_positive_int("units", 3) == 3 and type(check_positive_int("units", np.int64(3))) is int
    assert check_positive_int("units", None, allow_none=True) is None
    assert check_non_negative_int("warmup", 0) == 0 and check_non_negative_int("seed", None, allow_none=True) is None
    assert check_number("leak_rate", 1, 0, 1, low_open=True) == 1.0 and type(check_number("ridge", 0, 0)) is float
    assert check_number("x", np.float32(-2.5)) == -2.5  # no bounds: any finite number
    assert check_one_of("merge_mode", None, ("concat", None)) is None
    arguments = {"steps": 3, "temperature": 0, "top_k": 0, "seed": -(2**40), "beam_width": 1, "alpha": 0.6,
                 "max_length": 0}
    assert check_generation_arguments(**arguments) == arguments
    check_generation_arguments(steps=np.array([0, 4], np.int32), temperature=np.array([], np.float32))
    check_generation_arguments({"steps": (4, "a flag")}, steps=np.array([4], np.int64))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: check_positive_int("units", 0), r"`units` must be a positive integer\. Received: units=0"),
        (lambda: check_positive_int("units", -3), r"`units` must be a positive integer\. Received: units=-3"),
        (lambda: check_positive_int("units", 2.5), r"`units` must be a positive integer\. Received: units=2\.5"),
        (lambda: check_positive_int("units", True), r"`units` must be a positive integer\. Received: units=True"),
        (lambda: check_positive_int("units", "3"), r"`units` must be a positive integer\. Received: units='3'"),
        (lambda: check_positive_int("units", None), r"`units` must be a positive integer\. Received: units=None"),
        (lambda: check_positive_int("units", 0, allow_none=True),
         r"`units` must be a positive integer or None\. Received: units=0"),
        (lambda: check_non_negative_int("warmup", -2), r"`warmup` must be a non-negative integer\. "
            r"Received: warmup=-2"),
        (lambda: check_non_negative_int("warmup", 1.0),
         r"`warmup` must be a non-negative integer\. Received: warmup=1\.0"),
        (lambda: check_non_negative_int("seed", "a", allow_none=True),
         r"`seed` must be a non-negative integer or None\. Received: seed='a'"),
        (lambda: check_number("tau", 0, 0, low_open=True), r"`tau` must be a positive number\. Received: tau=0"),
        (lambda: check_number("ridge", -1, 0), r"`ridge` must be a non-negative number\. Received: ridge=-1"),
        (lambda: check_number("leak_rate", 0, 0, 1, low_open=True),
         r"`leak_rate` must be a number in \(0, 1\]\. Received: leak_rate=0"),
        (lambda: check_number("leak_rate", 1.5, 0, 1, low_open=True),
         r"`leak_rate` must be a number in \(0, 1\]\. Received: leak_rate=1\.5"),
        (lambda: check_number("p", 1.0, 0, 1, high_open=True), r"`p` must be a number in \[0, 1\)\. Received: p=1\.0"),
        (lambda: check_number("f", 1, 0, 1, low_open=True, high_open=True),
         r"`f` must be a number in \(0, 1\)\. Received: f=1"),
        (lambda: check_number("x", 2, high=1), r"`x` must be a number in \(-inf, 1\]\. Received: x=2"),
        (lambda: check_number("tau", math.nan, 0, low_open=True), r"`tau` must be a positive number\. "
            r"Received: tau=nan"),
        (lambda: check_number("tau", math.inf, 0, low_open=True), r"`tau` must be a positive number\. "
            r"Received: tau=inf"),
        (lambda: check_number("tau", True, 0, low_open=True), r"`tau` must be a positive number\. Received: tau=True"),
        (lambda: check_number("tau", "1", 0, low_open=True), r"`tau` must be a positive number\. Received: tau='1'"),
        (lambda: check_one_of("bridge", "mean", ("dense", "sum")),
         r"`bridge` must be one of 'dense' or 'sum'\. Received: bridge='mean'"),
        (lambda: check_one_of("merge_mode", "max", ("concat", "sum", None)),
         r"`merge_mode` must be one of 'concat', 'sum' or None\. Received: merge_mode='max'"),
        (lambda: check_one_of("only", "b", ("a",)), r"`only` must be one of 'a'\. Received: only='b'"),
    ],
)
def test_each_check_names_the_argument_the_rule_and_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


GENERATION_ERRORS = [
    ({"steps": -1}, r"`steps` must be an integer >= 0\. Received: steps=-1"),
    ({"steps": 2.0}, r"`steps` must be an integer >= 0\. Received: steps=2\.0"),
    ({"max_length": -1}, r"`max_length` must be an integer >= 0\. Received: max_length=-1"),
    ({"temperature": -1.0}, r"`temperature` must be a finite number >= 0 \(0 = greedy\)\. Received: temperature=-1\.0"),
    ({"temperature": math.nan}, r"`temperature` must be a finite number >= 0 .*Received: temperature=nan"),
    ({"temperature": "hot"}, r"`temperature` must be a finite number >= 0 .*Received: temperature='hot'"),
    ({"top_k": -2}, r"`top_k` must be an integer >= 0 \(0 keeps every token\)\. Received: top_k=-2"),
    ({"top_k": True}, r"`top_k` must be an integer >= 0 .*Received: top_k=True"),
    ({"seed": 1.5}, r"`seed` must be an integer\. Received: seed=1\.5"),
    ({"beam_width": 0}, r"`beam_width` must be an integer >= 1\. Received: beam_width=0"),
    ({"alpha": -0.1}, r"`alpha` must be a finite number >= 0 \(0 turns the length penalty off\)\. "
        r"Received: alpha=-0\.1"),
    ({"steps": np.array([3, -1], np.int32)}, r"`steps` must be an integer >= 0\. Received: steps=\[ 3,-1\]"),
    ({"steps": np.array([1.0], np.float32)}, r"`steps` must be an integer >= 0\. Received: steps=\[1\.\]"),
    ({"temperature": np.array([0.5, np.inf], np.float32)}, r"`temperature` must be .*"
        r"Received: temperature=\[0\.5,inf\]"),
    ({"steps": np.arange(-1, 20)}, r"Received: steps=\[-1, 0, 1, 2, 3, 4, 5, 6,\.\.\.\]"),  # long arrays are cut
]


@pytest.mark.parametrize("arguments, message", GENERATION_ERRORS)
def test_generation_arguments_are_refused_with_their_rule(arguments, message):
    with pytest.raises(ValueError, match=message):
        check_generation_arguments(**arguments)


def test_a_caller_limit_bounds_the_argument_and_says_where_it_comes_from():
    limits = {"steps": (100, "the server's --max_generation_steps")}
    with pytest.raises(ValueError, match=r"`steps` must be an integer between 0 and 100 \(the server's "
                                         r"--max_generation_steps\)\. Received: steps=\[101\]"):
        check_generation_arguments(limits, steps=np.array([101]))
    with pytest.raises(ValueError, match=r"`steps` must be an integer between 0 and 100 .*Received: steps=-1"):
        check_generation_arguments(limits, steps=-1)


def test_an_unknown_generation_argument_is_a_programming_error():
    with pytest.raises(KeyError):
        check_generation_arguments(beams=3)


GRAPH_ERRORS = [
    ("steps", tf.constant([-1]), r"`steps` must be an integer >= 0\. Received: steps=\] \[-1\]"),
    ("max_length", tf.constant([2, -3]), r"`max_length` must be an integer >= 0\. Received: max_length=\] \[2 -3\]"),
    ("temperature", tf.constant([np.nan]), r"`temperature` must be a finite number >= 0 \(0 = greedy\)\. "
        r"Received: temperature=\] \[nan\]"),
    ("temperature", tf.constant([-0.5]), r"`temperature` must be a finite number >= 0 .*\[-0\.5\]"),
    ("top_k", tf.constant([-2]), r"`top_k` must be an integer >= 0 \(0 keeps every token\)\. "
        r"Received: top_k=\] \[-2\]"),
    ("beam_width", tf.constant([0]), r"`beam_width` must be an integer >= 1\. Received: beam_width=\] \[0\]"),
    ("alpha", tf.constant([np.inf]), r"`alpha` must be a finite number >= 0 .*Received: alpha=\] \[inf\]"),
]


@pytest.mark.parametrize("name, value, message", GRAPH_ERRORS)
def test_graph_asserts_word_the_same_rule(name, value, message):
    @tf.function(autograph=False)
    def signature(tensor):
        return passed_through(generation_asserts(**{name: tensor}), tensor)[0]

    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signature(value)
    good = tf.ones_like(value)  # 1 obeys every rule
    np.testing.assert_array_equal(signature(good).numpy(), good.numpy())


def test_every_generation_argument_has_a_graph_check_unless_its_dtype_is_the_rule():
    ones = {name: tf.constant([1] if integer else [1.0]) for name, (integer, _, _) in GENERATION_ARGUMENTS.items()}
    with_graph_check = {name for name in GENERATION_ARGUMENTS if generation_asserts(**{name: ones[name]})}
    assert with_graph_check == set(GENERATION_ARGUMENTS) - {"seed"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"max_tokens": -1}, r"`max_tokens` must be a non-negative integer\. Received: max_tokens=-1"),
        ({"chunk_size": 0}, r"`chunk_size` must be a positive integer\. Received: chunk_size=0"),
        ({"temperature": -1.0}, r"`temperature` must be a finite number >= 0 \(0 = greedy\)\. "
            r"Received: temperature=-1\.0"),
        ({"top_k": -1}, r"`top_k` must be an integer >= 0 \(0 keeps every token\)\. Received: top_k=-1"),
        ({"seed": 0.5}, r"`seed` must be an integer\. Received: seed=0\.5"),
    ],
)
def test_in_process_streams_check_their_arguments_at_the_call(arguments, message):
    from zoo import sampling

    def generate(**inputs):
        raise AssertionError("a refused stream must not run")

    with pytest.raises(ValueError, match=message):
        sampling.stream_from(generate, 4, "a", **{"max_tokens": 3, **arguments})


# What needs TensorFlow says so on another backend (tests/test_backends.py sees it on the real ones).


@pytest.fixture
def backend_named(monkeypatch):
    import keras

    def use(name):
        monkeypatch.setattr(keras.backend, "backend", lambda: name)
        monkeypatch.setenv("KERAS_BACKEND", name)

    return use


def test_tensorflow_only_features_name_the_backend(backend_named, tmp_path):
    from training.loop import Trainer
    from zoo import decoding, sampling
    from zoo.export import export_saved_model

    backend_named("torch")
    model = object()  # refused before the model is looked at
    received = r" Received: the torch backend \(KERAS_BACKEND='torch'\)$"
    with pytest.raises(ValueError, match=r"^`zoo.sampling` needs the TensorFlow backend: sampling is a TensorFlow gr"
                                         r"aph.*" + received):
        sampling.sample(model, "To", 5)
    with pytest.raises(ValueError, match=r"^`zoo.sampling` needs the TensorFlow backend.*" + received):
        sampling.stream(model, "To", 5)
    with pytest.raises(ValueError, match=r"^`zoo.sampling` needs the TensorFlow backend.*" + received):
        sampling.make_generate_fn(model)
    for decode in (decoding.greedy, decoding.sample, decoding.beam_search):
        with pytest.raises(ValueError, match=r"^`zoo.decoding` needs the TensorFlow backend: decoding .*" + received):
            decode(model, ["1+2"])
    with pytest.raises(ValueError, match=r"^`zoo.decoding` needs the TensorFlow backend.*" + received):
        decoding.endpoints(model)
    with pytest.raises(ValueError, match=r"^`zoo.export.export_saved_model` needs the TensorFlow backend: a Saved.*"
                                         + received):
        export_saved_model(model, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    with pytest.raises(ValueError, match=r"^`training.loop.Trainer` needs the TensorFlow backend: its step is a .*"
                                         + received):
        Trainer(model)


def test_float64_reservoir_and_readout_refuse_jax_without_x64(backend_named):
    from zoo.layers import EchoState, RidgeReadout

    backend_named("jax")
    for make, name in ((lambda: EchoState(4, seed=0), "EchoState"), (lambda: RidgeReadout(1), "RidgeReadout")):
        with pytest.raises(ValueError, match=rf"^{name} computes in float64 here, which the jax backend silently "
                                             r"runs in float32 unless JAX's x64 mode is on: pass dtype='float32', "
                                             r".* Received: dtype='float64' on the jax backend with x64 off$"):
            make()
    EchoState(4, seed=0, dtype="float32")  # what the message proposes
    RidgeReadout(1, dtype="float32")
