"""Echo state network reservoir (Jaeger 2001) with reservoirpy's update and defaults,
and closed-loop forecasting with a fitted readout."""

import contextlib

import keras
import numpy as np
from keras import activations, ops

from zoo._checks import check_float64_backend, check_non_negative_int, check_number, check_positive_int
from zoo.layers._cell import get_activation, project
from zoo.layers._loop import RecurrentLayer, run_time_loop

__all__ = ["EchoStateCell", "EchoState", "forecast", "closed_loop", "draw_reservoir_weights", "harvest_states"]

# On TensorFlow, W is multiplied as a sparse matrix when at most this fraction of
# its entries is nonzero. TensorFlow's sparse·dense kernel costs several dense
# multiply-adds per nonzero, so the break-even is near reservoirpy's 10%: there,
# on 2 CPU cores, a fit + forecast took 1.4–1.8 s sparse vs 2.7–3.4 s dense at
# 2,000 units (the dense W, 32 MB, streams from memory at every step) and 0.09–0.13
# vs 0.18–0.21 s at 400, but 0.49 vs 0.35–0.44 s at 1,000 and 0.035–0.041 vs
# 0.026–0.027 s at 100 (benchmarks/results/esn.json, esn_sizes.json).
SPARSE_MAX_CONNECTIVITY = 0.1


def _sparse(rng, shape, connectivity, draw):
    """A (rows, cols) float64 matrix with exactly max(1, round(connectivity·rows·cols))
    nonzero entries at uniformly random positions, values from `draw(rng, k)`."""
    size = shape[0] * shape[1]
    k = min(size, max(1, int(round(connectivity * size))))
    matrix = np.zeros(size)
    matrix[rng.choice(size, size=k, replace=False)] = draw(rng, k)
    return matrix.reshape(shape)


def _normal(rng, k):
    return rng.standard_normal(k)


def _bernoulli(rng, k):
    return rng.choice([1.0, -1.0], size=k)


def draw_reservoir_weights(
    units,
    input_dim,
    feedback_dim=0,
    spectral_radius=1.0,
    input_scaling=1.0,
    bias_scaling=1.0,
    feedback_scaling=1.0,
    rc_connectivity=0.1,
    input_connectivity=0.1,
    feedback_connectivity=0.1,
    seed=0,
):
    """The fixed weights of a reservoir, in float64 NumPy and Keras's (in, out) layout.

    As reservoirpy's `Reservoir` (v0.3): W ~ N(0, 1) on a random fraction
    `rc_connectivity` of its entries, rescaled so its spectral radius (largest
    |eigenvalue|, from `numpy.linalg.eigvals` in float64) is `spectral_radius`;
    W_in and W_fb are ±1 (p = 1/2) on a fraction `input_connectivity` /
    `feedback_connectivity`, times `input_scaling` / `feedback_scaling`; the
    bias is ±`bias_scaling` on a fraction `input_connectivity` (reservoirpy
    draws it as an extra input column). Each matrix has its own random stream
    spawned from `seed`, so changing the input width does not change W.

    Returns:
        dict with `kernel` (I, H) = W_inᵀ, `recurrent_kernel` (H, H) = Wᵀ,
        `bias` (H,) and `feedback_kernel` (F, H) = W_fbᵀ.

    Raises:
        ValueError: if the drawn W has spectral radius 0 (too sparse to rescale).
    """
    w_rng, in_rng, bias_rng, fb_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    w = _sparse(w_rng, (units, units), rc_connectivity, _normal)
    radius = float(np.max(np.abs(np.linalg.eigvals(w))))
    if radius <= 1e-12:
        raise ValueError(
            f"The drawn recurrent matrix has spectral radius {radius:.3g} and cannot be rescaled: raise "
            f"`rc_connectivity` or change `seed`. Received: rc_connectivity={rc_connectivity}, seed={seed}"
        )
    w = w * (spectral_radius / radius)
    kernel = input_scaling * _sparse(in_rng, (units, input_dim), input_connectivity, _bernoulli) if input_dim else None
    bias = bias_scaling * _sparse(bias_rng, (units, 1), input_connectivity, _bernoulli)[:, 0]
    feedback = (
        feedback_scaling * _sparse(fb_rng, (units, feedback_dim), feedback_connectivity, _bernoulli)
        if feedback_dim
        else None
    )
    return {
        "kernel": np.zeros((0, units)) if kernel is None else kernel.T,
        "recurrent_kernel": w.T,
        "bias": bias,
        "feedback_kernel": np.zeros((0, units)) if feedback is None else feedback.T,
    }


@keras.saving.register_keras_serializable(package="zoo")
class EchoStateCell(keras.layers.Layer):
    """One step of a leaky echo state reservoir (reservoirpy's "internal" equation).

        x[t+1] = (1 − lr)·x[t] + lr·f(W·x[t] + W_in·u[t+1] + W_fb·y[t] + b)

    Every weight is drawn once in `build` (see `draw_reservoir_weights`) and
    never trained: they are non-trainable Keras weights, so they are saved in
    `.keras` files and restored bit for bit. Layout as elsewhere in the zoo:
    `kernel` (I, H) = W_inᵀ, `recurrent_kernel` (H, H) = Wᵀ, `bias` (H,),
    `feedback_kernel` (F, H) = W_fbᵀ (F = `feedback_dim`, possibly 0).

    Output feedback: with `feedback_dim` F > 0 the last F channels of the input
    are the feedback y[t] (the previous target when teacher forcing, the
    readout's previous prediction when running free); they get their own
    scaling and connectivity and the identity as feedback activation.

    Args:
        units: reservoir size H.
        spectral_radius: exact largest |eigenvalue| of W.
        leak_rate: lr in (0, 1]; 1 is a non-leaky reservoir.
        input_scaling: gain of W_in (> 0).
        bias_scaling: gain of b (≥ 0; 0 removes the bias).
        rc_connectivity: fraction of nonzero entries of W, in (0, 1].
        input_connectivity: fraction of nonzero entries of W_in and b, in (0, 1].
        activation: f (tanh).
        seed: integer seed of the weights; None draws one, kept in the config.
        feedback_dim: F, number of feedback channels at the end of the input.
        feedback_scaling, feedback_connectivity: as for the input, for W_fb.
    """

    def __init__(
        self,
        units,
        spectral_radius=1.0,
        leak_rate=1.0,
        input_scaling=1.0,
        bias_scaling=1.0,
        rc_connectivity=0.1,
        input_connectivity=0.1,
        activation="tanh",
        seed=None,
        feedback_dim=0,
        feedback_scaling=1.0,
        feedback_connectivity=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.spectral_radius = check_number("spectral_radius", spectral_radius, 0, low_open=True)
        self.leak_rate = check_number("leak_rate", leak_rate, 0, 1, low_open=True)
        self.input_scaling = check_number("input_scaling", input_scaling, 0, low_open=True)
        self.bias_scaling = check_number("bias_scaling", bias_scaling, 0)
        self.rc_connectivity = check_number("rc_connectivity", rc_connectivity, 0, 1, low_open=True)
        self.input_connectivity = check_number("input_connectivity", input_connectivity, 0, 1, low_open=True)
        self.feedback_scaling = check_number("feedback_scaling", feedback_scaling, 0, low_open=True)
        self.feedback_connectivity = check_number("feedback_connectivity", feedback_connectivity, 0, 1, low_open=True)
        self.feedback_dim = check_non_negative_int("feedback_dim", feedback_dim)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)  # recorded, so the config rebuilds W
        self.seed = check_non_negative_int("seed", seed, allow_none=True)
        self.activation = get_activation("activation", activation)
        self._sparse_recurrent_kernel = None  # set only within `recurrence()`
        self._csr_recurrent_kernel = None  # SciPy's W for `harvest_states`, built on first use

    @property
    def state_size(self):
        return [self.units]

    @property
    def output_size(self):
        return self.units

    @property
    def input_dim(self):
        """Width of the driving input u (the input minus the feedback channels)."""
        return self.kernel.shape[0]

    def build(self, input_shape):
        input_dim = input_shape[-1] - self.feedback_dim
        if input_dim < 0:
            raise ValueError(
                f"The input has {input_shape[-1]} channels, fewer than `feedback_dim`. "
                f"Received: feedback_dim={self.feedback_dim}, input_shape={tuple(input_shape)}"
            )
        drawn = draw_reservoir_weights(
            self.units,
            input_dim,
            self.feedback_dim,
            self.spectral_radius,
            self.input_scaling,
            self.bias_scaling,
            self.feedback_scaling,
            self.rc_connectivity,
            self.input_connectivity,
            self.feedback_connectivity,
            self.seed,
        )
        for name, value in drawn.items():
            weight = self.add_weight(
                shape=value.shape, name=name, initializer=_constant(value), trainable=False, autocast=False
            )
            setattr(self, name, weight)

    def csr_recurrent_kernel(self):
        """W (H, H) as a float64 SciPy CSR matrix, for `harvest_states`.

        Built once and kept: W is fixed. Converting the dense weight costs
        about a tenth of a second at 2,000 units, a large part of a fit. Loading
        weights (`load_own_variables`, `set_weights` of the layer) drops it;
        code that assigns to `recurrent_kernel` directly calls
        `forget_csr_recurrent_kernel()`.
        """
        if self._csr_recurrent_kernel is None:
            import scipy.sparse

            self._csr_recurrent_kernel = scipy.sparse.csr_matrix(_numpy(self.recurrent_kernel).T)
        return self._csr_recurrent_kernel

    def forget_csr_recurrent_kernel(self):
        self._csr_recurrent_kernel = None

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self.forget_csr_recurrent_kernel()

    def set_weights(self, weights):
        super().set_weights(weights)
        self.forget_csr_recurrent_kernel()

    def uses_sparse_recurrence(self):
        """Whether `call` multiplies by W as a sparse matrix (TensorFlow, connectivity ≤ `SPARSE_MAX_CONNECTIVITY`)."""
        return keras.backend.backend() == "tensorflow" and self.rc_connectivity <= SPARSE_MAX_CONNECTIVITY

    @contextlib.contextmanager
    def recurrence(self):
        """A scope for running the time loop: W's sparse form is built once, on entry.

        Built inside the loop body, the conversion would run at every step. The
        dense `recurrent_kernel` stays the one stored weight (what `.keras`
        files hold); the sparse form is a tensor derived from it for the
        duration of one call or trace. Elsewhere, `call` uses the dense matmul.
        The scope lives on the cell: two threads tracing one layer at once
        would share it (both see the same W, so only the clean-up order differs).
        """
        if not self.uses_sparse_recurrence():
            yield
            return
        import tensorflow as tf

        previous = self._sparse_recurrent_kernel
        self._sparse_recurrent_kernel = tf.sparse.from_dense(tf.convert_to_tensor(self.recurrent_kernel))  # (H, H)
        try:
            yield
        finally:
            self._sparse_recurrent_kernel = previous

    def _recurrent_matmul(self, x):
        """x·Wᵀ, (B, H) -> (B, H): sparse inside `recurrence()` when W is sparse, dense otherwise."""
        sparse = self._sparse_recurrent_kernel
        if sparse is None:
            return ops.matmul(x, ops.cast(self.recurrent_kernel, x.dtype))
        import tensorflow as tf

        # dense·sparse (the state first) keeps the state's (B, H) layout: no transposes per step.
        return tf.sparse.sparse_dense_matmul(x, sparse if sparse.dtype == x.dtype else tf.cast(sparse, x.dtype))

    def project_inputs(self, inputs):
        """W_in·u + W_fb·y + b for many steps at once: (..., I + F) -> (..., H)."""
        kernel = self.kernel
        if self.feedback_dim:
            kernel = ops.concatenate([kernel, self.feedback_kernel], axis=0)
        return project(inputs, ops.cast(kernel, inputs.dtype), ops.cast(self.bias, inputs.dtype))

    def call(self, projected, states):
        x = states[0]
        pre = projected + self._recurrent_matmul(x)  # (B, H)
        x = (1.0 - self.leak_rate) * x + self.leak_rate * self.activation(pre)
        return x, [x]

    def get_initial_state(self, batch_size):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype)]

    def get_config(self):
        return {
            **super().get_config(),
            **{name: getattr(self, name) for name in _CELL_ARGS if name != "activation"},
            "activation": activations.serialize(self.activation),
        }


def _constant(value):
    def initializer(shape, dtype=None):
        return ops.convert_to_tensor(np.asarray(value).reshape(shape), dtype=dtype)

    return initializer


_CELL_ARGS = (
    "units",
    "spectral_radius",
    "leak_rate",
    "input_scaling",
    "bias_scaling",
    "rc_connectivity",
    "input_connectivity",
    "activation",
    "seed",
    "feedback_dim",
    "feedback_scaling",
    "feedback_connectivity",
)


@keras.saving.register_keras_serializable(package="zoo")
class EchoState(RecurrentLayer):
    """An echo state reservoir over a sequence; see `EchoStateCell` for the equation.

    Computes in float64 unless `dtype` is given: reservoirs and their ridge
    readouts lose 2–3× in accuracy in float32 on Mackey–Glass.

    Args:
        units, spectral_radius, leak_rate, input_scaling, bias_scaling,
        rc_connectivity, input_connectivity, activation, seed, feedback_dim,
        feedback_scaling, feedback_connectivity: as `EchoStateCell`.
        return_sequences, return_state, go_backwards: as `RecurrentLayer`.

    Call arguments:
        sequences: (B, T, I + F): inputs u, then `feedback_dim` feedback channels.
        initial_state: optional `[x]`, x of shape (B, H); zeros when omitted.
        mask: optional (B, T) boolean tensor.

    Call returns (B, H) or (B, T, H); with `return_state`, `[output, x]`
    (the output is the state itself).

    Raises:
        ValueError: on a bad argument, naming it and its allowed range.
    """

    def __init__(
        self,
        units,
        spectral_radius=1.0,
        leak_rate=1.0,
        input_scaling=1.0,
        bias_scaling=1.0,
        rc_connectivity=0.1,
        input_connectivity=0.1,
        activation="tanh",
        seed=None,
        feedback_dim=0,
        feedback_scaling=1.0,
        feedback_connectivity=0.1,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        **kwargs,
    ):
        cell_args = {name: value for name, value in locals().items() if name in _CELL_ARGS}
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "float64"
        cell = EchoStateCell(dtype=kwargs["dtype"], name="cell", **cell_args)
        super().__init__(cell, return_sequences, return_state, go_backwards, **kwargs)
        check_float64_backend("EchoState", self.compute_dtype)

    def call(self, sequences, initial_state=None, mask=None, training=None):
        with self.cell.recurrence():
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def set_weights(self, weights):
        super().set_weights(weights)
        self.cell.forget_csr_recurrent_kernel()

    def get_config(self):
        cell_config = self.cell.get_config()
        return {**super().get_config(), **{name: cell_config[name] for name in _CELL_ARGS}}


def forecast(reservoir, readout, warmup_inputs, steps, initial_state=None):
    """Free-running (closed-loop) forecast: teacher-force a warm-up, then feed predictions back.

    The reservoir is driven by `warmup_inputs` from `initial_state` (pass the
    final state of the fitting run to continue without a reset); from then on
    the readout's prediction ŷ is the next input (and, with `feedback_dim`, the
    feedback channels too):

        x = run(warmup_inputs);  `steps` times: ŷ = readout(x), x = step(x, ŷ)

    The closed loop runs on the zoo's one time loop (`run_time_loop`), inside
    a `tf.function` on the TensorFlow backend, where an eager `tf.while_loop`
    would dispatch op by op.

    Args:
        reservoir: an `EchoState` whose driving input has the readout's width O.
        readout: a fitted readout layer, (B, H) -> (B, O) (e.g. `RidgeReadout`).
        warmup_inputs: (B, T, I + F) teacher-forced inputs; T may be 0 to go on
            from `initial_state`.
        steps: number of predictions.
        initial_state: optional `[x]` or x, (B, H); zeros when omitted.

    Returns:
        `(predictions, [x])`: predictions (B, steps, O), prediction k being of
        the input k + 1 steps after the last warm-up input; x (B, H) the state
        after consuming all of them, so that `forecast(reservoir, readout,
        warmup_inputs[:, :0], n, [x])` continues the same trajectory.

    Raises:
        ValueError: if `steps` is not a positive integer or the widths do not chain.
    """
    check_positive_int("steps", steps)
    cell = reservoir.cell
    dtype = reservoir.compute_dtype
    warmup_inputs = ops.convert_to_tensor(warmup_inputs, dtype=dtype)
    if not reservoir.built:
        reservoir.build(tuple(warmup_inputs.shape))
    batch = ops.shape(warmup_inputs)[0]
    if initial_state is None:
        states = cell.get_initial_state(batch)
    else:
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        states = [ops.cast(s, dtype) for s in states]
    output_dim = readout(states[0]).shape[-1]
    _check_closed_loop(cell, output_dim)

    def run(warmup_inputs, states):
        with cell.recurrence():
            if warmup_inputs.shape[1] != 0:
                states = run_time_loop(cell, cell.project_inputs(warmup_inputs), states, cell.output_size)[2]
            return closed_loop(cell, readout, states, steps, output_dim)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        run = tf.function(run)
    return run(warmup_inputs, states)


def closed_loop(cell, readout, states, steps, output_dim):
    """`steps` closed-loop predictions from `states`: (B, steps, O) and the final states.

    The body shared by `forecast` and graphs built on it (the exported
    `forecast` signature of `zoo.models.ESNForecaster`, where `steps` is a
    tensor); run it inside `cell.recurrence()`.
    """
    dtype = states[0].dtype

    def step(_, states):
        y = ops.cast(readout(states[0]), dtype)  # (B, O)
        u = ops.concatenate([y, y], axis=-1) if cell.feedback_dim else y
        return y, cell(cell.project_inputs(u[:, None, :])[:, 0], states)[1]

    clock = ops.zeros((ops.shape(states[0])[0], steps, 1), dtype=dtype)  # only sets the number of steps
    predictions, _, states = run_time_loop(step, clock, states, output_dim)
    return predictions, states


def harvest_states(reservoir, inputs, initial_state=None, noise=0.0, noise_seed=None):
    """The reservoir's states over `inputs` in float64 NumPy: W as a SciPy CSR matrix in a plain loop.

    The same equation as `EchoState` (see `EchoStateCell`), for fitting a
    readout, where nothing is traced or differentiated. The input projection
    runs once for all steps; each step is one CSR matrix-vector product, an
    add, a tanh and the leak, in place. TensorFlow's while loop with its
    sparse·dense kernel made a fit + forecast of reservoirpy's README protocol
    0.44–0.61× as fast as reservoirpy's; with this loop it is 1.2–2.0× (median
    rounds, 100–5,000 units; `python -m benchmarks.esn`,
    benchmarks/results/esn.json). The layer stays the one exported: its graph
    is what a SavedModel serves.

    Optional state noise (Jaeger 2001's regulariser of free-running ESNs):
    with `noise` > 0, every step adds `noise`·U(−1/2, 1/2) inside the
    activation,

        x[t+1] = (1 − lr)·x[t] + lr·f(W·x[t] + W_in·u[t+1] + W_fb·y[t] + b + ν[t]),

    drawn from `numpy.random.default_rng(noise_seed)`; with `noise` = 0 no
    number is drawn and the states are the layer's.

    Args:
        reservoir: a built or unbuilt `EchoState` (unbuilt: built for `inputs`' width).
        inputs: (B, T, I + F) or one sequence (T, I + F).
        initial_state: optional `[x]` or x, (B, H) (or (H,) for one sequence); zeros when omitted.
        noise: amplitude of the state noise ν (≥ 0).
        noise_seed: seed of the noise.

    Returns:
        `(states, x)`: states (B, T, H) float64 (or (T, H) for one sequence),
        x the final state (B, H) (or (H,)).

    Raises:
        ValueError: on a bad `noise` or a state of the wrong shape, or when the
            reservoir's activation is not tanh or it runs backwards (use the layer then).
    """
    check_number("noise", noise, 0)
    cell = reservoir.cell
    if reservoir.go_backwards:
        raise ValueError("`harvest_states` runs forward in time; call the layer for `go_backwards=True`. "
                         "Received: go_backwards=True")
    if activations.serialize(cell.activation) != "tanh":
        raise ValueError(
            "`harvest_states` runs tanh reservoirs only; call the `EchoState` layer for other activations. "
            f"Received: activation={activations.serialize(cell.activation)!r}"
        )
    u = np.asarray(inputs, dtype=np.float64)
    single = u.ndim == 2
    if single:
        u = u[None]
    if not reservoir.built:
        reservoir.build(u.shape)
    kernel, bias = _numpy(cell.kernel), _numpy(cell.bias)
    if cell.feedback_dim:
        kernel = np.concatenate([kernel, _numpy(cell.feedback_kernel)], axis=0)
    batch, steps, _ = u.shape
    x = np.zeros((batch, cell.units)) if initial_state is None else _state(initial_state, batch, cell.units)
    # (H, B) columns: W·x is then CSR times a dense block, the layout SciPy's kernel reads row by row.
    w = cell.csr_recurrent_kernel()  # W, (H, H)
    projected = np.ascontiguousarray(np.transpose(u @ kernel + bias, (1, 2, 0)))  # (T, H, B)
    if noise:
        projected += noise * (np.random.default_rng(noise_seed).random(projected.shape) - 0.5)
    x = np.array(x.T, order="C")  # (H, B)
    if batch == 1:  # vectors: SciPy's matrix-vector kernel, cheaper to call than its matrix-matrix one
        projected, x = projected[..., 0], x[:, 0]
    states = np.empty((steps, *x.shape))
    keep, lr = 1.0 - cell.leak_rate, cell.leak_rate
    accumulate = _csr_accumulate(w, batch)
    for t in range(steps):
        pre = projected[t].copy()
        accumulate(x, pre)  # pre += W·x
        np.tanh(pre, out=pre)
        if lr != 1.0:  # (1 − lr)·x + lr·f, rounded as the layer rounds it
            pre *= lr
            x *= keep
            pre += x
        x = states[t] = pre
    states = np.transpose(states.reshape(steps, cell.units, batch), (2, 0, 1))  # (B, T, H)
    x = np.ascontiguousarray(x.reshape(cell.units, batch).T)
    return (states[0], x[0]) if single else (states, x)


def _csr_accumulate(w, batch):
    """A function `(x, out)` doing out += W·x for a CSR W and x of shape (H,) or (H, B) in C order.

    SciPy's own kernel, called directly: its `@` spends longer checking and
    dispatching than multiplying for a few hundred units, and the loop calls it
    at every step. `_sparsetools` is private, so `@` stays the fallback.
    """
    try:
        from scipy.sparse import _sparsetools
    except ImportError:
        _sparsetools = None
    if _sparsetools is None or w.dtype != np.float64 or w.indices.dtype != np.int32:

        def accumulate(x, out):
            out += w @ x

        return accumulate
    rows, cols = w.shape
    indptr, indices, data = w.indptr, w.indices, w.data
    if batch == 1:
        return lambda x, out: _sparsetools.csr_matvec(rows, cols, indptr, indices, data, x, out)
    return lambda x, out: _sparsetools.csr_matvecs(rows, cols, batch, indptr, indices, data, x.ravel(), out.ravel())


def _numpy(weight):
    return np.asarray(ops.convert_to_numpy(weight), dtype=np.float64)


def _state(initial_state, batch, units):
    x = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
    x = np.asarray(ops.convert_to_numpy(x) if not isinstance(x, np.ndarray) else x, dtype=np.float64)
    x = x.reshape(1, -1) if x.ndim == 1 else x
    if x.shape != (batch, units):
        raise ValueError(
            f"`initial_state` must be ({batch}, {units}): one state of the reservoir per sequence. "
            f"Received: initial_state.shape={x.shape}"
        )
    return x


def _check_closed_loop(cell, output_dim):
    if cell.input_dim != output_dim or cell.feedback_dim not in (0, output_dim):
        raise ValueError(
            "A closed loop feeds the readout's prediction back as the reservoir's input (and feedback): "
            f"both must be {output_dim} wide. Received: input width {cell.input_dim}, "
            f"feedback_dim={cell.feedback_dim}, readout width {output_dim}."
        )
