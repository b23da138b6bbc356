"""Measuring a spike delay and reproducing it (Gers, Schraudolph & Schmidhuber 2002, "Learning precise timing").

One input channel holds two spikes (1.0) at t1 and t2 = t1 + D, the delay D
uniform over the integers [min_interval, max_interval] and t1 uniform over the
positions that leave room for the answer; everything else is 0. The target
channel is 0 except for a 1.0 at t1 + 2D: the network measures D between the
input spikes and emits its own spike D steps after the second. Loss and error
are the mean squared error over every step, as in the reproduction the model
card cites (T = 150, D in 30-60), so its figures compare with ours.

Why per step and not one number at the end: asked only for D / max_interval
after the last of T steps, a 16-unit LSTM with or without peepholes (and with
peepholes and chrono-initialised gates) stayed at the mean-prediction MSE
Var(D) / max_interval² for 3,000 updates: one error signal per sequence, up
to 120 steps after the spikes, did not get it started.

Baselines at T = 150, D in 30-60: all zeros score 1/T = 0.00667; the best
output blind to the input, each step's mean target (the probability p_t that
the spike falls on step t), scores mean_t p_t (1 − p_t) = 0.00657
(`mean_baseline_mse`). A spike one step late costs 2/T = 0.0133 on its
sequence.
"""

import numpy as np

__all__ = ["interval_batch", "spike_probabilities", "mean_baseline_mse", "exact_timing"]


def _check(length, min_interval, max_interval):
    if not 0 < min_interval <= max_interval or 2 * max_interval >= length:
        raise ValueError(
            "Intervals must satisfy 0 < min_interval <= max_interval and 2 * max_interval < length (the answer "
            f"spike comes 2 intervals after the first). Received: min_interval={min_interval}, "
            f"max_interval={max_interval}, length={length}"
        )


def interval_batch(rng, batch_size, length=150, min_interval=30, max_interval=60):
    """Returns `(inputs (B, T, 1) float32, targets (B, T, 1) float32)`."""
    _check(length, min_interval, max_interval)
    delays = rng.integers(min_interval, max_interval + 1, size=batch_size)
    first = (rng.random(batch_size) * (length - 2 * delays)).astype(np.int64)  # t1 in [0, T - 2D)
    rows = np.arange(batch_size)
    inputs = np.zeros((batch_size, length, 1), np.float32)
    targets = np.zeros((batch_size, length, 1), np.float32)
    inputs[rows, first, 0] = inputs[rows, first + delays, 0] = 1.0
    targets[rows, first + 2 * delays, 0] = 1.0
    return inputs, targets


def spike_probabilities(length=150, min_interval=30, max_interval=60):
    """(T,) probability that the target spike falls on each step, over delays and first-spike positions."""
    _check(length, min_interval, max_interval)
    p = np.zeros(length)
    delays = range(min_interval, max_interval + 1)
    for delay in delays:
        p[2 * delay : length] += 1.0 / (length - 2 * delay) / len(delays)  # t1 + 2D for t1 in [0, T - 2D)
    return p


def mean_baseline_mse(length=150, min_interval=30, max_interval=60):
    """MSE of predicting each step's mean target p_t: the best output that ignores the input."""
    p = spike_probabilities(length, min_interval, max_interval)
    return float(np.mean(p * (1.0 - p)))


def exact_timing(outputs, inputs, targets):
    """Fraction of sequences whose largest output after the second input spike is on the target step.

    Args:
        outputs, inputs, targets: (B, T, 1) arrays.
    """
    steps = np.arange(inputs.shape[1])
    second = inputs.shape[1] - 1 - np.argmax(inputs[:, ::-1, 0] > 0, axis=1)  # (B,) last input spike
    after = np.where(steps[None, :] > second[:, None], outputs[..., 0], -np.inf)
    return float(np.mean(np.argmax(after, axis=1) == np.argmax(targets[..., 0], axis=1)))
