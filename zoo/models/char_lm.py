"""Character-level language model: embedding → stacked recurrent layers → logits.

The Karpathy char-rnn shape. State is a value: `call` takes the recurrent states
and returns the new ones, so truncated BPTT, export and streaming all carry it
explicitly and nothing exported holds per-client state.
"""

import keras
import numpy as np
from keras import ops

from zoo._checks import check_number
from zoo.layers import recurrent_layer

__all__ = ["CharLM"]


@keras.saving.register_keras_serializable(package="zoo")
class CharLM(keras.Model):
    """Predicts the next character at every position.

    Args:
        vocabulary: the model's characters; id i is `vocabulary[i]`.
        embedding_dim: width of each character's embedding.
        units: width of every recurrent layer.
        num_layers: how many recurrent layers are stacked.
        cell: name of a zoo recurrent layer (see `zoo.layers.RECURRENT_LAYERS`).
        cell_options: extra arguments for that layer (e.g. `use_peepholes`).
        dropout: fraction of the units dropped, in training only, from every
            layer's input and from the head's (Zaremba et al. 2014: between
            layers and never on the recurrent connections, so the state each
            step carries is untouched). 0 builds no dropout at all.

    Call arguments:
        token_ids: (B, T) int tensor.
        states: optional list, one entry per layer, of that layer's state list.
        step_mask: optional (B, T) bool; masked steps leave the states unchanged
            (used to feed a batch of prompts of different lengths).

    Returns:
        `(logits (B, T, V), states)` with `states` shaped like the argument.
    """

    def __init__(
        self,
        vocabulary,
        embedding_dim=64,
        units=256,
        num_layers=2,
        cell="peephole_lstm",
        cell_options=None,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(vocabulary) < 2 or len(set(vocabulary)) != len(vocabulary):
            raise ValueError(
                "`vocabulary` must hold at least 2 distinct characters, each once. "
                f"Received: vocabulary={vocabulary!r}"
            )
        self.vocabulary = "".join(vocabulary)
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell = cell
        self.cell_options = dict(cell_options or {})
        self.dropout = check_number("dropout", dropout, low=0, high=1, high_open=True)
        self.embedding = keras.layers.Embedding(len(self.vocabulary), embedding_dim, name="embedding")
        self.recurrent = [
            recurrent_layer(cell, units, return_sequences=True, return_state=True, name=f"rnn_{i}", **self.cell_options)
            for i in range(num_layers)
        ]
        self.head = keras.layers.Dense(len(self.vocabulary), name="logits")
        # None at 0, so a model without dropout holds no seed generator and its saved weights stay as they were.
        self.drop = keras.layers.Dropout(self.dropout, name="dropout") if self.dropout else None

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    @property
    def state_sizes(self):
        """Widths of every state tensor, layer by layer, in `pack_states` order."""
        return [size for layer in self.recurrent for size in layer.cell.state_size]

    def pack_states(self, states):
        """Nested per-layer states -> one (B, sum(state_sizes)) tensor, for serving."""
        return ops.concatenate([s for layer_states in states for s in layer_states], axis=-1)

    def unpack_states(self, packed):
        """Inverse of `pack_states`."""
        flat, start = [], 0
        for size in self.state_sizes:
            flat.append(packed[:, start : start + size])
            start += size
        per_layer = len(self.recurrent[0].cell.state_size)
        return [flat[i : i + per_layer] for i in range(0, len(flat), per_layer)]

    def call(self, token_ids, states=None, step_mask=None, training=None):
        x = self.embedding(token_ids)  # (B, T, E)
        new_states = []
        for i, layer in enumerate(self.recurrent):
            initial = None if states is None else states[i]
            x, *layer_states = layer(self._dropped(x, training), initial_state=initial, mask=step_mask,
                                     training=training)
            new_states.append(layer_states)
        return self.head(self._dropped(x, training)), new_states  # (B, T, V)

    def _dropped(self, x, training):
        return x if self.drop is None else self.drop(x, training=training)

    def step(self, token_ids, states, keep=None):
        """One character for every row, without the recurrent layers' time loops (see `RecurrentLayer.step`).

        Args:
            token_ids: (B,) int tensor.
            states: one entry per layer, of that layer's state list.
            keep: optional (B,) boolean; rows where it is False keep their states.

        Returns:
            `(logits (B, V), states)`: the numbers `call` gives on `token_ids[:, None]`.
        """
        x = self.embedding(token_ids)
        new_states = []
        for layer, layer_states in zip(self.recurrent, states):
            x, layer_states = layer.step(x, layer_states, keep)
            new_states.append(layer_states)
        # Through the head as `call` runs it, on (B, 1, H): a (B, H) input would be another matmul kernel, whose
        # rounding may differ in the last bit, and a seeded stream must not depend on how it was fed.
        return self.head(ops.expand_dims(x, 1))[:, 0], new_states

    def encode(self, text):
        """Text -> list of ids; raises on characters outside the vocabulary."""
        index = {ch: i for i, ch in enumerate(self.vocabulary)}
        unknown = sorted({ch for ch in text if ch not in index})
        if unknown:
            raise ValueError(f"Text holds characters outside the model's vocabulary: {unknown!r}")
        return [index[ch] for ch in text]

    def decode(self, ids):
        return "".join(self.vocabulary[int(i)] for i in ids)

    def serving_endpoints(self):
        """`zoo.export.Exportable`: `serving_default` (token_ids -> logits), `generate`, `generate_bytes` and
        `sample`.

        `generate`, `generate_bytes` and `sample` are `zoo.sampling`'s graphs; `generate` carries the packed state
        (`pack_states`) in and out as numbers, `generate_bytes` as each row's bytes (for REST clients).
        """
        import tensorflow as tf

        from zoo import sampling
        from zoo._checks import passed_through, token_id_asserts

        def logits(token_ids):
            # Checked in the graph: no Python runs on TF Serving, and an embedding wraps negative ids.
            (token_ids,) = passed_through(token_id_asserts("token_ids", token_ids, self.vocab_size), token_ids)
            logits, _ = self(token_ids, training=False)
            return {"logits": tf.cast(logits, tf.float32)}

        token_ids = [tf.TensorSpec([None, None], tf.int32, name="token_ids")]
        return {
            "serving_default": (logits, token_ids),
            "generate": (sampling.make_generate_fn(self), sampling.generate_signature(sum(self.state_sizes))),
            "generate_bytes": (sampling.make_generate_bytes_fn(self), sampling.generate_bytes_signature()),
            "sample": (sampling.make_sample_fn(self), sampling.sample_signature()),
        }

    def warmup_requests(self):
        """`zoo.export.Exportable`: one small request per signature (TensorFlow optimises a graph on its first run)."""
        from zoo import sampling

        one = {
            "prompt": np.array([self.vocabulary[-1].encode("utf-8")], dtype=object),
            "steps": np.array([2], np.int32),
            "temperature": np.array([1.0], np.float32),
            "top_k": np.array([0], np.int32),
            "seed": np.array([0], np.int64),
        }
        zeros = np.zeros((1, sum(self.state_sizes)), np.float32)
        position = {"position": np.array([0], np.int64)}
        state_bytes = np.array([zeros[0].astype("<f4").tobytes()], dtype=object)
        return [
            ("serving_default", {"token_ids": np.zeros((1, 2), np.int32)}),
            ("generate", {**one, "state": zeros, **position}),
            ("generate_bytes", {**one, sampling.STATE_BYTES: state_bytes, **position}),
            ("sample", one),
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "cell_options": self.cell_options,
            "dropout": self.dropout,
        }
