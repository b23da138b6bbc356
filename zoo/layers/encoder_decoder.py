"""Encoder–decoder (Sutskever et al. 2014, Cho et al. 2014) from zoo recurrent layers.

The encoder reads the source and hands its final state to the decoder as the
decoder's initial state; the decoder is a language model over the target
conditioned only through that state (no attention):

    s = bridge(final states of encoder(x(1..S)))
    h(t), s(t) = cell(E·y(t−1), s(t−1)),   s(0) = s
    logits(t) = V·h(t) + c

In training the decoder reads the true previous target y(t−1) (teacher
forcing); at inference it reads its own previous choice, one `step` at a time
(see `zoo.decoding`). `step` and the teacher-forced `call` run the same cell
with the same weights, so they agree to float rounding.
"""

import keras
from keras import ops

from zoo._checks import check_one_of, check_positive_int
from zoo.layers import RECURRENT_LAYERS, recurrent_layer
from zoo.layers.bidirectional import Bidirectional

__all__ = ["BRIDGES", "RecurrentDecoder", "RecurrentEncoder", "check_cell"]

BRIDGES = ("dense", "sum")


def check_cell(cell):
    """Raises a ValueError naming `cell` unless it names a zoo recurrent layer."""
    return check_one_of("cell", cell, sorted(RECURRENT_LAYERS))


@keras.saving.register_keras_serializable(package="zoo")
class RecurrentEncoder(keras.layers.Layer):
    """Reads a source sequence; returns the decoder's initial states.

    A zoo recurrent layer, optionally wrapped in the zoo's `Bidirectional`
    (which starts the backward direction at each row's last real step, so
    right-padded sources give each row's unpadded result). A bidirectional
    encoder has two states of each kind, the decoder one; the `bridge` maps
    each pair (→s_i, ←s_i) to one state of width H:

    - "dense" (default): s_i = [→s_i; ←s_i]·B_i + b_i, one linear map per
      state kind (h, and c for an LSTM), no activation so an LSTM's unbounded
      cell state passes unsquashed. It learns how much each direction counts;
      "sum" is the special case B_i = [I; I], b_i = 0.
    - "sum": s_i = →s_i + ←s_i, no parameters.

    A unidirectional encoder passes its final states on unchanged.

    Args:
        cell: name of a zoo recurrent layer ("elman", "gru", "peephole_lstm").
        units: width H of each direction (and of the decoder).
        bidirectional: read the source in both directions.
        bridge: "dense" or "sum"; used only when `bidirectional`.
        return_sequences: also return the encoder's output at every step,
            (B, S, H) or (B, S, 2H) bidirectional, first in the list.
        cell_options: extra arguments for the recurrent layer.

    Call arguments:
        sequences: (B, S, E) embedded source.
        mask: optional (B, S) boolean, True at real steps (right padding).

    Returns:
        The list of decoder initial states, each (B, H) (an LSTM: [h, c]);
        with `return_sequences`, `[outputs, *states]`.

    Raises:
        ValueError: unknown `cell` or `bridge`, `units` not a positive int.
    """

    def __init__(
        self, cell, units, bidirectional=False, bridge="dense", return_sequences=False, cell_options=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.cell = check_cell(cell)
        self.units = check_positive_int("units", units)
        check_one_of("bridge", bridge, BRIDGES)
        self.bidirectional = bool(bidirectional)
        self.bridge = bridge
        self.return_sequences = bool(return_sequences)
        self.cell_options = dict(cell_options or {})
        self.supports_masking = True
        dtype = self.dtype_policy  # sublayers compute in this layer's dtype (float64 for golden tests)
        rnn = recurrent_layer(
            cell, units, return_sequences=self.return_sequences, return_state=True, name="rnn", dtype=dtype,
            **self.cell_options,
        )
        self.state_sizes = list(rnn.cell.state_size)
        self.rnn = Bidirectional(rnn, name="bidirectional") if self.bidirectional else rnn
        self.bridges = (
            [keras.layers.Dense(size, name=f"bridge_{i}", dtype=dtype) for i, size in enumerate(self.state_sizes)]
            if self.bidirectional and bridge == "dense"
            else []
        )

    def build(self, sequences_shape):
        self.rnn.build(sequences_shape)
        for dense, size in zip(self.bridges, self.state_sizes):
            dense.build((None, 2 * size))

    def _bridge(self, states):
        if not self.bidirectional:
            return states
        n = len(self.state_sizes)
        forward, backward = states[:n], states[n:]
        if self.bridge == "sum":
            return [f + b for f, b in zip(forward, backward)]
        return [dense(ops.concatenate([f, b], axis=-1)) for dense, f, b in zip(self.bridges, forward, backward)]

    def call(self, sequences, mask=None, training=None):
        output, *states = self.rnn(sequences, mask=mask, training=training)
        states = self._bridge(states)
        return [output, *states] if self.return_sequences else states

    def compute_output_shape(self, sequences_shape):
        batch = sequences_shape[0]
        states = [(batch, size) for size in self.state_sizes]
        if not self.return_sequences:
            return states
        width = self.units * (2 if self.bidirectional else 1)
        return [(batch, sequences_shape[1], width), *states]

    def compute_mask(self, sequences, mask=None):
        states = [None] * len(self.state_sizes)
        return [mask, *states] if self.return_sequences else states

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "bidirectional": self.bidirectional,
            "bridge": self.bridge,
            "return_sequences": self.return_sequences,
            "cell_options": self.cell_options,
        }


@keras.saving.register_keras_serializable(package="zoo")
class RecurrentDecoder(keras.layers.Layer):
    """A recurrent language model over the target, started from given states.

    Args:
        cell: name of a zoo recurrent layer.
        units: width H (must match the encoder's states).
        vocab_size: number of logits V per step.
        return_state: also return the final states after the last step.
        cell_options: extra arguments for the recurrent layer.

    Call arguments:
        sequences: (B, T, E) embedded decoder inputs: the targets shifted
            right behind a start token (teacher forcing).
        initial_state: list of (B, H) states, from `RecurrentEncoder`.
        mask: optional (B, T) boolean; masked steps keep the state.

    Returns:
        Logits (B, T, V); with `return_state`, `[logits, *final_states]`.

    Raises:
        ValueError: unknown `cell`, `units` or `vocab_size` not a positive int.
    """

    def __init__(self, cell, units, vocab_size, return_state=False, cell_options=None, **kwargs):
        super().__init__(**kwargs)
        self.cell = check_cell(cell)
        self.units = check_positive_int("units", units)
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.return_state = bool(return_state)
        self.cell_options = dict(cell_options or {})
        self.supports_masking = True
        self.rnn = recurrent_layer(
            cell, units, return_sequences=True, return_state=True, name="rnn", dtype=self.dtype_policy,
            **self.cell_options,
        )
        self.head = keras.layers.Dense(vocab_size, name="logits", dtype=self.dtype_policy)

    @property
    def state_sizes(self):
        return list(self.rnn.cell.state_size)

    def build(self, sequences_shape, initial_state_shape=None):
        self.rnn.build(sequences_shape)
        self.head.build((None, self.units))

    def call(self, sequences, initial_state=None, mask=None, training=None):
        outputs, *states = self.rnn(sequences, initial_state=initial_state, mask=mask, training=training)
        logits = self.head(outputs)  # (B, T, V)
        return [logits, *states] if self.return_state else logits

    def step(self, inputs, states):
        """One decoding step: (B, E) embedded previous tokens -> ((B, V) logits, new states).

        The cell's own step, so no one-step time loop runs inside a decoding loop.
        """
        output, new_states = self.rnn.cell(self.rnn.cell.project_inputs(inputs), list(states))
        return self.head(output), list(new_states)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        logits = (*sequences_shape[:2], self.vocab_size)
        if not self.return_state:
            return logits
        return [logits, *[(sequences_shape[0], size) for size in self.state_sizes]]

    def compute_mask(self, sequences, initial_state=None, mask=None):
        return [mask] + [None] * len(self.state_sizes) if self.return_state else mask

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "vocab_size": self.vocab_size,
            "return_state": self.return_state,
            "cell_options": self.cell_options,
        }
