"""An orthogonal recurrent cell: expRNN (Lezcano-Casado & Martínez-Rubio 2019), with modReLU.

The recurrent matrix is W = exp(A − Aᵀ), the matrix exponential of a skew-symmetric matrix, so it is
orthogonal whatever value the trainable A takes: gradient steps on A never leave the orthogonal group and
no retraction or projection is needed. An orthogonal W neither shrinks nor grows h through the recurrent
matmul, which is why gradients survive the 1,000-step lags of the copying task.

`keras.ops` has no matrix exponential on every backend, so `expm` below is written in it: scaling and
squaring around a Taylor polynomial. W is computed once per call of the layer, not per step.
"""

import contextlib
import math

import keras
import numpy as np
from keras import initializers, ops

from zoo.layers._cell import GatedCell, project
from zoo.layers._loop import RecurrentLayer

__all__ = ["expm", "skew", "HenaffInit", "ExpRNNCell", "ExpRNN"]

# Taylor degree and the norm the argument is scaled below: the truncation error is at most
# 0.5^13 / 13! ≈ 2e-14 relative, far below float32's rounding, so float32 rounding decides the accuracy.
_TAYLOR_DEGREE = 12
_SCALED_NORM = 0.5
# Squarings are applied under a condition up to this many times (a static count keeps the graph the same on
# every backend and differentiable by each one's autodiff): enough for ‖A‖₁ up to 0.5·2^16.
_MAX_SQUARINGS = 16


def skew(matrix):
    """A − Aᵀ."""
    return matrix - ops.transpose(matrix)


def expm(matrix):
    """exp(M) of a square matrix by scaling and squaring: exp(M) = (T₁₂(M / 2^s))^(2^s), T₁₂ the Taylor
    polynomial of degree 12, s the least integer with ‖M‖₁ / 2^s ≤ 0.5.

    Differentiable on every backend (the squarings are `where`s over a fixed count, not a data-dependent
    loop). Accurate to rounding for the skew-symmetric matrices of `ExpRNNCell`, whose eigenvalues lie on the
    imaginary axis; not meant for matrices whose exponential is ill-conditioned.
    """
    size = ops.shape(matrix)[-1]
    identity = ops.eye(size, dtype=matrix.dtype)
    norm = ops.max(ops.sum(ops.abs(matrix), axis=0))  # ‖M‖₁
    squarings = ops.clip(ops.ceil(ops.log2(ops.maximum(norm, 1e-30) / _SCALED_NORM)), 0, _MAX_SQUARINGS)
    scaled = matrix / ops.power(ops.cast(2.0, matrix.dtype), ops.stop_gradient(squarings))
    # Horner: I + X(I + X/2(I + X/3(...)))
    result = identity
    for k in range(_TAYLOR_DEGREE, 0, -1):
        result = identity + ops.matmul(scaled, result) / float(k)
    for i in range(_MAX_SQUARINGS):
        result = ops.where(i < squarings, ops.matmul(result, result), result)
    return result


@keras.saving.register_keras_serializable(package="zoo")
class HenaffInit(keras.initializers.Initializer):
    """The initial A of `ExpRNNCell` whose skew part A − Aᵀ is block diagonal with 2×2 blocks
    [[0, θ], [−θ, 0]], θ ~ U[−π, π] (Henaff, Szlam & LeCun 2016, as in expRNN): W = exp(A − Aᵀ) starts as a
    set of planar rotations by random angles. With an odd width the last unit starts as a fixed point (W = 1).

    Args:
        seed: integer seed of the angles; None draws from Keras's global seed.
    """

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        rows, cols = shape
        if rows != cols:
            raise ValueError(f"HenaffInit initializes a square matrix. Received: shape={tuple(shape)}")
        # NumPy's global generator when unseeded: `keras.utils.set_random_seed` seeds it, and the draw works
        # wherever Keras initializes a variable (also lazily, inside a traced call).
        rng = np.random.default_rng(self.seed if self.seed is not None else np.random.randint(2**31))
        matrix = np.zeros((rows, cols))
        index = np.arange(rows // 2) * 2
        # θ at (2k, 2k + 1); A − Aᵀ then holds θ above and −θ below the diagonal of block k.
        matrix[index, index + 1] = rng.uniform(-math.pi, math.pi, size=len(index))
        return ops.convert_to_tensor(matrix, dtype=dtype)

    def get_config(self):
        return {"seed": self.seed}



def _initializer(name, identifier, also=""):
    """`keras.initializers.get`, with a ValueError that names the argument `name`."""
    try:
        return initializers.get(identifier)
    except ValueError:
        raise ValueError(f"`{name}` must be {also}a Keras initializer name, config or instance, such as "
                         f"'glorot_uniform'. Received: {name}={identifier!r}") from None


@keras.saving.register_keras_serializable(package="zoo")
class ExpRNNCell(GatedCell):
    """One step of expRNN with the real modReLU.

        W    = exp(A − Aᵀ)                                         (orthogonal; once per call)
        z(t) = x(t)·V + h(t−1)·W
        h(t) = modReLU(z(t)) = sign(z)·relu(|z| + b)                (elementwise)

    modReLU (Arjovsky et al. 2016) keeps the sign of each unit and shrinks its magnitude by −b (zero when
    |z| ≤ −b): a nonlinearity that does not saturate, so it passes W's norm-preserving gradient on while b
    learns how much of each unit to forget.

    Weights: `kernel` V (I, H), `recurrent_parameter` A (H, H), of which only A − Aᵀ matters, and the
    modReLU `bias` b (H,). `recurrent_kernel` is not a weight here: it is W, computed from A (see
    `recurrent_matrix`).

    Args:
        units: width H of h.
        use_bias: learn b; without it b = 0 and modReLU is the identity (a linear orthogonal RNN).
        kernel_initializer: for V.
        recurrent_initializer: for A: "henaff" (`HenaffInit`, the paper's) or any Keras initializer.
        bias_initializer: for b (zeros).
    """

    gates = 1

    def __init__(self, units, use_bias=True, kernel_initializer="glorot_uniform", recurrent_initializer="henaff",
                 bias_initializer="zeros", **kwargs):
        if recurrent_initializer == "henaff":
            recurrent_initializer = HenaffInit()
        kernel_initializer = _initializer("kernel_initializer", kernel_initializer)
        recurrent_initializer = _initializer("recurrent_initializer", recurrent_initializer, "'henaff' or ")
        bias_initializer = _initializer("bias_initializer", bias_initializer)
        super().__init__(units, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer, **kwargs)
        self._fixed_weights = None

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel",
                                      initializer=self.kernel_initializer)
        self.recurrent_parameter = self.add_weight(shape=(self.units, self.units), name="recurrent_parameter",
                                                   initializer=self.recurrent_initializer)
        self.bias = (self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer)
                     if self.use_bias else None)

    @property
    def recurrent_kernel(self):
        """W = exp(A − Aᵀ), the orthogonal recurrent matrix."""
        return self.recurrent_matrix()

    def recurrent_matrix(self):
        """W = exp(A − Aᵀ), computed in float32 at least (the orthogonality test holds W to 1e-5)."""
        parameter = ops.convert_to_tensor(self.recurrent_parameter)
        dtype = "float32" if parameter.dtype in ("float16", "bfloat16") else parameter.dtype
        return ops.cast(expm(skew(ops.cast(parameter, dtype))), self.compute_dtype)

    @contextlib.contextmanager
    def fixed_recurrent_matrix(self):
        """A scope in which every step reads one W, computed on entry: the exponential is worth one
        evaluation per sequence, not one per step (the loop calls `step_weights` at every step)."""
        previous = self._fixed_weights
        self._fixed_weights = self._step_weights()
        try:
            yield
        finally:
            self._fixed_weights = previous

    def project_inputs(self, inputs):
        """x·V for many time steps at once; modReLU's bias acts after the recurrent sum, not here."""
        return project(inputs, self.kernel)

    def _step_weights(self):
        return [self.recurrent_matrix()] + ([ops.convert_to_tensor(self.bias)] if self.use_bias else [])

    def step_weights(self):
        return self._fixed_weights if self._fixed_weights is not None else self._step_weights()

    def step_forward(self, projected, states, weights):
        z = projected + ops.matmul(states[0], weights[0])  # (B, H)
        if len(weights) == 1:
            return [z], []
        h = ops.sign(z) * ops.relu(ops.abs(z) + weights[1])
        return [h], []  # `step_backward` reads h(t): its sign and zeros are z's where modReLU lets z through

    # -- hand-written derivatives for the TensorFlow loop (see zoo.layers._fused) --
    fused_residual_count = 0
    fused_shares_preactivation = True

    def supports_fused(self):
        return True

    def step_backward(self, d_states, residuals, weights):
        from zoo.layers._fused import times_transposed  # TensorFlow only, like the caller

        (h,) = residuals
        (d_h,) = d_states
        if len(weights) == 1:
            d_z = d_h
            extras = []
        else:
            # Where modReLU is active, h = z + b·sign(z): ∂h/∂z = 1 and ∂h/∂b = sign(z) = sign(h); elsewhere 0.
            d_z = ops.where(h != 0, d_h, ops.zeros_like(d_h))
            extras = [ops.sum(d_h * ops.sign(h), axis=0)]
        return d_z, d_z, [times_transposed(d_z, weights[0])], extras

    def get_config(self):
        return super().get_config()


_CELL_ARGS = ("units", "use_bias", "kernel_initializer", "recurrent_initializer", "bias_initializer")


@keras.saving.register_keras_serializable(package="zoo")
class ExpRNN(RecurrentLayer):
    """expRNN over a sequence; see `ExpRNNCell` for the equations.

    Args:
        units, use_bias, *_initializer: as `ExpRNNCell`.
        return_sequences, return_state, go_backwards: as `RecurrentLayer`.

    Call returns (B, H) or (B, T, H); with `return_state`, `[output, h]`.

    Raises:
        ValueError: if `units` is not a positive integer, or an initializer is neither a Keras initializer
            nor ("recurrent_initializer" only) "henaff".
    """

    def __init__(
        self,
        units,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="henaff",
        bias_initializer="zeros",
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        **kwargs,
    ):
        cell_args = {name: value for name, value in locals().items() if name in _CELL_ARGS}
        cell = ExpRNNCell(dtype=kwargs.get("dtype"), name="cell", **cell_args)
        super().__init__(cell, return_sequences, return_state, go_backwards, **kwargs)

    def call(self, sequences, initial_state=None, mask=None, training=None):
        with self.cell.fixed_recurrent_matrix():
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self):
        cell_config = self.cell.get_config()
        return {**super().get_config(), **{name: cell_config[name] for name in _CELL_ARGS}}

