"""Hand-written backpropagation through time for the TensorFlow loop.

Differentiating a `tf.while_loop` makes TensorFlow stack every intermediate
of every step and, in the gradient loop, add each step's share of the
recurrent kernel's gradient into an accumulator: one small (H, K) matmul and
one add per step. A cell that knows its own derivatives does better:

    forward:   new_states, residuals = cell.step_forward(p_t, states, weights)
    backward:  dP_t, dR_t, d_prev_states, d_extras = cell.step_backward(d_states, residuals, weights)

(plus `supports_fused()`, `fused_residual_count` and
`fused_shares_preactivation`, True when dR_t is dP_t), where `step_forward` is
the cell's one statement of its equations, the step its `call` runs too (see
`zoo.layers._cell.GatedCell`), here given `weights = cell.step_weights()`
= [U, *extras] as inputs of the custom gradient; the residuals the backward
step reads are h(t) and what the forward step returned; p_t is the step's
input projection x(t)·W + b and R_t = h(t−1)·U the recurrent matmul (dR_t
its gradient). The gradient loop then runs only the step's own math and one
dR_t·Uᵀ; the kernel's gradient is one large matmul after the loop, U's
gradient = Σ_t h(t−1)ᵀ·dR_t = H_prevᵀ·dR over all steps at once, the way
cuDNN batches weight gradients. Cells whose output is their first state (h)
and whose recurrent matmul reads h(t−1) use it: Elman, LSTM, GRU (reset_after).
"""

import tensorflow as tf
from keras import activations

from zoo.layers._cell import derivative_from_output

__all__ = ["supports_fused", "gradient_may_be_taken", "fused_time_loop", "output_grad", "times_transposed"]

# dy·f'(z) from y = f(z) in one TensorFlow kernel where one exists: the gradient loop's
# small steps are bound by the number of ops more than by arithmetic.
_OUTPUT_GRADS = {
    activations.tanh: lambda y, dy: tf.raw_ops.TanhGrad(y=y, dy=dy),
    activations.sigmoid: lambda y, dy: tf.raw_ops.SigmoidGrad(y=y, dy=dy),
    activations.relu: lambda y, dy: tf.raw_ops.ReluGrad(gradients=dy, features=y),  # y > 0 iff z > 0
}


def output_grad(activation, y, dy):
    """dy·f'(z) for y = f(z) (`activation` must have a `derivative_from_output`)."""
    fused = _OUTPUT_GRADS.get(activation)
    return fused(y, dy) if fused else dy * derivative_from_output(activation)(y)


def times_transposed(a, b):
    """a·bᵀ without materialising bᵀ (the gradient loop's dR_t·Uᵀ)."""
    return tf.matmul(a, b, transpose_b=True)


def gradient_may_be_taken():
    """Whether a gradient tape is recording (eagerly or while tracing a training step).

    Without one the forward needs no residuals, and a graph without the custom
    gradient is what a SavedModel for serving should hold: TensorFlow cannot
    serialize a gradient function that captures the forward loop's TensorArrays.
    """
    try:
        from tensorflow.python.eager import record
    except ImportError:  # a TensorFlow without this module: keep TensorFlow's own differentiation
        return False
    return record.could_possibly_record()


def supports_fused(cell):
    """Whether `cell` brings its own derivatives (some configurations do not)."""
    check = getattr(cell, "supports_fused", None)
    return bool(check and check())


def _zeros_if_none(grad, like):
    return tf.zeros_like(like) if grad is None else grad


def _stack(values, steps, sequence_shape):
    """`values.stack()`, also for zero steps (a chunk of a sequence shorter than the chunk
    count), where a TensorArray that was never written has no element shape to stack."""
    return tf.cond(steps > 0, values.stack, lambda: tf.zeros(sequence_shape, values.dtype))


def _forward(cell, projected, states, weights):
    """The recurrence: outputs (T, B, H), final states, and the per-step residual TensorArrays."""
    steps = tf.shape(projected)[0]
    outputs = tf.TensorArray(projected.dtype, size=steps)
    residuals = [tf.TensorArray(projected.dtype, size=steps) for _ in range(cell.fused_residual_count)]

    def body(t, states, outputs, residuals):
        new_states, step_residuals = cell.step_forward(projected[t], states, weights)
        residuals = [ta.write(t, value) for ta, value in zip(residuals, step_residuals)]
        return t + 1, list(new_states), outputs.write(t, new_states[0]), residuals

    _, final_states, outputs, residuals = tf.while_loop(
        lambda t, *_: t < steps, body, (0, list(states), outputs, residuals),
        maximum_iterations=steps, parallel_iterations=32, swap_memory=True,
    )
    sequence_shape = tf.concat([[steps], tf.shape(states[0])], axis=0)
    return _stack(outputs, steps, sequence_shape), final_states, residuals


def _backward(cell, d_outputs, d_final_states, outputs, residuals, weights, projected_shape):
    """The gradient loop, last step first: dP and dR (T, B, K), d(initial states), d(extra weights).

    The cell's residuals at step t are that step's output h(t) followed by what it stored.
    """
    steps = tf.shape(d_outputs)[0]
    d_projected = tf.TensorArray(d_outputs.dtype, size=steps)
    d_recurrent = tf.TensorArray(d_outputs.dtype, size=steps)
    d_extras = [tf.zeros_like(w) for w in weights[1:]]

    def body(t, d_states, d_projected, d_recurrent, d_extras):
        d_states = [d_states[0] + d_outputs[t], *d_states[1:]]
        step_residuals = [outputs[t]] + [ta.read(t) for ta in residuals]
        d_p, d_r, d_prev, step_extras = cell.step_backward(d_states, step_residuals, weights)
        if not cell.fused_shares_preactivation:
            d_recurrent = d_recurrent.write(t, d_r)
        d_extras = [total + part for total, part in zip(d_extras, step_extras)]
        return t - 1, list(d_prev), d_projected.write(t, d_p), d_recurrent, d_extras

    _, d_initial, d_projected, d_recurrent, d_extras = tf.while_loop(
        lambda t, *_: t >= 0, body, (steps - 1, list(d_final_states), d_projected, d_recurrent, d_extras),
        maximum_iterations=steps, parallel_iterations=32, swap_memory=True,
    )
    d_projected = _stack(d_projected, steps, projected_shape)
    # Elman and the LSTM add p_t and R_t before anything else, so dR_t is dP_t and is not stored twice.
    d_recurrent = d_projected if cell.fused_shares_preactivation else _stack(d_recurrent, steps, projected_shape)
    return d_projected, d_recurrent, d_initial, d_extras


def fused_time_loop(cell, projected, states):
    """Runs `cell` over time-major `projected` (T, B, K) from `states`, with hand-written gradients.

    Returns:
        `(outputs (T, B, H), final_states)`; outputs are the first state at each step.
    """
    weights = list(cell.step_weights())
    count = len(states)

    @tf.custom_gradient
    def recurrence(projected, *states_and_weights):
        states, weights = list(states_and_weights[:count]), list(states_and_weights[count:])
        outputs, final_states, residuals = _forward(cell, projected, states, weights)

        def gradient(d_outputs, *d_final_states):
            d_outputs = _zeros_if_none(d_outputs, outputs)
            d_final_states = [_zeros_if_none(d, s) for d, s in zip(d_final_states, final_states)]
            d_projected, d_recurrent, d_initial, d_extras = _backward(
                cell, d_outputs, d_final_states, outputs, residuals, weights, tf.shape(projected)
            )
            width = tf.shape(outputs)[-1]
            steps = tf.shape(outputs)[0]
            previous_h = tf.concat([states[0][None], outputs], axis=0)[:steps]  # h(t−1) at every step
            d_kernel = tf.matmul(
                tf.reshape(previous_h, (-1, width)), tf.reshape(d_recurrent, (-1, tf.shape(d_recurrent)[-1])),
                transpose_a=True,
            )
            return (d_projected, *d_initial, d_kernel, *d_extras)

        return (outputs, *final_states), gradient

    outputs, *final_states = recurrence(projected, *states, *weights)
    return outputs, final_states

