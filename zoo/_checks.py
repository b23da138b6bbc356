"""The argument checks of the library, written once and worded the Keras way.

Every message says what was wrong, what was expected and what came in:
"`units` must be a positive integer. Received: units=2.5". Layers, models,
data generators, the samplers and the server all raise through these
functions, so one argument is described the same way wherever it is passed.

The generation arguments (`steps`, `temperature`, `top_k`, `seed`,
`max_length`, `beam_width`, `alpha`) have one rule each, in
`GENERATION_ARGUMENTS`. `check_generation_arguments` applies it to Python
values and NumPy arrays (in-process samplers, the server's limits);
`generation_asserts` applies it to tensors inside an exported signature,
where no Python runs; `token_id_asserts` and `vocabulary_asserts` check a
character model's ids and prompts there too.
"""

import math
import numbers
import os

import numpy as np

__all__ = [
    "GENERATION_ARGUMENTS",
    "check_generation_arguments",
    "check_non_negative_int",
    "check_number",
    "check_one_of",
    "check_positive_int",
    "check_tensorflow_backend",
    "check_float64_backend",
    "generation_asserts",
    "passed_through",
    "token_id_asserts",
    "vocabulary_asserts",
]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _reject(name, expected, value):
    raise ValueError(f"`{name}` must be {expected}. Received: {name}={_shown(value)}")


def _shown(value):
    """`repr` of a scalar; the first 8 values of an array (a request may send millions)."""
    if not isinstance(value, np.ndarray):
        return repr(value)
    flat = value.reshape(-1)
    text = np.array2string(flat[:8], separator=",", threshold=8)
    return text[:-1] + ",...]" if flat.size > 8 else text


def check_positive_int(name, value, allow_none=False):
    """Returns `int(value)` (None allowed if `allow_none`) unless it is not an integer > 0.

    Raises:
        ValueError: naming `name`, e.g. "`units` must be a positive integer. Received: units=0".
    """
    if allow_none and value is None:
        return None
    if not _is_int(value) or value <= 0:
        _reject(name, "a positive integer" + (" or None" if allow_none else ""), value)
    return int(value)


def check_non_negative_int(name, value, allow_none=False):
    """Returns `int(value)` (None allowed if `allow_none`) unless it is not an integer >= 0.

    Raises:
        ValueError: naming `name`, e.g. "`warmup` must be a non-negative integer. Received: warmup=-2".
    """
    if allow_none and value is None:
        return None
    if not _is_int(value) or value < 0:
        _reject(name, "a non-negative integer" + (" or None" if allow_none else ""), value)
    return int(value)


def check_tensorflow_backend(feature, why):
    """Refuses to run `feature` unless Keras runs on TensorFlow.

    The zoo's layers run on every Keras backend; what is built as a TensorFlow
    graph (sampling and decoding, the SavedModel export, the training loop)
    cannot take another backend's tensors and variables, and would otherwise
    fail deep inside a trace with a message about neither.

    Raises:
        ValueError: naming `feature`, the reason and the backend in use.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"`{feature}` needs the TensorFlow backend: {why}. Set KERAS_BACKEND=tensorflow before Keras is "
            f"imported. Received: the {backend} backend (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r})"
        )


def check_float64_backend(layer, dtype):
    """Refuses float64 on JAX without x64, where every float64 array silently becomes float32.

    Raises:
        ValueError: naming `layer`, the dtype and the backend.
    """
    import keras

    if keras.backend.backend() != "jax" or keras.backend.standardize_dtype(dtype) != "float64":
        return
    import jax

    if not jax.config.read("jax_enable_x64"):
        raise ValueError(
            f"{layer} computes in float64 here, which the jax backend silently runs in float32 unless JAX's "
            "x64 mode is on: pass dtype='float32', or set JAX_ENABLE_X64=1 (or "
            "jax.config.update('jax_enable_x64', True)) before the first JAX array. "
            f"Received: dtype={dtype!r} on the jax backend with x64 off"
        )


def _interval(low, high, low_open, high_open):
    if low == 0 and high is None:
        return "a positive number" if low_open else "a non-negative number"
    left = "-inf" if low is None else low
    right = "inf" if high is None else high
    opening, closing = "(" if low_open or low is None else "[", ")" if high_open or high is None else "]"
    return f"a number in {opening}{left}, {right}{closing}"


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """Returns `float(value)` unless it is not a finite real number in the interval.

    Args:
        name: the argument's name, for the message.
        value: what was passed.
        low, high: the bounds; None leaves that side unbounded.
        low_open, high_open: whether the bound itself is excluded.

    Raises:
        ValueError: e.g. "`leak_rate` must be a number in (0, 1]. Received: leak_rate=0";
            (0, inf) reads "a positive number" and [0, inf) "a non-negative number".
    """
    ok = _is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        _reject(name, _interval(low, high, low_open, high_open), value)
    return float(value)


def check_one_of(name, value, options):
    """Returns `value` unless it is not among `options`.

    Raises:
        ValueError: e.g. "`bridge` must be one of 'dense' or 'sum'. Received: bridge='mean'".
    """
    if value not in options:
        shown = [repr(option) for option in options]
        listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
        _reject(name, f"one of {listed}", value)
    return value


# name -> (integer?, smallest allowed value or None, what the message says it must be)
GENERATION_ARGUMENTS = {
    "steps": (True, 0, "an integer >= 0"),
    "max_length": (True, 0, "an integer >= 0"),
    "temperature": (False, 0, "a finite number >= 0 (0 = greedy)"),
    "top_k": (True, 0, "an integer >= 0 (0 keeps every token)"),
    "seed": (True, None, "an integer"),
    "beam_width": (True, 1, "an integer >= 1"),
    "alpha": (False, 0, "a finite number >= 0 (0 turns the length penalty off)"),
}


def _obeys(value, integer, minimum, maximum):
    """Whether a scalar or every element of an array obeys the rule."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in ("iu" if integer else "iuf"):
            return False
        finite = value.dtype.kind in "iu" or bool(np.all(np.isfinite(value)))
        low_ok = minimum is None or value.size == 0 or value.min() >= minimum
        high_ok = maximum is None or value.size == 0 or value.max() <= maximum
        return finite and bool(low_ok) and bool(high_ok)
    if not (_is_int(value) if integer else _is_number(value) and math.isfinite(value)):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def check_generation_arguments(limits=None, **arguments):
    """Checks generation arguments against `GENERATION_ARGUMENTS`; returns them unchanged.

    Args:
        limits: optional `{name: (maximum, where the maximum comes from)}`,
            an upper bound the caller adds (the server's `--max_generation_steps`).
        **arguments: Python scalars or NumPy arrays (every element is checked),
            by their names in `GENERATION_ARGUMENTS`.

    Raises:
        ValueError: e.g. "`top_k` must be an integer >= 0 (0 keeps every token). Received: top_k=-2".
    """
    for name, value in arguments.items():
        integer, minimum, expected = GENERATION_ARGUMENTS[name]
        maximum, why = (limits or {}).get(name, (None, None))
        if maximum is not None:
            kind = "an integer" if integer else "a finite number"
            expected = f"{kind} between {minimum} and {maximum} ({why})"
        if not _obeys(value, integer, minimum, maximum):
            _reject(name, expected, value)
    return arguments


def generation_asserts(**tensors):
    """The graph twin of `check_generation_arguments`: one assert op per tensor.

    For signatures that run without Python (a SavedModel on TF Serving); run
    the ops before anything reads the tensors (see `passed_through`).
    """
    import tensorflow as tf

    asserts = []
    for name, tensor in tensors.items():
        integer, minimum, expected = GENERATION_ARGUMENTS[name]
        conditions = [] if integer else [tf.math.is_finite(tensor)]  # the dtype already makes an int an int
        if minimum is not None:
            conditions.append(tensor >= tf.cast(minimum, tensor.dtype))
        if conditions:
            ok = tf.reduce_all(tf.stack([tf.reduce_all(c) for c in conditions]))
            message = f"`{name}` must be {expected}. Received: {name}="
            asserts.append(tf.debugging.Assert(ok, [message, tensor], summarize=8))
    return asserts


def token_id_asserts(name, ids, vocab_size):
    """Graph check that every id of `ids` lies in [0, vocab_size); the message shows the ids that do not.

    Without it an embedding lookup reads -V..-1 as the last V ids (Keras's
    `take` wraps negative indices) and fails on anything further out with a
    message about an index it computed.
    """
    import tensorflow as tf

    inside = tf.logical_and(ids >= 0, ids < tf.cast(vocab_size, ids.dtype))
    # No apostrophes or backslashes: the Assert op escapes them in the message it prints.
    message = f"`{name}` must be integers in [0, {vocab_size}) (ids of the vocabulary of the model). Received: {name}="
    return [tf.debugging.Assert(tf.reduce_all(inside), [message, tf.boolean_mask(ids, ~inside)], summarize=8)]


def vocabulary_asserts(name, text, ids, vocabulary):
    """Graph check that a (B,) string tensor holds only characters of `vocabulary`.

    Args:
        name: the input's name, for the message.
        text: (B,) strings; the message shows those that fail, up to 8, cut at 64 characters.
        ids: (B, None) ragged ids of `text`'s characters, -1 where one is not in the vocabulary.
        vocabulary: the model's characters.
    """
    import tensorflow as tf

    outside = tf.reduce_any(ids < 0, axis=1)  # (B,)
    shown = tf.strings.substr(tf.boolean_mask(text, outside), 0, 64, unit="UTF8_CHAR")
    message = f"`{name}` must hold only characters of the vocabulary of the model ({len(vocabulary)} characters). "
    message += f"Received: {name}="
    return [tf.debugging.Assert(tf.logical_not(tf.reduce_any(outside)), [message, shown], summarize=8)]


FINITE_STATE = "must be finite numbers"  # in the message below, by which `zoo.export --stale` knows graphs without it


def finite_state_asserts(name, state):
    """Graph check that every number of a (B, S) state is finite; the message shows the rows that are not.

    A NaN or an infinity in the state (a corrupt copy, bytes read in the other order) makes the sampler draw an
    id outside the vocabulary, and the embedding lookup then fails with a message about an index it computed.
    """
    import tensorflow as tf

    bad_rows = tf.where(tf.logical_not(tf.reduce_all(tf.math.is_finite(state), axis=1)))[:, 0]
    message = f"`{name}` {FINITE_STATE}, as `generate` returns them. Received: NaN or infinity in rows "
    return [tf.debugging.Assert(tf.equal(tf.size(bad_rows), 0), [message, bad_rows], summarize=8)]


def state_bytes_asserts(name, state_bytes, width):
    """Graph check that each string of (B,) `state_bytes` holds `width` float32 numbers (4 `width` bytes)."""
    import tensorflow as tf

    lengths = tf.strings.length(state_bytes)
    wrong = tf.not_equal(lengths, 4 * width)
    message = (f"`{name}` must hold {4 * width} bytes per row ({width} little-endian float32, the state of the "
               f"model). Received: byte lengths ")
    return [tf.debugging.Assert(tf.logical_not(tf.reduce_any(wrong)), [message, tf.boolean_mask(lengths, wrong)],
                                summarize=8)]


def passed_through(asserts, *tensors):
    """`tensors` behind `asserts`, so nothing downstream runs on bad arguments."""
    import tensorflow as tf

    with tf.control_dependencies(asserts):
        return [tf.identity(t) for t in tensors]
