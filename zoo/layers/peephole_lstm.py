"""Long short-term memory with diagonal peephole connections (Gers et al. 2002)."""

import keras
from keras import activations, initializers, ops

from zoo.layers._cell import GatedCell, get_activation, matmul
from zoo.layers._loop import RecurrentLayer

__all__ = ["PeepholeLSTMCell", "PeepholeLSTM"]


@keras.saving.register_keras_serializable(package="zoo")
class PeepholeLSTMCell(GatedCell):
    """One step of a peephole LSTM.

        i(t) = σ(W_i·x(t) + U_i·h(t−1) + p_i ⊙ c(t−1) + b_i)
        f(t) = σ(W_f·x(t) + U_f·h(t−1) + p_f ⊙ c(t−1) + b_f)
        g(t) = tanh(W_c·x(t) + U_c·h(t−1) + b_c)
        c(t) = f(t) ⊙ c(t−1) + i(t) ⊙ g(t)
        o(t) = σ(W_o·x(t) + U_o·h(t−1) + p_o ⊙ c(t) + b_o)
        h(t) = o(t) ⊙ tanh(c(t))

    The output gate peeks at the *new* cell c(t); input and forget gates at the
    old one. Gate order in `kernel`/`recurrent_kernel`/`bias` is (i, f, c, o),
    Keras's, so with `use_peepholes=False` the cell equals `keras.layers.LSTM`
    given the same weights. `peephole` has shape (3, H): rows p_i, p_f, p_o.

    Args:
        units: width H of h and c.
        use_peepholes: add the p ⊙ c terms.
        unit_forget_bias: start the forget-gate bias at 1 so that early in
            training the cell remembers instead of forgetting.
        activation: for g and the cell output (tanh).
        recurrent_activation: for the gates (sigmoid).
        peephole_initializer: zeros by default, so training starts from a
            plain LSTM and grows peepholes where timing needs them.
    """

    gates = 4
    gate_names = ("i", "f", "c", "o")  # the blocks of the stacked weights, in order (zoo.diagnostics names them)

    def __init__(
        self,
        units,
        use_peepholes=True,
        unit_forget_bias=True,
        activation="tanh",
        recurrent_activation="sigmoid",
        peephole_initializer="zeros",
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.use_peepholes = use_peepholes
        self.unit_forget_bias = unit_forget_bias
        self.activation = get_activation("activation", activation)
        self.recurrent_activation = get_activation("recurrent_activation", recurrent_activation)
        self.peephole_initializer = initializers.get(peephole_initializer)

    @property
    def state_size(self):
        return [self.units, self.units]  # h, c

    def build(self, input_shape):
        super().build(input_shape)
        if self.use_peepholes:
            self.peephole = self.add_weight(
                shape=(3, self.units), name="peephole", initializer=self.peephole_initializer
            )

    def bias_initial_value(self, shape, dtype=None):
        bias = self.bias_initializer(shape, dtype=dtype)
        if not self.unit_forget_bias:
            return bias
        h = self.units
        return ops.concatenate([bias[:h], ops.ones((h,), dtype=dtype), bias[2 * h :]])

    def step_weights(self):
        return [self.recurrent_kernel, self.peephole] if self.use_peepholes else [self.recurrent_kernel]

    def step_forward(self, projected, states, weights):
        h_prev, c_prev = states
        recurrent_kernel, peephole = weights if self.use_peepholes else (weights[0], None)
        z_i, z_f, z_c, z_o = ops.split(projected + matmul(h_prev, recurrent_kernel), 4, axis=-1)  # (B, H) each
        if self.use_peepholes:
            z_i, z_f = z_i + peephole[0] * c_prev, z_f + peephole[1] * c_prev
        i, f, g = self.recurrent_activation(z_i), self.recurrent_activation(z_f), self.activation(z_c)
        c = f * c_prev + i * g
        if self.use_peepholes:
            z_o = z_o + peephole[2] * c
        o, tanh_c = self.recurrent_activation(z_o), self.activation(c)
        h = o * tanh_c
        return [h, c], [i, f, g, o, c_prev, c, tanh_c]  # what `step_backward` reads besides h(t)

    # -- hand-written derivatives for the TensorFlow loop (see zoo.layers._fused) --
    fused_residual_count = 7
    fused_shares_preactivation = True

    def supports_fused(self):
        return self.activation is activations.tanh and self.recurrent_activation is activations.sigmoid

    def step_backward(self, d_states, residuals, weights):
        from zoo.layers._fused import output_grad, times_transposed  # TensorFlow only, like the caller

        sigmoid, tanh = activations.sigmoid, activations.tanh
        d_h, d_c = d_states
        _, i, f, g, o, c_prev, c, tanh_c = residuals
        d_zo = output_grad(sigmoid, o, d_h * tanh_c)
        d_c = d_c + output_grad(tanh, tanh_c, d_h * o)
        if self.use_peepholes:
            d_c = d_c + d_zo * weights[1][2]  # o(t) peeks at c(t)
        d_zi = output_grad(sigmoid, i, d_c * g)
        d_zf = output_grad(sigmoid, f, d_c * c_prev)
        d_zc = output_grad(tanh, g, d_c * i)
        d_c_prev = d_c * f
        extras = []
        if self.use_peepholes:
            d_c_prev = d_c_prev + d_zi * weights[1][0] + d_zf * weights[1][1]
            extras = [ops.stack([ops.sum(d_zi * c_prev, 0), ops.sum(d_zf * c_prev, 0), ops.sum(d_zo * c, 0)])]
        d_z = ops.concatenate([d_zi, d_zf, d_zc, d_zo], axis=-1)
        return d_z, d_z, [times_transposed(d_z, weights[0]), d_c_prev], extras

    def get_config(self):
        return {
            **super().get_config(),
            "use_peepholes": self.use_peepholes,
            "unit_forget_bias": self.unit_forget_bias,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "peephole_initializer": initializers.serialize(self.peephole_initializer),
        }


_CELL_ARGS = (
    "units",
    "use_peepholes",
    "unit_forget_bias",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "peephole_initializer",
)


@keras.saving.register_keras_serializable(package="zoo")
class PeepholeLSTM(RecurrentLayer):
    """Peephole LSTM over a sequence; see `PeepholeLSTMCell` for the equations.

    Args:
        units, use_peepholes, unit_forget_bias, activation,
        recurrent_activation, use_bias, *_initializer: as `PeepholeLSTMCell`.
        return_sequences, return_state, go_backwards: as `RecurrentLayer`.

    Call returns (B, H) or (B, T, H); with `return_state`, `[output, h, c]`.
    """

    def __init__(
        self,
        units,
        use_peepholes=True,
        unit_forget_bias=True,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        peephole_initializer="zeros",
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        **kwargs,
    ):
        cell_args = {name: value for name, value in locals().items() if name in _CELL_ARGS}
        cell = PeepholeLSTMCell(dtype=kwargs.get("dtype"), name="cell", **cell_args)
        super().__init__(cell, return_sequences, return_state, go_backwards, **kwargs)

    def get_config(self):
        cell_config = self.cell.get_config()
        return {**super().get_config(), **{name: cell_config[name] for name in _CELL_ARGS}}
