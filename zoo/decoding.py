"""Decoding from an encoder–decoder, as TensorFlow graphs: greedy, sampling, beam search.

Each decoder is one function that is both a SavedModel signature (string in,
string out; see `endpoints`) and, through the same `tf.function`, the
in-process decoder (`greedy`, `sample`, `beam_search`), so the two cannot
drift. The loops are `tf.while_loop`s built with autograph off, the way
`ExportArchive` and `zoo.export` trace: no `py_function`, no XLA, nothing
stock TF Serving on a CPU cannot run.

The cores (`sample_ids`, `beam_search_ids`) know nothing about models: they
take `step(tokens (N,), states) -> (logits (N, V), states)` and the decoder's
initial states, so tests can drive them with a hand-built step function.

Every argument of a signature is per row (leading batch dimension): a batch
may mix beam widths, length penalties, temperatures and lengths, and each row
gets exactly what it would get alone.
"""

import numpy as np
import tensorflow as tf

from zoo._checks import check_generation_arguments, check_tensorflow_backend, generation_asserts, passed_through
from zoo.sampling import char_tables, pick_tokens, stateless_uniforms

__all__ = [
    "beam_search",
    "beam_search_ids",
    "endpoints",
    "greedy",
    "length_penalty",
    "sample",
    "sample_ids",
]

DEFAULT_MAX_LENGTH = 64
_NEG_INF = float("-inf")


# --- token ids (the generation arguments have their rules in `zoo._checks`) ---


def _check_token(name, value, vocab_size):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < vocab_size:
        raise ValueError(f"`{name}` must be a token id in [0, {vocab_size}). Received: {name}={value!r}")
    return int(value)


def _put(buffer, t, values):
    """`buffer[..., t] = values` for a (..., L) buffer, as a new tensor (no scatter)."""
    at_t = tf.range(tf.shape(buffer)[-1]) == t
    return tf.where(at_t, values[..., None], buffer)


def length_penalty(length, alpha):
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (Wu et al. 2016, eq. 14); α = 0 turns it off."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


# --- greedy and sampling ---


def sample_ids(step, states, *, start_id, end_id, vocab_size, max_length, temperature, top_k, seed):
    """Decodes one token at a time, each picked by `zoo.sampling.pick_tokens`.

    Temperature 0 is greedy (argmax). Otherwise the token at step t of a row
    is a top-k draw from softmax(logits / temperature), seeded by (seed, t)
    for that row, so a seed gives the same text whatever else is in the batch.

    Args:
        step: `step(tokens (B,), states) -> (logits (B, V), new states)`.
        states: the decoder's initial states, a list of (B, S_i) tensors.
        start_id, end_id: token fed first; token that ends a row (in [0, V)).
        vocab_size: V.
        max_length: (B,) int32, most tokens per row, the end token included.
        temperature: (B,) float32; top_k: (B,) int32 (0 keeps all); seed: (B,) int64.

    Returns:
        dict: `token_ids` (B, max(max_length)) int32 without the end token,
        padded with -1; `log_prob` (B,) float32, the model's log-probability
        of the emitted tokens (the end token included when emitted).

    Raises:
        ValueError: `start_id` or `end_id` outside [0, vocab_size).
    """
    start_id, end_id = _check_token("start_id", start_id, vocab_size), _check_token("end_id", end_id, vocab_size)
    batch = tf.shape(max_length)[0]
    longest = tf.reduce_max(tf.concat([max_length, [0]], axis=0))
    uniforms = stateless_uniforms(seed[:, None], tf.range(tf.cast(longest, tf.int64)))  # every step's, up front

    def body(t, tokens, states, ids, log_prob, done):
        logits, new_states = step(tokens, states)
        token = pick_tokens(logits, temperature, top_k, uniforms[:, t])  # position t of each row's seed
        active = tf.logical_not(done)
        chosen = tf.gather(tf.nn.log_softmax(logits), token, batch_dims=1)  # (B,)
        log_prob = tf.where(active, log_prob + chosen, log_prob)
        ids = tf.where(active[:, None] & (token != end_id)[:, None], _put(ids, t, token), ids)
        states = [tf.where(active[:, None], new, old) for new, old in zip(new_states, states)]
        done = done | (token == end_id) | (t + 1 >= max_length)
        return t + 1, tf.where(active, token, tokens), states, ids, log_prob, done

    initial = (
        tf.constant(0),
        tf.fill([batch], start_id),
        list(states),
        tf.fill([batch, longest], -1),
        tf.zeros([batch], tf.float32),
        max_length <= 0,
    )
    _, _, _, ids, log_prob, _ = tf.while_loop(
        lambda t, *rest: tf.logical_not(tf.reduce_all(rest[-1])), body, initial
    )
    return {"token_ids": ids, "log_prob": log_prob}


# --- beam search ---


def _expand(step, tokens, states, alive_logp, alive_seq, t, end_id):
    """Scores every one-token extension of every alive beam; keeps the best 2K.

    2K candidates always hold K that do not end (each beam ends at most once),
    so the alive set never runs dry.
    """
    batch, beams = tf.shape(alive_logp)[0], tf.shape(alive_logp)[1]
    logits, new_states = step(tokens, states)  # (B·K, V)
    vocab = tf.shape(logits)[-1]
    scores = alive_logp[:, :, None] + tf.reshape(tf.nn.log_softmax(logits), [batch, beams, vocab])
    top_logp, top_index = tf.math.top_k(tf.reshape(scores, [batch, beams * vocab]), k=2 * beams)  # (B, 2K)
    parent, token = top_index // vocab, top_index % vocab
    candidates = _put(tf.gather(alive_seq, parent, batch_dims=1), t, token)  # (B, 2K, L)
    return top_logp, parent, token, candidates, new_states, token == end_id


def _next_alive(top_logp, parent, token, candidates, new_states, is_end, in_width):
    """The K best candidates that did not end, with their decoder states and last tokens."""
    batch, beams = tf.shape(in_width)[0], tf.shape(in_width)[1]
    alive_logp, pick = tf.math.top_k(tf.where(is_end, _NEG_INF, top_logp), k=beams)
    alive_logp = tf.where(in_width, alive_logp, _NEG_INF)  # a row of width w < K keeps w beams
    rows = tf.range(batch)[:, None] * beams
    flat_parent = tf.reshape(tf.gather(parent, pick, batch_dims=1) + rows, [-1])
    states = [tf.gather(s, flat_parent) for s in new_states]
    tokens = tf.reshape(tf.gather(token, pick, batch_dims=1), [-1])
    return alive_logp, tf.gather(candidates, pick, batch_dims=1), states, tokens


def _next_finished(finished, top_logp, candidates, is_end, beam_width, t, alpha):
    """Finished hypotheses so far plus those that ended now; the K best by length-normalised score.

    Only an end among the row's best w candidates finishes (as in fairseq): a
    hypothesis must win a place in the beam to end, which makes width 1 greedy.
    """
    score, logp, seq = finished
    in_beam = tf.range(tf.shape(top_logp)[1])[None, :] < beam_width[:, None]  # (B, 2K)
    new_score = tf.where(is_end & in_beam, top_logp / length_penalty(t + 1, alpha)[:, None], _NEG_INF)
    in_width = tf.range(tf.shape(score)[1])[None, :] < beam_width[:, None]  # (B, K)
    best, pick = tf.math.top_k(tf.concat([score, new_score], axis=1), k=tf.shape(score)[1])
    return (
        tf.where(in_width, best, _NEG_INF),
        tf.gather(tf.concat([logp, top_logp], axis=1), pick, batch_dims=1),
        tf.gather(tf.concat([seq, candidates], axis=1), pick, batch_dims=1),
    )


def _beam_result(alive_logp, alive_seq, finished, alpha, end_id):
    """Each row's best finished hypothesis, or its best alive one if none finished."""
    score, logp, seq = finished
    has_finished = score[:, 0] > _NEG_INF
    alive_length = tf.reduce_sum(tf.cast(alive_seq[:, 0] >= 0, tf.int32), axis=1)
    alive_score = alive_logp[:, 0] / length_penalty(alive_length, alpha)
    best = tf.where(has_finished[:, None], seq[:, 0], alive_seq[:, 0])
    return {
        "token_ids": tf.where(best == end_id, -1, best),
        "log_prob": tf.where(has_finished, logp[:, 0], alive_logp[:, 0]),
        "score": tf.where(has_finished, score[:, 0], alive_score),
    }


def beam_search_ids(step, states, *, start_id, end_id, vocab_size, max_length, beam_width, alpha):
    """Beam search with GNMT's length penalty, each row with its own width and α.

    Keeps the K best unfinished ("alive") hypotheses by log-probability; a
    hypothesis that emits `end_id` moves to the row's finished set, ranked by
    score = log P(Y) / lp(Y) with lp from `length_penalty` and |Y| counting
    the end token; only an end among the row's K best extensions finishes, so
    width 1 is greedy decoding. A row stops when its worst kept finished score beats the
    best any alive hypothesis could still reach, log P / lp(max_length) (log P
    only falls as it grows), or at `max_length`; stopped rows are frozen, so
    a row's result does not depend on the other rows. A row where nothing
    finished returns its best alive hypothesis.

    Args:
        step, states, start_id, end_id, vocab_size, max_length: as `sample_ids`.
        beam_width: (B,) int32 >= 1, K per row (the loop runs max(K) beams and
            masks the extra ones of narrower rows).
        alpha: (B,) float32 >= 0.

    Returns:
        dict: `token_ids` (B, max(max_length)) without the end token, -1
        padded; `log_prob` (B,) float32 of the returned sequence (end token
        included when it ended); `score` (B,) its length-normalised score.

    Raises:
        ValueError: `start_id` or `end_id` outside [0, vocab_size).
    """
    start_id, end_id = _check_token("start_id", start_id, vocab_size), _check_token("end_id", end_id, vocab_size)
    batch, beams = tf.shape(beam_width)[0], tf.reduce_max(beam_width)
    longest = tf.reduce_max(tf.concat([max_length, [0]], axis=0))
    slots = tf.range(beams)[None, :]
    in_width = slots < beam_width[:, None]  # (B, K)
    bound_penalty = length_penalty(max_length, alpha)

    def body(t, tokens, states, alive_logp, alive_seq, finished, done):
        top_logp, parent, token, candidates, new_states, is_end = _expand(
            step, tokens, states, alive_logp, alive_seq, t, end_id
        )
        alive = _next_alive(top_logp, parent, token, candidates, new_states, is_end, in_width)
        new_finished = _next_finished(finished, top_logp, candidates, is_end, beam_width, t, alpha)
        active = tf.logical_not(done) & (t < max_length)  # (B,): frozen rows keep everything

        def keep(new, old):
            return tf.where(tf.reshape(active, [-1] + [1] * (len(new.shape) - 1)), new, old)

        beam_active = tf.repeat(active, beams)[:, None]
        alive_logp, alive_seq = keep(alive[0], alive_logp), keep(alive[1], alive_seq)
        states = [tf.where(beam_active, new, old) for new, old in zip(alive[2], states)]
        tokens = tf.where(beam_active[:, 0], alive[3], tokens)
        finished = tuple(keep(new, old) for new, old in zip(new_finished, finished))
        worst_kept = tf.reduce_min(tf.where(in_width, finished[0], float("inf")), axis=1)
        done = done | (worst_kept > alive_logp[:, 0] / bound_penalty)
        return t + 1, tokens, states, alive_logp, alive_seq, finished, done

    def running(t, *rest):
        return tf.reduce_any(tf.logical_not(rest[-1]) & (t < max_length))

    initial = (
        tf.constant(0),
        tf.fill([batch * beams], start_id),
        [tf.repeat(s, beams, axis=0) for s in states],  # (B·K, S): beam k of row b at b·K + k
        tf.where(slots == 0, 0.0, _NEG_INF) + tf.zeros([batch, 1]),  # one live beam, or step 1 holds K copies
        tf.fill([batch, beams, longest], -1),
        (tf.fill([batch, beams], _NEG_INF), tf.fill([batch, beams], _NEG_INF), tf.fill([batch, beams, longest], -1)),
        tf.zeros([batch], tf.bool),
    )
    _, _, _, alive_logp, alive_seq, finished, _ = tf.while_loop(running, body, initial)
    return _beam_result(alive_logp, alive_seq, finished, alpha, end_id)


# --- a Seq2Seq model's string-in, string-out signatures ---


def _source_encoder(model):
    """(B,) strings -> encoder states, failing on characters outside the source vocabulary."""
    code_to_id, _ = char_tables(model.source_vocabulary)
    size = tf.shape(code_to_id)[0]

    def encode(source):
        codes = tf.strings.unicode_decode(source, "UTF-8")  # ragged (B, None)
        flat = codes.flat_values
        known = (flat >= 0) & (flat < size)
        ids = tf.where(known, tf.gather(code_to_id, tf.clip_by_value(flat, 0, size - 1)), -1)
        check = tf.debugging.assert_non_negative(
            ids, message="source holds a character outside the source vocabulary of the model"
        )
        with tf.control_dependencies([check]):
            ids = codes.with_flat_values(ids + model.FIRST_CHARACTER_ID).to_tensor(model.PAD_ID)
        return model.encode_source(ids)

    return encode


def _model_step(model):
    """The decoder step, with padding and start ruled out as outputs."""
    forbidden = np.zeros(model.target_vocab_size, np.float32)
    forbidden[[model.PAD_ID, model.START_ID]] = -np.inf
    forbidden = tf.constant(forbidden)

    def step(tokens, states):
        logits, states = model.decoder_step(tokens, states)
        return tf.cast(logits, tf.float32) + forbidden, states

    return step


def _texts(model, token_ids):
    chars = tf.constant([b""] * model.FIRST_CHARACTER_ID + [ch.encode("utf-8") for ch in model.target_vocabulary])
    return tf.strings.reduce_join(tf.where(token_ids >= 0, tf.gather(chars, tf.maximum(token_ids, 0)), ""), axis=1)


def _spec(name, dtype):
    return tf.TensorSpec([None], dtype, name=name)


def _make_decoder(model, extra_specs, core):
    """A signature function `(source, max_length, *extra) -> dict` and its input signature."""
    encode, step = _source_encoder(model), _model_step(model)
    tokens = {"start_id": model.START_ID, "end_id": model.END_ID, "vocab_size": model.target_vocab_size}

    def decode(source, max_length, *extra):
        names = [spec.name for spec in extra_specs]
        asserts = generation_asserts(max_length=max_length, **dict(zip(names, extra)))
        source, max_length, *extra = passed_through(asserts, source, max_length, *extra)
        out = core(step, encode(source), max_length=max_length, **tokens, **dict(zip(names, extra)))
        return {"text": _texts(model, out["token_ids"]), **out}

    signature = [_spec("source", tf.string), _spec("max_length", tf.int32), *extra_specs]
    return decode, signature


def endpoints(model):
    """The decoding signatures of a Seq2Seq model: name -> (function, input signature).

    | signature | inputs, all (B,) | outputs |
    |---|---|---|
    | greedy | source string, max_length int32 | text, token_ids, log_prob |
    | sample | source, max_length, temperature float32, top_k int32, seed int64 | text, token_ids, log_prob |
    | beam_search | source, max_length, beam_width int32, alpha float32 | text, token_ids, log_prob, score |
    """
    check_tensorflow_backend("zoo.decoding", _WHY)

    def greedy_core(step, states, **kwargs):
        zeros = tf.zeros_like(kwargs["max_length"])
        return sample_ids(
            step, states, temperature=tf.cast(zeros, tf.float32), top_k=zeros, seed=tf.cast(zeros, tf.int64), **kwargs
        )

    sample_specs = [_spec("temperature", tf.float32), _spec("top_k", tf.int32), _spec("seed", tf.int64)]
    beam_specs = [_spec("beam_width", tf.int32), _spec("alpha", tf.float32)]
    return {
        "greedy": _make_decoder(model, [], greedy_core),
        "sample": _make_decoder(model, sample_specs, sample_ids),
        "beam_search": _make_decoder(model, beam_specs, beam_search_ids),
    }


# --- in-process decoding: the very functions the SavedModel serves ---

_COMPILED = {}
_WHY = "decoding is TensorFlow graphs (`tf.while_loop`), the very functions the SavedModel's signatures serve"


def _compiled(model, name):
    key = (id(model), name)
    if key not in _COMPILED:
        function, signature = endpoints(model)[name]
        # The model is kept in the value so its id cannot be reused by another model.
        _COMPILED[key] = (model, tf.function(function, input_signature=signature, autograph=False))
    return _COMPILED[key][1]


def _run(model, name, sources, max_length, **per_row):
    if isinstance(sources, str):
        raise TypeError(f"`sources` must be a list of strings, not one string. Received: sources={sources!r}")
    check_generation_arguments(max_length=max_length, **{arg: value for arg, (value, _) in per_row.items()})
    batch = len(sources)
    inputs = [tf.constant(list(sources), tf.string), tf.fill([batch], tf.constant(max_length, tf.int32))]
    inputs += [tf.fill([batch], tf.constant(value, dtype)) for value, dtype in per_row.values()]
    out = {key: value.numpy() for key, value in _compiled(model, name)(*inputs).items()}
    out["text"] = [text.decode("utf-8") for text in out["text"]]
    return out


def greedy(model, sources, max_length=DEFAULT_MAX_LENGTH):
    """Greedy decoding of each source string; returns the `greedy` signature's outputs as NumPy."""
    return _run(model, "greedy", sources, max_length)


def sample(model, sources, temperature=1.0, top_k=0, seed=0, max_length=DEFAULT_MAX_LENGTH):
    """Temperature / top-k sampling, deterministic for a seed; the `sample` signature's outputs."""
    per_row = {"temperature": (temperature, tf.float32), "top_k": (top_k, tf.int32), "seed": (seed, tf.int64)}
    return _run(model, "sample", sources, max_length, **per_row)


def beam_search(model, sources, beam_width=4, alpha=0.6, max_length=DEFAULT_MAX_LENGTH):
    """Beam search with length penalty α; the `beam_search` signature's outputs as NumPy."""
    return _run(model, "beam_search", sources, max_length, beam_width=(beam_width, tf.int32), alpha=(alpha, tf.float32))
