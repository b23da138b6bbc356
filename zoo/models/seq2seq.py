"""Character sequence-to-sequence model: embedding → recurrent encoder → recurrent decoder → logits.

Ids, shared by source and target: 0 pads, 1 starts and 2 ends a target
sequence, and character i of a vocabulary has id i + 3. Sources are right
padded with 0 and masked; the decoder reads the target shifted right behind
the start token and learns to emit it followed by the end token.

Two ways to batch targets of unequal lengths: `Seq2Seq.prepare_batch` pads
with 0 and returns loss weights; `end_padded_batch` pads with the end token,
which then absorbs (after END the decoder emits END), so every position is a
real target and a plain unweighted loss trains it (as `training.loop` does).
"""

import keras
import numpy as np
from keras import ops

from zoo.layers.bidirectional import _reversal_indices
from zoo.layers.encoder_decoder import RecurrentDecoder, RecurrentEncoder, check_cell

__all__ = ["Seq2Seq", "end_padded_batch"]


def _check_vocabulary(name, vocabulary):
    if not isinstance(vocabulary, str) or len(vocabulary) < 1 or len(set(vocabulary)) != len(vocabulary):
        raise ValueError(
            f"`{name}` must be a string of at least one character, each once. Received: {name}={vocabulary!r}"
        )
    return vocabulary


def _encode(vocabulary, text, name):
    index = {ch: i + Seq2Seq.FIRST_CHARACTER_ID for i, ch in enumerate(vocabulary)}
    unknown = sorted({ch for ch in text if ch not in index})
    if unknown:
        raise ValueError(f"{name} text holds characters outside the {name} vocabulary: {unknown!r}")
    return [index[ch] for ch in text]


def _pad(rows, width=None, fill=0):
    longest = max((len(r) for r in rows), default=0)
    width = longest if width is None else width
    if longest > width:
        raise ValueError(f"A sequence of {longest} ids does not fit the width asked for. Received: width={width}")
    out = np.full((len(rows), width), fill, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def end_padded_batch(source_vocabulary, target_vocabulary, sources, targets, source_width=None, target_width=None):
    """Strings -> `((source_ids, target_in), target_out)`, NumPy int32, for an unweighted loss.

    Sources are padded with 0 (masked, as in `prepare_batch`); `target_in` =
    START + target and `target_out` = target + END, both filled up to the
    width with END, so after its end token the decoder reads END and must
    emit END again. Fixed widths (`source_width`; `target_width`, at least
    the longest target + 1) keep one shape for every batch, so a
    `tf.function` step traces once; None fits the batch's longest row.

    Raises:
        ValueError: a character outside its vocabulary, or a row longer than its width.
    """
    end = Seq2Seq.END_ID
    source_ids = _pad([_encode(source_vocabulary, s, "source") for s in sources], source_width)
    encoded = [_encode(target_vocabulary, t, "target") for t in targets]
    target_in = _pad([[Seq2Seq.START_ID, *t] for t in encoded], target_width, fill=end)
    target_out = _pad([[*t, end] for t in encoded], target_width, fill=end)
    return (source_ids, target_in), target_out


@keras.saving.register_keras_serializable(package="zoo")
class Seq2Seq(keras.Model):
    """Maps a string to a string, one character at a time.

    Args:
        source_vocabulary: the characters a source may hold.
        target_vocabulary: the characters a target may hold.
        units: width H of the encoder (each direction) and of the decoder.
        cell: name of a zoo recurrent layer, for encoder and decoder.
        bidirectional_encoder: read the source in both directions; the two
            final states are bridged to the decoder's width (see `bridge`).
        embedding_dim: width of each character's embedding.
        bridge: "dense" (learned linear map of both directions' states,
            default) or "sum"; see `RecurrentEncoder`.
        cell_options: extra arguments for both recurrent layers.
        reverse_source: the encoder reads each source reversed within its
            length (Sutskever et al. 2014): the first source characters, on
            which the first target characters mostly depend, come last, next
            to the decoder. Callers still pass sources in reading order.

    Call arguments:
        inputs: `(source_ids (B, S), target_ids (B, T))`; `target_ids` are the
            decoder's inputs, the targets shifted right behind START_ID (see
            `prepare_batch`). Padding (0) is masked on both sides.

    Returns:
        Logits (B, T, V) over the target ids, V = len(target_vocabulary) + 3.
    """

    PAD_ID, START_ID, END_ID = 0, 1, 2
    FIRST_CHARACTER_ID = 3

    def __init__(
        self,
        source_vocabulary,
        target_vocabulary,
        units=128,
        cell="gru",
        bidirectional_encoder=False,
        embedding_dim=32,
        bridge="dense",
        cell_options=None,
        reverse_source=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_vocabulary = _check_vocabulary("source_vocabulary", source_vocabulary)
        self.target_vocabulary = _check_vocabulary("target_vocabulary", target_vocabulary)
        self.units = units
        self.cell = check_cell(cell)
        self.bidirectional_encoder = bool(bidirectional_encoder)
        self.embedding_dim = embedding_dim
        self.bridge = bridge
        self.cell_options = dict(cell_options or {})
        self.reverse_source = bool(reverse_source)
        dtype = self.dtype_policy
        source_size = self.FIRST_CHARACTER_ID + len(source_vocabulary)
        self.source_embedding = keras.layers.Embedding(source_size, embedding_dim, name="source_embedding", dtype=dtype)
        self.target_embedding = keras.layers.Embedding(
            self.target_vocab_size, embedding_dim, name="target_embedding", dtype=dtype
        )
        self.encoder = RecurrentEncoder(
            cell, units, bidirectional=bidirectional_encoder, bridge=bridge, cell_options=cell_options,
            name="encoder", dtype=dtype,
        )
        self.decoder = RecurrentDecoder(
            cell, units, self.target_vocab_size, cell_options=cell_options, name="decoder", dtype=dtype
        )

    @property
    def target_vocab_size(self):
        return self.FIRST_CHARACTER_ID + len(self.target_vocabulary)

    def build(self, input_shape):
        source_shape, target_shape = input_shape
        self.source_embedding.build(source_shape)
        self.target_embedding.build(target_shape)
        self.encoder.build((*source_shape, self.embedding_dim))
        self.decoder.build((*target_shape, self.embedding_dim))

    def encode_source(self, source_ids, training=None):
        """(B, S) source ids, 0-padded on the right -> the decoder's initial states."""
        mask = ops.not_equal(source_ids, self.PAD_ID)
        if self.reverse_source:  # right padding stays in place, so the mask is unchanged
            source_ids = ops.take_along_axis(source_ids, _reversal_indices(mask), axis=1)
        return self.encoder(self.source_embedding(source_ids), mask=mask, training=training)

    def decoder_step(self, tokens, states):
        """(B,) previous target ids and states -> ((B, V) logits, new states)."""
        return self.decoder.step(self.target_embedding(tokens), states)

    def call(self, inputs, training=None):
        source_ids, target_ids = inputs
        states = self.encode_source(source_ids, training=training)
        mask = ops.not_equal(target_ids, self.PAD_ID)
        return self.decoder(self.target_embedding(target_ids), initial_state=states, mask=mask, training=training)

    def prepare_batch(self, sources, targets):
        """Strings -> `(source_ids, target_in, target_out, weights)`, NumPy, right-padded.

        `target_in` = START + target, `target_out` = target + END, `weights`
        1.0 where `target_out` is real (use as sample weights of the loss).
        """
        source_ids = _pad([_encode(self.source_vocabulary, s, "source") for s in sources])
        encoded = [_encode(self.target_vocabulary, t, "target") for t in targets]
        target_in = _pad([[self.START_ID, *t] for t in encoded])
        target_out = _pad([[*t, self.END_ID] for t in encoded])
        return source_ids, target_in, target_out, (target_out != self.PAD_ID).astype(np.float32)

    def decode_ids(self, ids):
        """Target ids -> text; stops at the end token, skips padding and start."""
        first, chars = self.FIRST_CHARACTER_ID, []
        for i in ids:
            if int(i) == self.END_ID:
                break
            if int(i) >= first:
                chars.append(self.target_vocabulary[int(i) - first])
        return "".join(chars)

    def serving_endpoints(self):
        """`zoo.export.Exportable`: `serving_default` (teacher-forced logits) and `zoo.decoding`'s decoders."""
        import tensorflow as tf

        from zoo import decoding

        def logits(source_ids, target_ids):
            return {"logits": tf.cast(self((source_ids, target_ids), training=False), tf.float32)}

        ids = [
            tf.TensorSpec([None, None], tf.int32, name="source_ids"),
            tf.TensorSpec([None, None], tf.int32, name="target_ids"),
        ]
        return {"serving_default": (logits, ids), **decoding.endpoints(self)}

    def warmup_requests(self):
        """`zoo.export.Exportable`: one small request per signature, shipped as TF Serving's warmup file."""
        source = np.array([self.source_vocabulary[0].encode("utf-8")], dtype=object)
        decode = {"source": source, "max_length": np.array([2], np.int32)}
        return [
            ("serving_default", {"source_ids": np.full((1, 2), 3, np.int32), "target_ids": np.ones((1, 2), np.int32)}),
            ("greedy", decode),
            ("sample", {**decode, "temperature": np.array([1.0], np.float32), "top_k": np.array([0], np.int32),
                        "seed": np.array([0], np.int64)}),
            ("beam_search", {**decode, "beam_width": np.array([2], np.int32), "alpha": np.array([0.6], np.float32)}),
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "source_vocabulary": self.source_vocabulary,
            "target_vocabulary": self.target_vocabulary,
            "units": self.units,
            "cell": self.cell,
            "bidirectional_encoder": self.bidirectional_encoder,
            "embedding_dim": self.embedding_dim,
            "bridge": self.bridge,
            "cell_options": self.cell_options,
            "reverse_source": self.reverse_source,
        }
