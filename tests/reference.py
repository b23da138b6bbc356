"""Float64 NumPy implementations of each cell's equations: the independent
reference every zoo layer is checked against."""

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
