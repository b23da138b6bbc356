"""Real-time recurrent learning (Williams & Zipser 1989) and its rank-one approximation UORO (Tallec & Ollivier 2017).

A recurrent cell maps its state s(t−1) and input x(t) to s(t) = F(s(t−1), x(t); θ), with s the concatenation of
the cell's states (h for the Elman net, h and c for the LSTM). RTRL carries the sensitivity M(t) = ∂s(t)/∂θ
forward, one step at a time,

    M(t) = ∂F/∂s(t−1) · M(t−1) + ∂F/∂θ,        M(0) = ∂s(0)/∂θ  (zero, or the identity block of a learned s(0))

and the gradient of a step's loss l(t) reaches θ as ∂l(t)/∂s(t) · M(t): no unrolled history, so the weights can
change at every step of an endless stream. The two Jacobians of one step come from TensorFlow's differentiation of
the cell's own `call` (`project_inputs` then one step), so the equations live once, in the cell. With S state units
and P weights, M holds S·P numbers (O(H³)) and the product costs S²·P (O(H⁴)) per step.

UORO keeps M(t) ≈ s̃ θ̃ᵀ, rank one, unbiased in expectation over random signs ν:

    s̃ ← ρ₀ ∂F/∂s · s̃ + ρ₁ ν,        θ̃ ← θ̃ / ρ₀ + νᵀ ∂F/∂θ / ρ₁,
    ρ₀ = √(‖θ̃‖ / ‖∂F/∂s · s̃‖),      ρ₁ = √(‖νᵀ ∂F/∂θ‖ / ‖ν‖),

one forward-mode product and one backward pass per step: O(P) time and memory, the cost of a step of BPTT.

The readout (`head`, e.g. a Dense layer on the cell's output, the first state) has no recurrence: its gradient is
the ordinary one of the current step.
"""

import numpy as np
import tensorflow as tf

__all__ = ["StepJacobians", "rtrl_gradients", "uoro_gradients", "uoro_draws", "OnlineLearner", "TruncatedBPTTLearner",
           "METHODS"]

METHODS = ("rtrl", "uoro")
_EPSILON = 1e-7  # keeps UORO's rescaling finite when s̃ or θ̃ is zero (the first step)


class StepJacobians:
    """One step of `cell` and its derivatives, with the states flattened to one (B, S) tensor.

    Args:
        cell: a built zoo cell (`project_inputs`, `call(projected, states)`, `state_size`,
            `get_initial_state`); its output must be its first state, as for every zoo cell.
        head: a built layer mapping the cell's output to the loss's input.
        loss: `loss(outputs, targets) -> (B,)` per-sequence loss of one step.
    """

    def __init__(self, cell, head, loss):
        self.cell, self.head, self.loss = cell, head, loss
        self.sizes = [int(size) for size in cell.state_size]
        self.weights = list(cell.trainable_weights)
        self.head_weights = list(head.trainable_weights)
        # The backend's own variables: TensorFlow's vectorized `jacobian` does not take Keras's wrappers.
        self._sources = [getattr(w, "value", w) for w in self.weights]
        self.shapes = [tuple(w.shape) for w in self.weights]
        self.parameters = int(sum(np.prod(shape) for shape in self.shapes))
        # Compiled once per shape: an eager vectorized Jacobian re-traces its loop body at every call.
        self.step = tf.function(self._step, reduce_retracing=True)
        self.loss_grads = tf.function(self._loss_grads, reduce_retracing=True)

    def _forward(self, x_t, state):
        """s(t) from s(t−1) = `state` (B, S) and x(t) (B, I)."""
        _, new = self.cell.call(self.cell.project_inputs(x_t), tf.split(state, self.sizes, axis=-1))
        return tf.concat(new, axis=-1)  # (B, S)

    def _flat(self, jacobians, batch):
        """Per-weight Jacobians (B, S, *shape) -> (B, S, P)."""
        return tf.concat([tf.reshape(j, (batch, sum(self.sizes), -1)) for j in jacobians], axis=-1)

    def initial(self, batch):
        """s(0) (B, S) and M(0) = ∂s(0)/∂θ (B, S, P): nonzero only for a learned initial state."""
        with tf.GradientTape() as tape:
            state = tf.concat(self.cell.get_initial_state(batch), axis=-1)
        jacobians = tape.jacobian(state, self._sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return state, self._flat(jacobians, batch)

    def _step(self, x_t, state):
        """`(s(t), ∂F/∂s(t−1) (B, S, S), ∂F/∂θ (B, S, P))`."""
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(state)
            new = self._forward(x_t, state)
        j_state = tape.batch_jacobian(new, state)
        j_weights = tape.jacobian(new, self._sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        del tape
        return new, j_state, self._flat(j_weights, tf.shape(state)[0])

    def _loss_grads(self, state, y_t):
        """The step loss l(t), averaged over the batch, its gradient ∂l/∂s(t) (B, S) and its gradients of the head."""
        with tf.GradientTape() as tape:
            tape.watch(state)
            output = tf.split(state, self.sizes, axis=-1)[0]
            loss = tf.reduce_mean(self.loss(self.head(output), y_t))  # mean over the batch
        d_state, *d_head = tape.gradient(loss, [state, *self.head_weights],
                                         unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, d_state, d_head

    def unflatten(self, flat):
        """(P,) -> one tensor per cell weight."""
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        return [tf.reshape(part, shape) for part, shape in zip(tf.split(flat, sizes), self.shapes)]


def _check_sequences(inputs, targets):
    if len(inputs.shape) != 3 or inputs.shape[:2] != targets.shape[:2]:
        raise ValueError("`inputs` must be (B, T, I) and `targets` (B, T, ...) with the same B and T. "
                         f"Received: inputs.shape={tuple(inputs.shape)}, targets.shape={tuple(targets.shape)}")


def rtrl_gradients(cell, head, loss, inputs, targets):
    """Exact RTRL over whole sequences with the weights held fixed: the gradient of Σ_t mean_b l(t).

    Args:
        cell, head, loss: as `StepJacobians`.
        inputs: (B, T, I); targets: (B, T, ...), the step targets `loss` reads.

    Returns:
        `(total loss, gradients of the cell's trainable weights, gradients of the head's)`, the lists in
        `cell.trainable_weights` / `head.trainable_weights` order.
    """
    inputs, targets = tf.convert_to_tensor(inputs), tf.convert_to_tensor(targets)
    _check_sequences(inputs, targets)
    steps = StepJacobians(cell, head, loss)
    state, sensitivity = steps.initial(inputs.shape[0])
    total, d_cell = 0.0, tf.zeros((steps.parameters,), state.dtype)
    d_head = [tf.zeros_like(w) for w in steps.head_weights]
    for t in range(inputs.shape[1]):
        state, j_state, j_weights = steps.step(inputs[:, t], state)
        sensitivity = tf.matmul(j_state, sensitivity) + j_weights  # (B, S, P)
        loss_t, d_state, d_head_t = steps.loss_grads(state, targets[:, t])
        d_cell += tf.einsum("bs,bsp->p", d_state, sensitivity)
        d_head = [a + b for a, b in zip(d_head, d_head_t)]
        total += loss_t
    return total, steps.unflatten(d_cell), d_head


class _UORO:
    """UORO's rank-one sensitivity s̃ θ̃ᵀ per sequence, with one random-sign draw per step."""

    def __init__(self, steps, seed):
        self.steps = steps
        self.rng = tf.random.Generator.from_seed(seed)
        self.advance = tf.function(self._advance, reduce_retracing=True)

    def start(self, state):
        batch = tf.shape(state)[0]
        return tf.zeros_like(state), tf.zeros((batch, self.steps.parameters), state.dtype)

    def _advance(self, x_t, state, carried):
        """s(t) and the new (s̃, θ̃) from s(t−1) = `state` and the carried (s̃, θ̃)."""
        s_tilde, theta_tilde = carried
        nu = tf.cast(2 * self.rng.uniform(tf.shape(state), 0, 2, dtype=tf.int32) - 1, state.dtype)  # ±1, (B, S)
        with tf.autodiff.ForwardAccumulator(state, s_tilde) as accumulator:
            with tf.GradientTape() as tape:
                new = self.steps._forward(x_t, state)
                projected = tf.reduce_sum(nu * new, axis=-1)  # (B,): νᵀ s(t) per sequence
            moved = accumulator.jvp(new, unconnected_gradients=tf.UnconnectedGradients.ZERO)  # ∂F/∂s · s̃ (B, S)
        # νᵀ ∂F/∂θ per sequence (each row has its own ν, so one summed backward pass would mix them): B passes.
        jacobians = tape.jacobian(projected, self.steps._sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        nu_j = tf.concat([tf.reshape(j, (tf.shape(state)[0], -1)) for j in jacobians], axis=-1)  # (B, P)
        rho0 = tf.sqrt((tf.norm(theta_tilde, axis=-1) + _EPSILON) / (tf.norm(moved, axis=-1) + _EPSILON))[:, None]
        rho1 = tf.sqrt((tf.norm(nu_j, axis=-1) + _EPSILON) / (tf.norm(nu, axis=-1) + _EPSILON))[:, None]
        return new, (rho0 * moved + rho1 * nu, theta_tilde / rho0 + nu_j / rho1)

    @staticmethod
    def gradient(d_state, carried, per_row=False):
        """∂l/∂s · s̃ θ̃ᵀ summed over the batch, (P,), or per sequence, (B, P)."""
        s_tilde, theta_tilde = carried
        rows = tf.reduce_sum(d_state * s_tilde, axis=-1, keepdims=True) * theta_tilde  # (B, P)
        return rows if per_row else tf.reduce_sum(rows, axis=0)


def uoro_gradients(cell, head, loss, inputs, targets, seed=0):
    """UORO's estimate of `rtrl_gradients` (same arguments and returns; the head's part is exact).

    `seed` draws the random signs: averaged over seeds the estimate approaches the exact gradient.
    """
    inputs, targets = tf.convert_to_tensor(inputs), tf.convert_to_tensor(targets)
    _check_sequences(inputs, targets)
    steps = StepJacobians(cell, head, loss)
    uoro = _UORO(steps, seed)
    state, _ = steps.initial(inputs.shape[0])
    carried = uoro.start(state)
    total, d_cell = 0.0, tf.zeros((steps.parameters,), state.dtype)
    d_head = [tf.zeros_like(w) for w in steps.head_weights]
    for t in range(inputs.shape[1]):
        state, carried = uoro.advance(inputs[:, t], state, carried)
        loss_t, d_state, d_head_t = steps.loss_grads(state, targets[:, t])
        d_cell += uoro.gradient(d_state, carried)
        d_head = [a + b for a, b in zip(d_head, d_head_t)]
        total += loss_t
    return total, steps.unflatten(d_cell), d_head


def uoro_draws(cell, head, loss, inputs, targets, draws, seed=0):
    """`draws` independent UORO estimates of the cell's gradient on one sequence, computed as one batch.

    Args:
        inputs: (1, T, I); targets: (1, T, ...); the rest as `uoro_gradients`.

    Returns:
        (draws, P) NumPy array, the cell's weights flattened in `cell.trainable_weights` order, each row an
        estimate of what `rtrl_gradients` returns for the sequence.
    """
    if inputs.shape[0] != 1:
        raise ValueError(f"`inputs` must hold one sequence, (1, T, I). Received: inputs.shape={inputs.shape}")
    inputs = tf.repeat(tf.convert_to_tensor(inputs), draws, axis=0)
    targets = tf.repeat(tf.convert_to_tensor(targets), draws, axis=0)
    steps = StepJacobians(cell, head, loss)
    uoro = _UORO(steps, seed)
    state, _ = steps.initial(draws)
    carried = uoro.start(state)
    estimates = tf.zeros((draws, steps.parameters), state.dtype)
    for t in range(inputs.shape[1]):
        state, carried = uoro.advance(inputs[:, t], state, carried)
        _, d_state, _ = steps.loss_grads(state, targets[:, t])
        estimates += uoro.gradient(d_state * draws, carried, per_row=True)  # the batch mean divided by `draws`
    return estimates.numpy()


class OnlineLearner:
    """Trains `cell` and `head` online on an endless stream: one step in, the weights updated every `update_every`.

    The state and the sensitivities are carried from step to step forever (no episode, no history kept);
    gradients of the last `update_every` steps are summed, divided by `update_every`, and applied. After an
    update the carried sensitivities describe the old weights, the usual approximation of online RTRL, small
    when the steps are.

    Args:
        cell, head, loss: as `StepJacobians`.
        optimizer: a Keras optimizer.
        method: "rtrl" (exact sensitivities) or "uoro".
        update_every: steps between weight updates (k).
        batch_size: parallel streams (B).
        seed: UORO's random signs.

    Raises:
        ValueError: `method` is not one of `METHODS` or `update_every` is not a positive integer.
    """

    def __init__(self, cell, head, loss, optimizer, method="rtrl", update_every=1, batch_size=1, seed=0):
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}. Received: method={method!r}")
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"`update_every` must be a positive integer. Received: update_every={update_every!r}")
        self.steps = StepJacobians(cell, head, loss)
        self.optimizer, self.method, self.update_every = optimizer, method, update_every
        self.variables = self.steps.weights + self.steps.head_weights
        self._uoro = _UORO(self.steps, seed) if method == "uoro" else None
        self.reset(batch_size)
        self._step = tf.function(self._advance, reduce_retracing=True)

    def reset(self, batch_size):
        """Back to the initial state, the sensitivities of the current weights, no pending gradient."""
        self.state, sensitivity = self.steps.initial(batch_size)
        self.carried = sensitivity if self._uoro is None else self._uoro.start(self.state)
        if not hasattr(self, "_pending"):
            self._pending = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self.variables]
            self._apply = tf.function(self._apply_pending)  # eager Keras optimizer steps cost ~0.1 s each
        for pending in self._pending:
            pending.assign(tf.zeros_like(pending))
        self.count = 0

    def _advance(self, x_t, y_t, state, carried):
        if self._uoro is None:
            state, j_state, j_weights = self.steps.step(x_t, state)
            carried = tf.matmul(j_state, carried) + j_weights  # (B, S, P)
            loss, d_state, d_head = self.steps.loss_grads(state, y_t)
            d_cell = tf.einsum("bs,bsp->p", d_state, carried)
        else:
            state, carried = self._uoro._advance(x_t, state, carried)
            loss, d_state, d_head = self.steps.loss_grads(state, y_t)
            d_cell = self._uoro.gradient(d_state, carried)
        for pending, grad in zip(self._pending, [*self.steps.unflatten(d_cell), *d_head]):
            pending.assign_add(grad)
        outputs = self.steps.head(tf.split(state, self.steps.sizes, axis=-1)[0])
        return loss, outputs, state, carried

    def _apply_pending(self):
        self.optimizer.apply([p / self.update_every for p in self._pending], self.variables)
        for pending in self._pending:
            pending.assign(tf.zeros_like(pending))

    def step(self, x_t, y_t):
        """Reads x(t) (B, I), scores its output against y(t); returns `(loss, outputs)` of this step as NumPy."""
        loss, outputs, self.state, self.carried = self._step(
            tf.convert_to_tensor(x_t, self.state.dtype), tf.convert_to_tensor(y_t), self.state, self.carried)
        self.count += 1
        if self.count == self.update_every:
            self._apply()
            self.count = 0
        return float(loss), np.asarray(outputs)


class TruncatedBPTTLearner:
    """The contrast to `OnlineLearner`, with its `step` interface: truncated BPTT on the same stream.

    It keeps the last `window` inputs and targets; every `window` steps it backpropagates through them from the
    state carried in from the previous window (a value: the gradient stops there) and updates the weights.

    Args:
        cell, head, loss, optimizer, batch_size: as `OnlineLearner`.
        window: steps backpropagated through, and between updates.
    """

    def __init__(self, cell, head, loss, optimizer, window, batch_size=1):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"`window` must be a positive integer. Received: window={window!r}")
        self.steps = StepJacobians(cell, head, loss)
        self.optimizer, self.window = optimizer, window
        self.variables = self.steps.weights + self.steps.head_weights
        self.state, _ = self.steps.initial(batch_size)
        self.inputs, self.targets = [], []
        self._update = tf.function(self._window_update, reduce_retracing=True)

    def _window_update(self, inputs, targets, state):
        """Inputs (W, B, I), targets (W, B, ...) from `state`: applies the window's mean-loss gradient."""
        with tf.GradientTape() as tape:
            losses, outputs = [], []
            for t in range(inputs.shape[0]):
                state = self.steps._forward(inputs[t], state)
                outputs.append(self.steps.head(tf.split(state, self.steps.sizes, axis=-1)[0]))
                losses.append(tf.reduce_mean(self.steps.loss(outputs[-1], targets[t])))
            loss = tf.add_n(losses) / len(losses)
        self.optimizer.apply(tape.gradient(loss, self.variables), self.variables)
        return tf.stack(losses), tf.stack(outputs), state

    def step(self, x_t, y_t):
        """Reads x(t), y(t); returns `(loss, outputs)` of the steps of the window it just closed, else None."""
        self.inputs.append(np.asarray(x_t, self.state.dtype.as_numpy_dtype))
        self.targets.append(np.asarray(y_t))
        if len(self.inputs) < self.window:
            return None
        losses, outputs, self.state = self._update(np.stack(self.inputs), np.stack(self.targets), self.state)
        self.inputs, self.targets = [], []
        return losses.numpy(), outputs.numpy()
