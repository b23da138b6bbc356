"""Sampling one character at a time from a `CharLM`, as a TensorFlow graph.

The same function is the SavedModel's `generate` signature and the in-process
sampler, so a served stream and `sample(...)` give the same text for a seed.

Determinism across chunking: the token at stream position p is the one
`tf.random.stateless_categorical` seeded by (seed, p) draws (its Philox numbers
computed for a whole chunk at once, `stateless_uniforms`), and a chunk returns the
state *before* its last token was fed; the next chunk's prompt is that token.
Feeding it as a one-character prompt runs the very same (B, 1) model step the
loop would have run, so splitting a stream into chunks changes nothing.
"""

import numpy as np
import tensorflow as tf

from zoo._checks import (
    check_generation_arguments,
    check_non_negative_int,
    check_positive_int,
    check_tensorflow_backend,
    finite_state_asserts,
    generation_asserts,
    passed_through,
    state_bytes_asserts,
    vocabulary_asserts,
)
from zoo.layers._loop import column_blocks, runs_on_one_thread, weights_read_once

__all__ = [
    "GENERATE_SIGNATURE",
    "STATE_BYTES",
    "char_tables",
    "generate_bytes_signature",
    "make_generate_bytes_fn",
    "make_generate_fn",
    "make_sample_fn",
    "pick_tokens",
    "sample_signature",
    "sample",
    "stateless_uniforms",
    "stream",
    "stream_from",
]


def generate_signature(state_width):
    """Input signature of `generate`; every input has a leading batch dimension."""
    return [
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([None, state_width], tf.float32, name="state"),
        tf.TensorSpec([None], tf.int32, name="steps"),
        tf.TensorSpec([None], tf.float32, name="temperature"),
        tf.TensorSpec([None], tf.int32, name="top_k"),
        tf.TensorSpec([None], tf.int64, name="seed"),
        tf.TensorSpec([None], tf.int64, name="position"),
    ]


GENERATE_SIGNATURE = generate_signature  # public alias documented in README

STATE_BYTES = "state_bytes"  # `generate_bytes`' state: an output alias ending in _bytes comes back as base64 on REST


def generate_bytes_signature():
    """Input signature of `generate_bytes`: `generate`'s, with each row's state as one string of its bytes (their
    number is checked in the graph: a string's length is not part of its spec)."""
    specs = generate_signature(1)
    return [tf.TensorSpec([None], tf.string, name=STATE_BYTES) if spec.name == "state" else spec for spec in specs]


def char_tables(vocabulary):
    """Lookup tables between characters and token ids, as graph constants.

    Shared by every model that reads or writes characters (`CharLM` here, the
    encoder-decoder's source side in `zoo.decoding`).

    Args:
        vocabulary: a string of distinct characters; character i has id i.

    Returns:
        `(code_to_id, id_to_char)`: a dense int32 table from Unicode code
        point to id (-1 = not in the vocabulary), and a (V,) string tensor of
        each id's UTF-8 character.
    """
    codes = [ord(ch) for ch in vocabulary]
    to_id = np.full(max(codes) + 1, -1, dtype=np.int32)
    to_id[codes] = np.arange(len(codes), dtype=np.int32)
    return tf.constant(to_id), tf.constant([ch.encode("utf-8") for ch in vocabulary])


NO_ROWS_PADDING = "no_rows_one_column"  # the op's name, by which `zoo.export --stale` knows graphs without it


def _encode_prompts(prompt, code_to_id, vocabulary):
    """(B,) strings -> padded ids (B, P), mask (B, P) and lengths (B,)."""
    prompt = tf.where(tf.strings.length(prompt) > 0, prompt, "\n")  # an empty prompt starts a new line
    codes = tf.strings.unicode_decode(prompt, "UTF-8")  # ragged (B, None)
    in_table = tf.logical_and(codes >= 0, codes < tf.shape(code_to_id)[0])
    ids = tf.ragged.map_flat_values(lambda c, ok: tf.where(ok, tf.gather(code_to_id, tf.where(ok, c, 0)), -1),
                                    codes, in_table)
    with tf.control_dependencies(vocabulary_asserts("prompt", prompt, ids, vocabulary)):
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        dense = ids.to_tensor(default_value=0)
    # A batch of no rows has no columns; one column sends it down the one-character path with empty outputs,
    # where the prompt's time loop fails to stack no steps of unknown width.
    dense = tf.pad(dense, [[0, 0], [0, tf.maximum(1 - tf.shape(dense)[1], 0)]], name=NO_ROWS_PADDING)
    return dense, tf.sequence_mask(lengths, tf.shape(dense)[1]), lengths


# Philox-4x32-10 (Salmon et al. 2011) as TensorFlow's CPU kernels run it, and the key TensorFlow derives from a
# stateless seed: `stateless_uniforms` computes, for many seeds at once, the numbers one
# `tf.random.stateless_categorical` call draws from.
_PHILOX_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_PHILOX_KEY_STEPS = (0x9E3779B9, 0xBB67AE85)
_SEED_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)
_WORD = 0xFFFFFFFF


def _philox(counter, key):
    """Philox-4x32-10 of 4 counter words and 2 key words: uint64 tensors of one shape, each holding 32 bits."""
    (c0, c1, c2, c3), (k0, k1) = counter, key
    word, shift = tf.constant(_WORD, tf.uint64), tf.constant(32, tf.uint64)
    for round_ in range(10):
        if round_:
            k0 = tf.bitwise.bitwise_and(k0 + _PHILOX_KEY_STEPS[0], word)
            k1 = tf.bitwise.bitwise_and(k1 + _PHILOX_KEY_STEPS[1], word)
        p0, p1 = c0 * _PHILOX_MULTIPLIERS[0], c2 * _PHILOX_MULTIPLIERS[1]  # < 2**64: exact in uint64
        high0, high1 = tf.bitwise.right_shift(p0, shift), tf.bitwise.right_shift(p1, shift)
        c0, c1, c2, c3 = (
            tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(high1, c1), k0),
            tf.bitwise.bitwise_and(p1, word),
            tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(high0, c3), k1),
            tf.bitwise.bitwise_and(p0, word),
        )
    return c0, c1, c2, c3


def stateless_uniforms(seed, position):
    """The uniform number in [0, 1) that `tf.random.stateless_categorical(logits, 1, seed=[seed, position])`
    draws a row's token with, for every (seed, position) pair at once.

    That op runs one small kernel per seed, so a batch with a seed per row needs a call per row (a `map_fn`,
    most of a sampling step's cost at batch 64); these are the same Philox numbers as one graph over all
    rows and positions.

    Args:
        seed, position: int64 tensors that broadcast together.

    Returns:
        float64 tensor of their broadcast shape.
    """
    shape = tf.broadcast_dynamic_shape(tf.shape(seed), tf.shape(position))
    seed, position = tf.broadcast_to(seed, shape), tf.broadcast_to(position, shape)
    word, shift = tf.constant(_WORD, tf.uint64), tf.constant(32, tf.uint64)

    def halves(value):  # int64 -> its low and high 32-bit words
        bits = tf.bitcast(value, tf.uint64)
        return tf.bitwise.bitwise_and(bits, word), tf.bitwise.right_shift(bits, shift)

    scramble = tuple(tf.constant(k, tf.uint64) for k in _SEED_SCRAMBLE_KEY)  # scalars: they broadcast
    k0, k1, c2, c3 = _philox((*halves(seed), *halves(position)), scramble)
    zero = tf.zeros_like(c2)
    x0, x1, _, _ = _philox((zero, zero, c2, c3), (k0, k1))
    # 52 random mantissa bits over 2**52: exact in float64, as TensorFlow turns two words into a double.
    mantissa = tf.bitwise.bitwise_or(tf.bitwise.left_shift(tf.bitwise.bitwise_and(x0, 0xFFFFF), shift), x1)
    return tf.cast(mantissa, tf.float64) * 2.0**-52


def _draw(logits, uniforms):
    """Inverse-CDF draw of one token per row, as `tf.random.stateless_categorical` draws on the CPU.

    The cumulative sum of exp(logit - max) over finite logits, in float64, and the first token whose cumulative
    sum exceeds `uniforms` times the total.
    """
    logits = tf.cast(logits, tf.float64)
    finite = tf.math.is_finite(logits)
    top = tf.reduce_max(tf.where(finite, logits, tf.constant(-np.inf, tf.float64)), axis=-1, keepdims=True)
    cdf = tf.cumsum(tf.where(finite, tf.exp(logits - top), tf.zeros_like(logits)), axis=-1)
    return tf.reduce_sum(tf.cast(cdf <= uniforms[:, None] * cdf[:, -1:], tf.int32), axis=-1)


def pick_tokens(logits, temperature, top_k, uniforms, filter_top_k=True, greedy_rows=True):
    """The next token of each row: argmax at temperature 0, else a seeded top-k draw.

    The one sampling rule of the zoo: `CharLM`'s `generate` and the
    encoder-decoder's `sample` (`zoo.decoding`) both pick with it, so a seed
    means the same thing everywhere. A row's draw depends only on its own
    uniform, `stateless_uniforms(seed, position)`, never on the rest of the
    batch: it is the token `tf.random.stateless_categorical` draws from the
    row's scaled logits with seed (seed, position).

    Args:
        logits: (B, V) float.
        temperature: (B,) float32; 0 picks the argmax.
        top_k: (B,) int32; 0 keeps every token.
        uniforms: (B,) float64, each row's `stateless_uniforms(seed, position)` for the stream position of the
            token being drawn (a sampling loop computes a whole chunk's at once, outside the loop).
        filter_top_k, greedy_rows: False when the caller knows that no row keeps fewer than V tokens, or that
            no row has temperature 0: the pick then leaves out ops that would change nothing (`sampling_plan`).

    Returns:
        (B,) int32 token ids.
    """
    if filter_top_k:
        vocab = tf.shape(logits)[-1]
        k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
        kth_best = tf.gather(tf.math.top_k(logits, k=vocab).values, k - 1, batch_dims=1)  # (B,)
        logits = tf.where(logits < kth_best[:, None], tf.constant(-np.inf, logits.dtype), logits)
    if not greedy_rows:
        return _draw(logits / temperature[:, None], uniforms)
    scaled = logits / tf.where(temperature > 0, temperature, 1.0)[:, None]
    drawn = _draw(scaled, uniforms)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(temperature > 0, drawn, greedy)


# The sampling loops `sampling_plan` chooses between, as (filter_top_k, greedy_rows, ragged): a lean loop for the
# common batch and the full rule for any other. Every loop in the graph is traced and loaded with it (more loops
# doubled the time to export a char model), so there are two, not one per combination.
SAMPLING_PLANS = ((False, False, False), (True, True, True))


def sampling_plan(temperature, top_k, steps, vocab):
    """Index into `SAMPLING_PLANS` of the cheapest loop that gives a batch's exact tokens.

    At batch 1 a step is mostly per-op overhead, so the lean loop leaves out what changes nothing when no row
    needs it: top-k filtering (every row keeps all `vocab` tokens), the argmax (no row is greedy) and the per-row
    state freeze (every row draws as many tokens as the others). Both loops compute the same numbers for the
    rows the lean one is chosen for.
    """
    filter_top_k = tf.reduce_any(tf.logical_and(top_k > 0, top_k < vocab))
    greedy_rows = tf.reduce_any(temperature <= 0)
    ragged = tf.reduce_any(steps != tf.reduce_max(steps))
    return tf.cast(tf.reduce_any(tf.stack([filter_top_k, greedy_rows, ragged])), tf.int32)


def make_generate_fn(model, check_state=True, blocks=True):
    """Returns `generate(prompt, state, steps, temperature, top_k, seed, position)`.

    Feeds each row's prompt from `state`, then samples up to `steps[b]`
    characters. Returns a dict: `text` (B,) generated text, `token_ids`
    (B, max(steps)) padded with -1, `state` (B, S) after every token but the
    last generated one (the next call's prompt), ready to continue the stream.
    Without `check_state`, the caller has checked that `state` is finite.
    Without `blocks`, the products take whole kernels instead of blocks of
    their columns (`column_blocks`): the same numbers, faster on one thread.
    """
    check_tensorflow_backend("zoo.sampling", _WHY)
    code_to_id, id_to_char = char_tables(model.vocabulary)

    def run(ids, mask, states):
        logits, states = model(ids, states=states, step_mask=mask)
        return tf.cast(logits, tf.float32), states

    def run_one(token, states, keep=None):  # one character per row, without the time loops: the same numbers
        logits, states = model.step(token, states, keep=keep)
        return tf.cast(logits, tf.float32), states

    def generate(prompt, state, steps, temperature, top_k, seed, position):
        # Every input passes through the checks, so nothing runs on bad arguments.
        asserts = generation_asserts(steps=steps, temperature=temperature, top_k=top_k)
        if check_state:
            asserts += finite_state_asserts("state", state)
        prompt, state, steps, temperature, top_k, seed, position = passed_through(
            asserts, prompt, state, steps, temperature, top_k, seed, position
        )
        ids, mask, lengths = _encode_prompts(prompt, code_to_id, model.vocabulary)
        # Weights read once per call, not per drawn character; products by column blocks unless `blocks` is off.
        with column_blocks(model) if blocks else weights_read_once(model):
            return _generate(ids, mask, lengths, state, steps, temperature, top_k, seed, position)

    def _generate(ids, mask, lengths, state, steps, temperature, top_k, seed, position):
        states = model.unpack_states(state)

        def feed_one_character():  # a stream's later calls: each prompt is the last character drawn
            first_logits, first_states = run_one(ids[:, 0], states)
            return first_logits[:, None], first_states

        logits, states = tf.cond(tf.shape(ids)[1] == 1, feed_one_character, lambda: run(ids, mask, states))
        last_logits = tf.gather(logits, lengths - 1, batch_dims=1)  # (B, V)
        total = tf.reduce_max(tf.concat([steps, [0]], axis=0))
        uniforms = stateless_uniforms(seed[:, None], position[:, None] + tf.range(tf.cast(total, tf.int64)))  # (B, N)
        batch = tf.shape(steps)[0]

        def sampling_loop(filter_top_k, greedy_rows, ragged):
            def draw(t, last_logits, tokens):  # token t of every row; a row past its steps writes -1
                token = pick_tokens(last_logits, temperature, top_k, uniforms[:, t], filter_top_k, greedy_rows)
                return token, tokens.write(t, tf.where(t < steps, token, -1) if ragged else token)

            def body(t, last_logits, states, tokens):  # draws token t and feeds it to the rows that draw again
                token, tokens = draw(t, last_logits, tokens)
                last_logits, states = run_one(token, states, keep=t + 1 < steps if ragged else None)
                return t + 1, last_logits, states, tokens

            # The last token is drawn after the loop, never fed: inside, a branch skipping its feed would route
            # every weight and state through a switch at each step, a large share of a step's ops at batch 1.
            _, logits, final_states, tokens = tf.while_loop(
                lambda t, *_: t < total - 1, body, (0, last_logits, states, tf.TensorArray(tf.int32, size=total)))
            tokens = tf.cond(total > 0, lambda: draw(total - 1, logits, tokens)[1], lambda: tokens)
            token_ids = tf.cond(  # stacking an empty TensorArray of unknown width fails: steps may all be 0
                total > 0, lambda: tf.transpose(tokens.stack()), lambda: tf.zeros([batch, 0], tf.int32))
            return final_states, token_ids

        plan = sampling_plan(temperature, top_k, steps, len(model.vocabulary))
        loops = [lambda flags=flags: sampling_loop(*flags) for flags in SAMPLING_PLANS]
        states, token_ids = tf.switch_case(plan, loops)  # the one loop this call needs, chosen before it runs
        token_ids = tf.reshape(token_ids, [batch, total])  # (B, N)
        chars = tf.gather(id_to_char, tf.maximum(token_ids, 0))
        text = tf.strings.reduce_join(tf.where(token_ids >= 0, chars, ""), axis=1)
        state = tf.cast(model.pack_states(states), tf.float32)  # float32 on the wire, whatever the compute dtype
        return {"text": text, "token_ids": token_ids, "state": state}

    return generate


def make_generate_bytes_fn(model):
    """Returns `generate_bytes(prompt, state_bytes, steps, temperature, top_k, seed, position)`.

    `generate` with each row's state as a string of its S float32 numbers, little-endian, back to back (4 S
    bytes): on REST, TF Serving writes it as base64 (`{"b64": ...}`) both ways, where `generate`'s state is S
    JSON numbers, which cost the server and a Python client most of a call's CPU to write and read. The numbers
    are the same bits. Returns `text`, `token_ids` and `state_bytes`.
    """
    generate = make_generate_fn(model, check_state=False)  # checked here, under the name the caller sent
    width = sum(model.state_sizes)

    def generate_bytes(prompt, state_bytes, steps, temperature, top_k, seed, position):
        (state_bytes,) = passed_through(state_bytes_asserts(STATE_BYTES, state_bytes, width), state_bytes)
        state = tf.reshape(tf.io.decode_raw(state_bytes, tf.float32, little_endian=True), [-1, width])
        (state,) = passed_through(finite_state_asserts(STATE_BYTES, state), state)
        out = generate(prompt, state, steps, temperature, top_k, seed, position)
        return {"text": out["text"], "token_ids": out["token_ids"], STATE_BYTES: _rows_as_bytes(out["state"])}

    return generate_bytes


def _rows_as_bytes(rows):
    """(B, S) float32 -> (B,) strings of each row's bytes.

    TensorFlow has no op writing a tensor's raw bytes, but a serialized
    TensorProto ends with them (`tensor_content`, its last field), rows back
    to back in the host's order, little-endian on every CPU TF Serving ships for.
    """
    serialized = tf.io.serialize_tensor(rows)
    batch, row_bytes = tf.shape(rows)[0], tf.shape(rows)[1] * 4
    start = tf.strings.length(serialized) - batch * row_bytes
    return tf.strings.substr(serialized, start + tf.range(batch) * row_bytes, tf.fill([batch], row_bytes))


def sample_signature():
    """Input signature of `sample`: `generate` less the state and position, for plain REST callers."""
    names = ("prompt", "steps", "temperature", "top_k", "seed")
    return [spec for spec in generate_signature(1) if spec.name in names]


def make_sample_fn(model):
    """Returns `sample(prompt, steps, temperature, top_k, seed) -> {"text"}`.

    `generate` from a zero state at position 0: one self-contained call, so a
    `curl` POST can sample without carrying a state. Same seed, same text as
    `generate` and as `zoo.sampling.sample` in-process.
    """
    generate = make_generate_fn(model, check_state=False)  # its state is zeros
    width = sum(model.state_sizes)

    def sample(prompt, steps, temperature, top_k, seed):
        batch = tf.shape(prompt)[0]
        state = tf.zeros([batch, width], tf.float32)
        position = tf.zeros([batch], tf.int64)
        return {"text": generate(prompt, state, steps, temperature, top_k, seed, position)["text"]}

    return sample


_COMPILED = {}
_WHY = ("sampling is a TensorFlow graph, the very function the SavedModel's `generate` signature serves (a "
        "SavedModel's loaded signature streams on any backend through `stream_from`)")


def _compiled_generate(model):
    check_tensorflow_backend("zoo.sampling", _WHY)  # before the model's attributes are read
    key = id(model)
    if key not in _COMPILED:
        signature = generate_signature(sum(model.state_sizes))
        # Cut at every call from the live weights, which training may still change; on one thread not at all.
        generate = make_generate_fn(model, blocks=not runs_on_one_thread())
        _COMPILED[key] = (model, tf.function(generate, input_signature=signature, autograph=False))
    return _COMPILED[key][1]


def stream(model, prompt, max_tokens, temperature=1.0, top_k=0, seed=0, chunk_size=32):
    """Yields generated text chunk by chunk, in-process (the served stream's twin)."""
    return stream_from(_compiled_generate(model), sum(model.state_sizes), prompt, max_tokens, temperature, top_k,
                       seed, chunk_size)


def stream_from(generate, state_width, prompt, max_tokens, temperature=1.0, top_k=0, seed=0, chunk_size=32):
    """The chunk loop over any `generate` taking the signature's inputs by name.

    `generate` is this module's function (compiled) or a loaded SavedModel's
    `generate` signature; the state and the last character carry over between chunks.

    Raises:
        ValueError: a negative `max_tokens`, a `chunk_size` < 1, or a
            `temperature`, `top_k` or `seed` outside `zoo._checks.GENERATION_ARGUMENTS`.
    """
    check_non_negative_int("max_tokens", max_tokens)
    check_positive_int("chunk_size", chunk_size)
    check_generation_arguments(temperature=temperature, top_k=top_k, seed=seed)
    return _chunks(generate, state_width, prompt, max_tokens, temperature, top_k, seed, chunk_size)


def _chunks(generate, state_width, prompt, max_tokens, temperature, top_k, seed, chunk_size):
    """`stream_from`'s loop, a generator of its own so that the checks run at the call, not at the first chunk."""
    state = np.zeros((1, state_width), np.float32)
    done = 0
    while done < max_tokens:
        steps = min(chunk_size, max_tokens - done)
        out = generate(
            prompt=tf.constant([prompt]), state=tf.constant(state), steps=tf.constant([steps], tf.int32),
            temperature=tf.constant([temperature], tf.float32), top_k=tf.constant([top_k], tf.int32),
            seed=tf.constant([seed], tf.int64), position=tf.constant([done], tf.int64),
        )
        text = out["text"].numpy()[0].decode("utf-8")
        state, prompt, done = out["state"].numpy(), text[-1:], done + steps
        yield text


def sample(model, prompt, max_tokens, temperature=1.0, top_k=0, seed=0):
    """Generates `max_tokens` characters after `prompt` in one call."""
    return "".join(stream(model, prompt, max_tokens, temperature, top_k, seed, chunk_size=max(max_tokens, 1)))
