"""What every gated cell shares: validated config, the stacked gate weights,
the hoisted input projection and zero initial states."""

import contextlib
import threading

import keras
import numpy as np
from keras import activations, initializers, ops

from zoo._checks import check_positive_int

__all__ = ["GatedCell", "get_activation", "matmul", "project", "derivative_from_output"]

# id(kernel) -> the kernel's column blocks, while `taking_blocks` is open in this thread.
_column_blocks = threading.local()


@contextlib.contextmanager
def taking_blocks(by_kernel):
    """Inside: `matmul` multiplies each kernel in `by_kernel` (id(kernel) -> its column blocks) block by block,
    besides the kernels an enclosing scope gave blocks for; outside again, as it was."""
    outer = getattr(_column_blocks, "by_kernel", None)
    _column_blocks.by_kernel = {**(outer or {}), **by_kernel}
    try:
        yield
    finally:
        _column_blocks.by_kernel = outer


def blocks_taken():
    """id(kernel) -> column blocks of the kernels `matmul` takes block by block here (empty outside any scope)."""
    return getattr(_column_blocks, "by_kernel", None) or {}


def get_activation(name, identifier):
    """`keras.activations.get`, with a ValueError that names the argument `name`."""
    try:
        return activations.get(identifier)
    except ValueError:
        raise ValueError(
            f"`{name}` must be a Keras activation name or callable, such as 'tanh' or 'relu'. "
            f"Received: {name}={identifier!r}"
        ) from None


def derivative_from_output(activation):
    """f'(z) in terms of y = f(z) for the activations where that exists, else None.

    Hand-written gradients (`zoo.layers._fused`) then keep y, which the forward
    pass produces anyway, instead of z.
    """
    table = {
        activations.tanh: lambda y: 1.0 - y * y,
        activations.sigmoid: lambda y: y * (1.0 - y),
        activations.relu: lambda y: ops.cast(y > 0, y.dtype),
        activations.linear: ops.ones_like,
    }
    return table.get(activation)


def matmul(x, kernel, bias=None):
    """x·kernel (+ bias); inside `taking_blocks` (which `zoo.layers._loop.column_blocks` opens), one product and
    bias add per block of the kernel's columns.

    Each output column is the same dot product either way, and each block's bias add follows its product as the
    whole kernel's does (TensorFlow may fuse the pair), so the numbers are the same (see `column_blocks`).
    """
    blocks = blocks_taken().get(id(kernel))
    if blocks is None:
        product = ops.matmul(x, kernel)
        return product if bias is None else product + bias
    products = [ops.matmul(x, ops.cast(block, x.dtype)) for block in blocks]
    if len(blocks) == 1:
        return products[0] if bias is None else products[0] + bias
    if bias is not None:
        ends = np.cumsum([block.shape[-1] for block in blocks])[:-1].tolist()
        products = [product + part for product, part in zip(products, ops.split(bias, ends, axis=-1))]
    return ops.concatenate(products, axis=-1)


def project(inputs, kernel, bias=None):
    """inputs·kernel + bias over the last axis, for any leading axes.

    Written as one 2-D matmul so that TensorFlow's graph optimizer fuses the
    bias add into it (one pass over the wide result instead of two).
    """
    flat = matmul(ops.reshape(inputs, (-1, ops.shape(inputs)[-1])), kernel, bias)
    return ops.reshape(flat, (*ops.shape(inputs)[:-1], ops.shape(kernel)[-1]))


class GatedCell(keras.layers.Layer):
    """A recurrent cell whose input and recurrent weights stack `gates` blocks.

    Weights, in Keras's layout so built-in weights load unchanged:
    `kernel` (I, G·H), `recurrent_kernel` (H, G·H), `bias` (G·H,) (see `bias_shape`).

    Subclasses set `gates` and write their equations once, in
    `step_forward(projected_t, states, weights) -> (new_states, residuals)`,
    with `weights = step_weights()`, the weights a step reads (the recurrent
    kernel first). `call` runs it with the layer's weights; the hand-written
    BPTT (`zoo.layers._fused`) runs it with the weights as inputs of its
    gradient and keeps the residuals, what its `step_backward` reads. They may
    override `bias_initial_value` (e.g. the LSTM's forget-gate bias of 1).
    """

    gates = 1

    def __init__(
        self,
        units,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    @property
    def state_size(self):
        return [self.units]

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], width), name="kernel", initializer=self.kernel_initializer
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width), name="recurrent_kernel", initializer=self.recurrent_initializer
        )
        self.bias = (
            self.add_weight(shape=self.bias_shape(), name="bias", initializer=self.bias_initial_value)
            if self.use_bias
            else None
        )

    def bias_shape(self):
        """(G·H,); a cell with a separate recurrent bias (GRU, reset_after) overrides it."""
        return (self.gates * self.units,)

    def bias_initial_value(self, shape, dtype=None):
        return self.bias_initializer(shape, dtype=dtype)

    def project_inputs(self, inputs):
        """x·W + b for many time steps at once: (T, B, I) -> (T, B, G·H)."""
        return project(inputs, self.kernel, self.bias)

    def step_weights(self):
        return [self.recurrent_kernel]

    def call(self, projected, states):
        """One step, (B, G·H) projected inputs -> `(output, new_states)`; the output is the first state."""
        new_states, _ = self.step_forward(projected, states, self.step_weights())
        return new_states[0], new_states

    def get_initial_state(self, batch_size):
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in self.state_size]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }
