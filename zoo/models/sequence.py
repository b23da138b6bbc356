"""A recurrent network for the zoo's toy tasks: inputs → recurrent layers → a dense head.

One class covers the paper-sized models (Elman's grammar net, Hinton's 3-unit
adder, the adding-problem nets, the taggers, the timing nets): they differ only
in the cell, the input (real vectors or token ids), whether the head reads
every step or the last one, and the recurrent state they start from.
"""

import keras
import numpy as np
from keras import ops

from zoo._checks import check_non_negative_int
from zoo.layers import Bidirectional, recurrent_layer

__all__ = ["SequenceModel"]


@keras.saving.register_keras_serializable(package="zoo")
class SequenceModel(keras.Model):
    """Maps a sequence to per-step outputs (or one output at the last step).

    Args:
        output_dim: width of the head (logits or regression values).
        units: width of every recurrent layer (per direction).
        cell: name of a zoo recurrent layer ("elman", "gru", "peephole_lstm").
        cell_options: extra arguments for that layer (e.g. `use_peepholes`, `activation`).
        num_layers: recurrent layers stacked.
        vocabulary_size: when set, inputs are (B, T) token ids read through an
            embedding of width `embedding_dim`; else inputs are (B, T, I) floats.
        embedding_dim: embedding width (with `vocabulary_size`).
        bidirectional: wrap every recurrent layer in `zoo.layers.Bidirectional`.
        return_sequences: head on every step (B, T, O), else on the last (B, O).
        initial_state_value: when set, every state starts at this constant
            instead of zeros (Elman 1990: context units start at 0.5).
        output_delay: the head at step t reads the last layer's output of
            step t − output_delay (zeros before the start). Hinton's adder
            has two layers of connections, each taking a time step, so its
            output lags its input by 2 while the hidden state need only hold
            the adder's state.

    Call arguments:
        inputs: (B, T, I) float or (B, T) int tensor.

    Returns:
        (B, T, output_dim) or (B, output_dim), float32.

    Raises:
        ValueError: `initial_state_value` with `bidirectional`, or
            `vocabulary_size` without `embedding_dim`.
    """

    def __init__(
        self,
        output_dim,
        units=128,
        cell="peephole_lstm",
        cell_options=None,
        num_layers=1,
        vocabulary_size=None,
        embedding_dim=None,
        bidirectional=False,
        return_sequences=True,
        initial_state_value=None,
        output_delay=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if initial_state_value is not None and bidirectional:
            raise ValueError(
                "`initial_state_value` applies to one-directional models only. "
                f"Received: initial_state_value={initial_state_value!r}, bidirectional=True"
            )
        if vocabulary_size is not None and not embedding_dim:
            raise ValueError(f"`vocabulary_size` needs `embedding_dim`. Received: embedding_dim={embedding_dim!r}")
        self.output_dim = output_dim
        self.units = units
        self.cell = cell
        self.cell_options = dict(cell_options or {})
        self.num_layers = num_layers
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.bidirectional = bidirectional
        self.return_sequences = return_sequences
        self.initial_state_value = initial_state_value
        check_non_negative_int("output_delay", output_delay)
        if output_delay and not return_sequences:
            raise ValueError(f"`output_delay` needs return_sequences=True. Received: output_delay={output_delay}")
        self.output_delay = output_delay
        self.embedding = (
            keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding") if vocabulary_size else None
        )
        self.recurrent = [self._layer(i) for i in range(num_layers)]
        self.head = keras.layers.Dense(output_dim, name="head", dtype="float32")

    def _layer(self, i):
        last = i == self.num_layers - 1
        layer = recurrent_layer(
            self.cell,
            self.units,
            return_sequences=self.return_sequences or not last,
            name=f"rnn_{i}",
            **self.cell_options,
        )
        return Bidirectional(layer, name=f"birnn_{i}") if self.bidirectional else layer

    def call(self, inputs, training=None):
        x = self.embedding(inputs) if self.embedding is not None else inputs
        for layer in self.recurrent:
            initial = None
            if self.initial_state_value is not None:
                batch = ops.shape(x)[0]
                initial = [ops.full((batch, size), self.initial_state_value, dtype=layer.compute_dtype)
                           for size in layer.cell.state_size]
            x = layer(x, initial_state=initial, training=training)
        if self.output_delay:
            x = ops.pad(x[:, : -self.output_delay], [[0, 0], [self.output_delay, 0], [0, 0]])  # (B, T, H)
        return self.head(x)

    def _serving_input_spec(self):
        import tensorflow as tf

        if self.vocabulary_size:
            return tf.TensorSpec([None, None], tf.int32, name="inputs")
        first = self.recurrent[0].forward_layer if self.bidirectional else self.recurrent[0]
        return tf.TensorSpec([None, None, first.cell.kernel.shape[0]], tf.float32, name="inputs")

    def serving_endpoints(self):
        """`zoo.export.Exportable`: `serving_default`, inputs -> outputs."""
        import tensorflow as tf

        def outputs(inputs):
            return {"outputs": tf.cast(self(inputs, training=False), tf.float32)}

        return {"serving_default": (outputs, [self._serving_input_spec()])}

    def warmup_requests(self):
        """`zoo.export.Exportable`: one batch of two zero steps (TensorFlow optimises a graph on its first run)."""
        spec = self._serving_input_spec()
        shape = [1, 2, *spec.shape[2:]]
        return [("serving_default", {"inputs": np.zeros(shape, spec.dtype.as_numpy_dtype)})]

    def get_config(self):
        return {
            **super().get_config(),
            "output_dim": self.output_dim,
            "units": self.units,
            "cell": self.cell,
            "cell_options": self.cell_options,
            "num_layers": self.num_layers,
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "bidirectional": self.bidirectional,
            "return_sequences": self.return_sequences,
            "initial_state_value": self.initial_state_value,
            "output_delay": self.output_delay,
        }
