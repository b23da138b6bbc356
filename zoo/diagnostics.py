"""The eigenvalue picture of a recurrent net's memory, for any model built from zoo recurrent layers.

Two views of how far back a trained net can remember:

- the eigenvalues of each recurrent matrix against the unit circle (`recurrent_eigenvalues`): for a linear net
  h(t) = U·h(t−1) + ... a perturbation of h(t−k) reaches h(t) as Uᵏ, so it dies within a few steps when every
  |λ| < 1 and explodes when one |λ| > 1. A gated cell has one block per gate (for the LSTM, U_i, U_f, U_c, U_o);
- the norm of the Jacobian product ∂h(t₀+k)/∂s(t₀) against k on real inputs (`jacobian_norms`), which includes the
  nonlinearity and the gates: s(t₀) is the whole state the cell carries (h, and c for the LSTM), so the LSTM's
  memory through its cell shows even where its h forgets. For the linear Elman net it is ‖Uᵏ‖₂ (in the
  zoo's row-vector layout, h·U, the product is (Uᵀ)ᵏ, with the same norm).

The recurrent layers are found by walking the model's layers; their inputs are recorded during one forward pass of
the model on the given inputs, so embeddings, stacked layers, encoders and bidirectional wrappers need no special
case.
"""

import numpy as np

__all__ = ["recurrent_layers", "recurrent_eigenvalues", "jacobian_norms"]


def recurrent_layers(model):
    """`{name: layer}` for every zoo recurrent layer in `model` (its sublayers included), in build order."""
    from zoo.layers._loop import RecurrentLayer

    found = {}
    for layer in [model, *model._flatten_layers(include_self=False, recursive=True)]:
        if isinstance(layer, RecurrentLayer):
            found[layer.path if hasattr(layer, "path") else layer.name] = layer
    return found


def _blocks(cell):
    """The cell's H×H recurrent matrices, named: one per gate (`gate_names`), or the one matrix."""
    kernel = np.asarray(cell.recurrent_kernel, np.float64)  # (H, G·H)
    h = kernel.shape[0]
    names = getattr(cell, "gate_names", None) or tuple(f"block {i}" for i in range(kernel.shape[1] // h))
    if len(names) == 1:
        return {"U": kernel}
    return {f"U_{name}": kernel[:, i * h : (i + 1) * h] for i, name in enumerate(names)}


def recurrent_eigenvalues(model):
    """`{"layer/U_gate": complex eigenvalues (H,)}` for every recurrent matrix of `model`.

    Raises:
        ValueError: `model` holds no zoo recurrent layer.
    """
    layers = _require_layers(model)
    return {f"{name}/{block}": np.linalg.eigvals(matrix)
            for name, layer in layers.items() for block, matrix in _blocks(layer.cell).items()}


def _require_layers(model):
    layers = recurrent_layers(model)
    if not layers:
        raise ValueError(f"`model` must contain a zoo recurrent layer (zoo.layers). Received: a model with "
                         f"layers {[layer.name for layer in model._flatten_layers(include_self=False)]}")
    return layers


def _record_layer_inputs(model, layers, inputs):
    """Runs `model(inputs)` once and returns, per layer, the (sequences, initial_state) it was called with."""
    recorded = {}
    originals = {}

    def recorder(name, layer):
        original = layer.call

        def call(sequences, initial_state=None, mask=None, training=None):
            recorded[name] = (sequences, initial_state)
            return original(sequences, initial_state=initial_state, mask=mask, training=training)

        return original, call

    try:
        for name, layer in layers.items():
            originals[name], layer.call = recorder(name, layer)
        model(inputs)
    finally:
        for name, layer in layers.items():
            if name in originals:
                layer.call = originals[name]  # the instance attribute goes, the class's method shows again
                del layer.call
    return recorded


def _layer_norms(layer, sequences, initial_state, start, max_lag):
    """‖∂h(start+k)/∂s(start)‖₂ for k = 0..max_lag, geometric mean over the batch: (max_lag + 1,)."""
    import tensorflow as tf

    cell = layer.cell
    sizes = [int(size) for size in cell.state_size]
    sequences = tf.convert_to_tensor(sequences)
    if layer.go_backwards:
        sequences = tf.reverse(sequences, axis=[1])
    batch = sequences.shape[0]
    states = list(initial_state) if initial_state is not None else cell.get_initial_state(batch)
    state = tf.concat([tf.cast(s, cell.compute_dtype) for s in states], axis=-1)
    projected = cell.project_inputs(tf.transpose(sequences, (1, 0, 2)))  # (T, B, K)

    def step(projected_t, state):
        return tf.concat(cell.call(projected_t, tf.split(state, sizes, axis=-1))[1], axis=-1)

    @tf.function  # traced once: an eager vectorized Jacobian re-traces its loop at every step
    def step_and_jacobian(projected_t, state):
        with tf.GradientTape() as tape:
            tape.watch(state)
            new = step(projected_t, state)
        return new, tape.batch_jacobian(new, state)

    for t in range(start):
        state = step(projected[t], state)
    product = tf.eye(sum(sizes), batch_shape=[batch], dtype=state.dtype)  # ∂s(start)/∂s(start)
    norms = []
    for k in range(max_lag + 1):
        rows = product[:, : sizes[0], :].numpy().astype(np.float64)  # the output h: the first state
        norms.append(np.exp(np.mean(np.log(np.linalg.norm(rows, ord=2, axis=(1, 2)) + 1e-300))))
        if k == max_lag:
            break
        state, jacobian = step_and_jacobian(projected[start + k], state)
        product = tf.matmul(jacobian, product)  # (B, S, S)
    return np.array(norms)


def jacobian_norms(model, inputs, max_lag=50, warmup=None):
    """`{layer name: (max_lag + 1,) norms}`: ‖∂h(t₀+k)/∂s(t₀)‖₂ of each recurrent layer against k on `inputs`.

    Args:
        model: a model holding zoo recurrent layers; `model(inputs)` must run.
        inputs: held-out inputs of `model`, at least `warmup + max_lag + 1` steps long.
        max_lag: the largest k.
        warmup: t₀, steps run first so the state is the one the inputs lead to (default: what the
            sequence leaves beyond `max_lag`, up to 20).

    Returns:
        The spectral norm at each k (k = 0 gives 1: h(t₀) against itself), the geometric mean over the batch.

    Raises:
        ValueError: no zoo recurrent layer, or sequences too short for `max_lag`.
    """
    layers = _require_layers(model)
    recorded = _record_layer_inputs(model, layers, inputs)
    curves = {}
    for name, (sequences, initial_state) in recorded.items():
        steps = int(sequences.shape[1])
        lag = min(max_lag, steps - 1)
        if lag < 1:
            raise ValueError(f"`inputs` must be at least 2 steps long to measure a Jacobian product. Received: "
                             f"{steps} step(s) reaching layer {name!r}")
        start = warmup if warmup is not None else min(20, steps - 1 - lag)
        curves[name] = _layer_norms(layers[name], sequences, initial_state, start, lag)
    return curves
