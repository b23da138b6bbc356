"""The one time loop every zoo recurrent layer runs on.

A cell supplies two pieces of math: `project_inputs`, applied to all time steps
at once (one large matmul, outside the loop), and `call(projected_t, states)`,
one step of the recurrence. `RecurrentLayer` owns everything else: the loop,
masks, initial and final states, `return_sequences`/`return_state`,
`go_backwards`, and serialization of the flat config.
"""

import keras
from keras import ops

__all__ = ["RecurrentLayer", "run_time_loop"]


def _tf_time_loop(step, inputs_tm, mask_tm, states, first_output):
    """Time loop on the TensorFlow backend: `tf.while_loop` + TensorArray.

    `keras.ops.scan` on TensorFlow requires the per-step output to have the
    carry's structure, which would store every state at every step; this loop
    stores only the outputs and exports to a SavedModel that stock TF Serving
    runs (no Python control flow, no XLA).
    """
    import tensorflow as tf

    steps = tf.shape(inputs_tm)[0]
    xs = tf.TensorArray(inputs_tm.dtype, size=steps).unstack(inputs_tm)
    ms = None if mask_tm is None else tf.TensorArray(tf.bool, size=steps).unstack(mask_tm)
    outputs = tf.TensorArray(first_output.dtype, size=steps)

    def body(t, prev_output, states, outputs):
        output, new_states = step(xs.read(t), states)
        if ms is not None:
            keep = ms.read(t)[:, None]  # (B, 1): masked steps keep the previous output and state
            output = tf.where(keep, output, prev_output)
            new_states = [tf.where(keep, new, old) for new, old in zip(new_states, states)]
        return t + 1, output, list(new_states), outputs.write(t, output)

    _, last_output, final_states, outputs = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), first_output, list(states), outputs),
        swap_memory=True,
    )
    return outputs.stack(), last_output, final_states


def _scan_time_loop(step, inputs_tm, mask_tm, states, first_output):
    """Time loop on the other backends through `keras.ops.scan` (JAX: lax.scan)."""

    def body(carry, xs):
        prev_output, states = carry
        x_t, keep_t = xs if mask_tm is not None else (xs, None)
        output, new_states = step(x_t, states)
        if keep_t is not None:
            keep = ops.expand_dims(keep_t, -1)
            output = ops.where(keep, output, prev_output)
            new_states = [ops.where(keep, new, old) for new, old in zip(new_states, states)]
        return (output, list(new_states)), output

    xs = inputs_tm if mask_tm is None else (inputs_tm, mask_tm)
    (last_output, final_states), outputs = ops.scan(body, (first_output, list(states)), xs)
    return outputs, last_output, final_states


def run_time_loop(step, inputs, states, output_size, mask=None, go_backwards=False):
    """Runs `step` over the time axis of batch-major `inputs`.

    Args:
        step: `step(x_t, states) -> (output_t, new_states)`, `x_t` of shape (B, K).
        inputs: (B, T, K) tensor, already projected by the cell.
        states: list of (B, S_i) tensors.
        output_size: width of `output_t`.
        mask: optional (B, T) boolean tensor; masked steps leave state and
            output unchanged, as in Keras's built-in recurrent layers.
        go_backwards: process the time axis in reverse (outputs stay reversed,
            as in Keras).

    Returns:
        `(outputs (B, T, H), last_output (B, H), final_states)`.
    """
    inputs_tm = ops.transpose(inputs, (1, 0, 2))  # (T, B, K)
    mask_tm = None if mask is None else ops.transpose(ops.cast(mask, "bool"), (1, 0))
    if go_backwards:
        inputs_tm = ops.flip(inputs_tm, 0)
        mask_tm = None if mask_tm is None else ops.flip(mask_tm, 0)
    first_output = ops.zeros((ops.shape(inputs)[0], output_size), dtype=inputs.dtype)
    loop = _tf_time_loop if keras.backend.backend() == "tensorflow" else _scan_time_loop
    outputs_tm, last_output, final_states = loop(step, inputs_tm, mask_tm, states, first_output)
    return ops.transpose(outputs_tm, (1, 0, 2)), last_output, list(final_states)


class RecurrentLayer(keras.layers.Layer):
    """Base of every zoo recurrent layer: a cell run over time.

    Subclasses build their cell in `__init__` from their own arguments and
    list those arguments in `get_config` (flat, like `keras.layers.LSTM`).

    Args:
        cell: a zoo cell (`project_inputs`, `call`, `state_size`, `output_size`).
        return_sequences: return the output at every step, (B, T, H), instead
            of the last one, (B, H).
        return_state: also return the final states, `[output, *states]`.
        go_backwards: process the sequence in reverse (also what
            `keras.layers.Bidirectional` flips for its backward copy).

    Call arguments:
        sequences: (B, T, I) tensor.
        initial_state: optional list of (B, S_i) tensors; zeros (or the cell's
            learned initial state) when omitted.
        mask: optional (B, T) boolean tensor.
    """

    # Never stateful: state is a value passed in and out, nothing is stored between
    # calls. `keras.layers.Bidirectional` reads both attributes from the layer it wraps.
    stateful = False
    states = None

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.supports_masking = True

    @property
    def units(self):
        return self.cell.units

    def build(self, input_shape):
        self.cell.build(input_shape)

    def get_initial_state(self, batch_size):
        return self.cell.get_initial_state(batch_size)

    def _check_initial_state(self, initial_state):
        sizes = list(self.cell.state_size)
        if len(initial_state) != len(sizes):
            raise ValueError(
                f"{self.__class__.__name__} expects {len(sizes)} initial state tensor(s) "
                f"of widths {sizes}. Received: {len(initial_state)} tensor(s)."
            )

    def call(self, sequences, initial_state=None, mask=None, training=None):
        if initial_state is None:
            states = self.get_initial_state(ops.shape(sequences)[0])
        else:
            initial_state = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            self._check_initial_state(initial_state)
            states = [ops.cast(s, self.compute_dtype) for s in initial_state]
        projected = self.cell.project_inputs(sequences)  # (B, T, K): the only input matmul
        outputs, last_output, final_states = run_time_loop(
            self.cell, projected, states, self.cell.output_size, mask=mask, go_backwards=self.go_backwards
        )
        result = outputs if self.return_sequences else last_output
        return [result, *final_states] if self.return_state else result

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        out = (batch, steps, self.cell.output_size) if self.return_sequences else (batch, self.cell.output_size)
        if not self.return_state:
            return out
        return (out, *[(batch, size) for size in self.cell.state_size])  # a tuple, as Keras's RNN returns

    def compute_mask(self, sequences, mask=None):
        if not self.return_sequences:
            return [None] * (1 + len(self.cell.state_size)) if self.return_state else None
        output_mask = mask
        if self.return_state:
            return [output_mask] + [None] * len(self.cell.state_size)
        return output_mask

    def get_config(self):
        return {
            **super().get_config(),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
        }
