"""Float64 NumPy implementations of each cell's equations: the independent
reference every zoo layer is checked against; and the checks that use it
(random weights, finite-difference gradients, matmuls inside the time loop)."""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def run_sequence(step, xs, states, mask=None):
    """Runs `step(x_t, states) -> (out, states)` over (B, T, I) with Keras's mask rule:
    a masked step keeps the state and repeats the previous output (zeros at first)."""
    outputs, prev = [], None
    for t in range(xs.shape[1]):
        out, new_states = step(xs[:, t], states)
        if prev is None:
            prev = np.zeros_like(out)
        if mask is not None:
            keep = mask[:, t][:, None]
            out = np.where(keep, out, prev)
            new_states = [np.where(keep, n, s) for n, s in zip(new_states, states)]
        outputs.append(out)
        prev, states = out, new_states
    return np.stack(outputs, axis=1), states


def peephole_lstm_step(x, states, kernel, recurrent_kernel, bias, peephole=None):
    """Gers et al. 2002, gate order (i, f, c, o); `peephole` rows (p_i, p_f, p_o) or None."""
    h, c = states
    z = x @ kernel + h @ recurrent_kernel + bias
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    p_i, p_f, p_o = (np.zeros_like(c),) * 3 if peephole is None else peephole
    i = sigmoid(z_i + p_i * c)
    f = sigmoid(z_f + p_f * c)
    c_new = f * c + i * np.tanh(z_c)
    o = sigmoid(z_o + p_o * c_new)
    h_new = o * np.tanh(c_new)
    return h_new, [h_new, c_new]


def elman_step(x, states, kernel, recurrent_kernel, bias=None, activation=np.tanh):
    """Elman 1990: h = f(x·W + h·U + b)."""
    (h,) = states
    h_new = activation(x @ kernel + h @ recurrent_kernel + (0.0 if bias is None else bias))
    return h_new, [h_new]


def gru_step(x, states, kernel, recurrent_kernel, bias=None, reset_after=True):
    """Cho et al. 2014 in Keras's layout: gate order (z, r, h), h = z⊙h(t−1) + (1−z)⊙ĥ.

    reset_after=True: `bias` (2, 3H) = (input bias, recurrent bias) and r scales
    h·U_h + b'_h; reset_after=False: `bias` (3H,) and r scales h before U_h.
    """
    (h,) = states
    W_z, W_r, W_h = np.split(kernel, 3, axis=1)
    U_z, U_r, U_h = np.split(recurrent_kernel, 3, axis=1)
    width = 3 * h.shape[-1]
    if bias is None:
        b, b_rec = np.zeros(width), np.zeros(width)
    elif reset_after:
        b, b_rec = bias
    else:
        b, b_rec = bias, np.zeros(width)
    b_z, b_r, b_h = np.split(b, 3)
    c_z, c_r, c_h = np.split(b_rec, 3)
    z = sigmoid(x @ W_z + b_z + h @ U_z + c_z)
    r = sigmoid(x @ W_r + b_r + h @ U_r + c_r)
    if reset_after:
        candidate = np.tanh(x @ W_h + b_h + r * (h @ U_h + c_h))
    else:
        candidate = np.tanh(x @ W_h + b_h + (r * h) @ U_h)
    h_new = z * h + (1.0 - z) * candidate
    return h_new, [h_new]


def esn_step(u, states, kernel, recurrent_kernel, bias, leak_rate, activation=np.tanh):
    """Leaky echo state reservoir (reservoirpy's update), Keras layout:
    x(t+1) = (1 − lr)·x(t) + lr·f(u(t+1)·W_inᵀ + x(t)·Wᵀ + b)."""
    (x,) = states
    x_new = (1.0 - leak_rate) * x + leak_rate * activation(u @ kernel + x @ recurrent_kernel + bias)
    return x_new, [x_new]


def matmuls_per_loop_body(layer, input_spec):
    """MatMul ops in each `tf.while_loop` body of `layer` traced on `input_spec`
    (a `tf.TensorSpec`), one count per body: the loop runs in `TF_CHUNKS` chunks."""
    import tensorflow as tf

    graph = tf.function(layer).get_concrete_function(input_spec).graph
    bodies = [f for f in graph.as_graph_def().library.function if "body" in f.signature.name]
    return [len([n for n in f.node_def if n.op in ("MatMul", "BatchMatMulV2")]) for f in bodies]


def matmuls_in(concrete):
    """MatMul ops in a concrete function's graph and every function it calls (loop bodies, branches)."""
    graph = concrete.graph.as_graph_def()
    nodes = [*graph.node, *(node for function in graph.library.function for node in function.node_def)]
    return sum(node.op == "MatMul" for node in nodes)


def randomize_weights(layer, rng, scale=0.5):
    """Assigns N(0, scale²) draws from `rng` to every weight of `layer` (a layer or a model).

    Default initialisers give zeros and ones (biases, peepholes) that would hide
    a misplaced term; random values make every term of the equations count.
    """
    for weight in layer.weights:
        weight.assign(rng.normal(scale=scale, size=weight.shape))
    return layer


def assert_gradients_match_finite_differences(loss, variables, rng, probes=3, eps=1e-6, rtol=1e-6, atol=1e-9):
    """Checks the tape's gradient of `loss()` against central differences.

    For each variable, `probes` random entries are moved by ±eps (float64
    variables, so eps can be small) and the slope compared with the gradient.

    Returns:
        variable path -> the tape's gradient as a NumPy array (for extra checks).
    """
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = loss()
    gradients = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(value, variables)]  # embeddings: IndexedSlices
    paths = [getattr(variable, "path", variable.name) for variable in variables]  # Keras variables have a path
    for variable, gradient, path in zip(variables, gradients, paths):
        original = variable.numpy()
        for index in rng.choice(original.size, size=min(probes, original.size), replace=False):
            slopes = []
            for sign in (1, -1):
                moved = original.reshape(-1).copy()
                moved[index] += sign * eps
                variable.assign(moved.reshape(original.shape))
                slopes.append(float(loss()))
            variable.assign(original)
            numeric = (slopes[0] - slopes[1]) / (2 * eps)
            np.testing.assert_allclose(gradient.reshape(-1)[index], numeric, rtol=rtol, atol=atol, err_msg=path)
    return dict(zip(paths, gradients))


def modrelu(z, bias):
    """Arjovsky et al. 2016's modReLU for real z: sign(z)·max(|z| + b, 0)."""
    return np.sign(z) * np.maximum(np.abs(z) + bias, 0.0)


def exprnn_step(x, states, kernel, recurrent_matrix, bias=None):
    """expRNN (Lezcano-Casado & Martínez-Rubio 2019): h = modReLU(x·V + h·W), W = exp(A − Aᵀ) given."""
    (h,) = states
    z = x @ kernel + h @ recurrent_matrix
    h_new = z if bias is None else modrelu(z, bias)
    return h_new, [h_new]
