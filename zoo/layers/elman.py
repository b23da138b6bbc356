"""Elman's simple recurrent network (Elman 1990), optionally with a learned initial state."""

import keras
from keras import activations, ops

from zoo.layers._cell import GatedCell, derivative_from_output, get_activation, matmul
from zoo.layers._loop import RecurrentLayer

__all__ = ["ElmanCell", "Elman"]


@keras.saving.register_keras_serializable(package="zoo")
class ElmanCell(GatedCell):
    """One step of an Elman network.

        h(t) = f(W·x(t) + U·h(t−1) + b),    h(0) = 0 or a learned h₀

    `kernel` W (I, H), `recurrent_kernel` U (H, H) and `bias` b (H,) are laid
    out as in `keras.layers.SimpleRNN`, so its weights load unchanged (and,
    with `learn_initial_state=False`, the two layers compute the same thing).

    With `learn_initial_state=True` the cell owns a trainable `initial_state`
    h₀ of shape (H,), shared by every sequence of the batch and trained by
    backpropagation like any other weight. It replaces the zero state only
    when the caller passes no `initial_state`: a state carried over from the
    previous chunk (truncated BPTT, streaming) still wins.

    Args:
        units: width H of h.
        activation: f; any Keras activation name or callable (tanh, relu...).
        learn_initial_state: train h₀ instead of starting from zeros. It
            starts at zeros, so an untrained cell behaves as without it.
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer:
            as `GatedCell`.
    """

    gates = 1

    def __init__(self, units, activation="tanh", learn_initial_state=False, **kwargs):
        super().__init__(units, **kwargs)
        self.activation = get_activation("activation", activation)
        self.learn_initial_state = bool(learn_initial_state)

    def build(self, input_shape):
        super().build(input_shape)
        if self.learn_initial_state:
            self.initial_state = self.add_weight(shape=(self.units,), name="initial_state", initializer="zeros")

    def get_initial_state(self, batch_size):
        if not self.learn_initial_state:
            return super().get_initial_state(batch_size)
        zeros = ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
        # Broadcast by addition: works for a symbolic batch size on every backend.
        return [zeros + ops.cast(self.initial_state, self.compute_dtype)]

    def step_forward(self, projected, states, weights):
        (recurrent_kernel,) = weights
        h = self.activation(projected + matmul(states[0], recurrent_kernel))  # (B, H)
        return [h], []  # `step_backward` reads h(t), the output, which is kept anyway

    # -- hand-written derivatives for the TensorFlow loop (see zoo.layers._fused) --
    fused_residual_count = 0
    fused_shares_preactivation = True

    def supports_fused(self):
        return derivative_from_output(self.activation) is not None

    def step_backward(self, d_states, residuals, weights):
        from zoo.layers._fused import output_grad, times_transposed  # TensorFlow only, like the caller

        (h,) = residuals
        d_z = output_grad(self.activation, h, d_states[0])
        return d_z, d_z, [times_transposed(d_z, weights[0])], []

    def get_config(self):
        return {
            **super().get_config(),
            "activation": activations.serialize(self.activation),
            "learn_initial_state": self.learn_initial_state,
        }


_CELL_ARGS = (
    "units",
    "activation",
    "learn_initial_state",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
)


@keras.saving.register_keras_serializable(package="zoo")
class Elman(RecurrentLayer):
    """Elman network over a sequence; see `ElmanCell` for the equation.

    Args:
        units, activation, learn_initial_state, use_bias, *_initializer: as
            `ElmanCell`.
        return_sequences, return_state, go_backwards: as `RecurrentLayer`.

    Call returns (B, H) or (B, T, H); with `return_state`, `[output, h]`.

    Raises:
        ValueError: if `units` is not a positive integer or `activation` is
            not a Keras activation.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        learn_initial_state=False,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        **kwargs,
    ):
        cell_args = {name: value for name, value in locals().items() if name in _CELL_ARGS}
        cell = ElmanCell(dtype=kwargs.get("dtype"), name="cell", **cell_args)
        super().__init__(cell, return_sequences, return_state, go_backwards, **kwargs)

    def get_config(self):
        cell_config = self.cell.get_config()
        return {**super().get_config(), **{name: cell_config[name] for name in _CELL_ARGS}}
