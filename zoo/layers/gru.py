"""Gated recurrent unit (Cho et al. 2014) in both of its conventions."""

import keras
from keras import activations, ops

from zoo.layers._cell import GatedCell, get_activation, matmul, project
from zoo.layers._loop import RecurrentLayer

__all__ = ["GRUCell", "GRU"]


@keras.saving.register_keras_serializable(package="zoo")
class GRUCell(GatedCell):
    """One step of a GRU, in Keras's orientation of the update gate.

        z(t) = σ(W_z·x(t) + U_z·h(t−1) + b_z)
        r(t) = σ(W_r·x(t) + U_r·h(t−1) + b_r)
        ĥ(t) = tanh(W_h·x(t) + r(t) ⊙ (U_h·h(t−1) + b'_h) + b_h)    reset_after=True
        ĥ(t) = tanh(W_h·x(t) + U_h·(r(t) ⊙ h(t−1)) + b_h)           reset_after=False
        h(t) = z(t) ⊙ h(t−1) + (1 − z(t)) ⊙ ĥ(t)

    z is a *keep* gate: z → 1 copies the old state, z → 0 takes the candidate.
    This is Keras's (and cuDNN's) orientation and the one in Cho et al. 2014,
    eq. (7), h = z ⊙ h(t−1) + (1 − z) ⊙ h̃. Other texts (Chung et al. 2014,
    Wikipedia) write h = (1 − z) ⊙ h(t−1) + z ⊙ ĥ, making z an *overwrite*
    gate; that model is the same up to z ↔ 1 − z (negated z weights and
    bias), but its weights do not load here unchanged.

    `reset_after=True` is the cuDNN form and Keras's default: r scales the
    recurrent projection after the matmul, so that matmul is one (H, 3H)
    product per step, and the recurrent bias b' is separate: `bias` has shape
    (2, 3H), row 0 the input bias b, row 1 the recurrent bias b'.
    `reset_after=False` is the paper's form: r scales h(t−1) before U_h, and
    `bias` is (3H,). Gate order in `kernel` (I, 3H), `recurrent_kernel`
    (H, 3H) and `bias` is (z, r, h), as in `keras.layers.GRU`, whose weights
    load unchanged in either convention.

    Args:
        units: width H of h.
        reset_after: where the reset gate applies (see above).
        activation: for ĥ (tanh).
        recurrent_activation: for z and r (sigmoid).
        use_bias, kernel_initializer, recurrent_initializer, bias_initializer:
            as `GatedCell`.
    """

    gates = 3
    gate_names = ("z", "r", "h")  # the blocks of the stacked weights, in order (zoo.diagnostics names them)

    def __init__(self, units, reset_after=True, activation="tanh", recurrent_activation="sigmoid", **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)
        self.activation = get_activation("activation", activation)
        self.recurrent_activation = get_activation("recurrent_activation", recurrent_activation)

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def project_inputs(self, inputs):
        """x·W + b (the input bias, row 0 with reset_after): (T, B, I) -> (T, B, 3H)."""
        bias = self.bias[0] if self.reset_after and self.bias is not None else self.bias
        return project(inputs, self.kernel, bias)

    def step_weights(self):
        if self.reset_after and self.use_bias:
            return [self.recurrent_kernel, self.bias[1]]  # U and the recurrent bias b'
        return [self.recurrent_kernel]

    def step_forward(self, projected, states, weights):
        h_prev, recurrent_kernel = states[0], weights[0]
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)  # (B, H) each
        if self.reset_after:
            inner = matmul(h_prev, recurrent_kernel, weights[1] if len(weights) > 1 else None)  # (B, 3H): one matmul
            u_z, u_r, u_h = ops.split(inner, 3, axis=-1)
            z = self.recurrent_activation(x_z + u_z)
            r = self.recurrent_activation(x_r + u_r)
            candidate = self.activation(x_h + r * u_h)
        else:
            split = 2 * self.units
            u_z, u_r = ops.split(ops.matmul(h_prev, recurrent_kernel[:, :split]), 2, axis=-1)  # (B, H) each
            z = self.recurrent_activation(x_z + u_z)
            r = self.recurrent_activation(x_r + u_r)
            # The second matmul has to wait for r: the price of the paper's form.
            candidate = self.activation(x_h + ops.matmul(r * h_prev, recurrent_kernel[:, split:]))
            u_h = None  # this form has no hand-written backward (see `supports_fused`)
        h = z * h_prev + (1.0 - z) * candidate
        return [h], [z, r, candidate, u_h, h_prev]  # what `step_backward` reads besides h(t)

    # -- hand-written derivatives for the TensorFlow loop (see zoo.layers._fused) --
    fused_residual_count = 5
    fused_shares_preactivation = False  # r scales U_h·h(t−1) + b'_h: dR_h = r ⊙ dP_h

    def supports_fused(self):
        # The paper's form has a second matmul inside the step, after r: not the one-matmul pattern.
        return (self.reset_after and self.activation is activations.tanh
                and self.recurrent_activation is activations.sigmoid)

    def step_backward(self, d_states, residuals, weights):
        from zoo.layers._fused import output_grad, times_transposed  # TensorFlow only, like the caller

        (d_h,) = d_states
        _, z, r, candidate, u_h, h_prev = residuals
        d_zz = output_grad(activations.sigmoid, z, d_h * (h_prev - candidate))
        d_zh = output_grad(activations.tanh, candidate, d_h * (1.0 - z))
        d_zr = output_grad(activations.sigmoid, r, d_zh * u_h)
        d_projected = ops.concatenate([d_zz, d_zr, d_zh], axis=-1)
        d_inner = ops.concatenate([d_zz, d_zr, d_zh * r], axis=-1)
        d_h_prev = times_transposed(d_inner, weights[0]) + d_h * z
        return d_projected, d_inner, [d_h_prev], [ops.sum(d_inner, 0)] if self.use_bias else []

    def get_config(self):
        return {
            **super().get_config(),
            "reset_after": self.reset_after,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
        }


_CELL_ARGS = (
    "units",
    "reset_after",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
)


@keras.saving.register_keras_serializable(package="zoo")
class GRU(RecurrentLayer):
    """GRU over a sequence; see `GRUCell` for the equations and conventions.

    Args:
        units, reset_after, activation, recurrent_activation, use_bias,
            *_initializer: as `GRUCell`.
        return_sequences, return_state, go_backwards: as `RecurrentLayer`.

    Call returns (B, H) or (B, T, H); with `return_state`, `[output, h]`.

    Raises:
        ValueError: if `units` is not a positive integer or an activation is
            not a Keras activation.
    """

    def __init__(
        self,
        units,
        reset_after=True,
        activation="tanh",
        recurrent_activation="sigmoid",
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
        cell = GRUCell(dtype=kwargs.get("dtype"), name="cell", **cell_args)
        super().__init__(cell, return_sequences, return_state, go_backwards, **kwargs)

    def get_config(self):
        cell_config = self.cell.get_config()
        return {**super().get_config(), **{name: cell_config[name] for name in _CELL_ARGS}}
