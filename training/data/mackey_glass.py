"""Mackey–Glass τ = 17 series for the echo state network benchmarks.

    dx/dt = a·x(t−τ) / (1 + x(t−τ)ⁿ) − b·x(t),    a = 0.2, b = 0.1, n = 10, τ = 17

Two discretisations, because the two published anchors use different ones
(see `docs/tasks-and-anchors.md`):

- `mackey_glass`: reservoirpy's generator (its README benchmark). One sample per
  time step h = 1; each step is a classical RK4 step of the ODE in x with the
  delayed value x(t−τ) held fixed at the sample τ/h steps back (no history
  interpolation); the τ/h samples before t = 0 are x0 + 0.2·(U[0, 1) − 0.5) drawn
  from `numpy.random.default_rng(seed)`, reservoirpy's default seed being 5555.
- `mackey_glass_jaeger`: Jaeger 2001 (GMD Report 148): Euler steps of 0.1, every
  10th value kept, so one sample per time unit again; the network is trained on
  `jaeger_squash(x) = tanh(x − 1)`.

Plain NumPy and deterministic: the same arguments always give the same series.
"""

import math

import numpy as np

from zoo._checks import check_non_negative_int, check_number, check_positive_int

__all__ = ["mackey_glass", "mackey_glass_jaeger", "jaeger_squash", "mackey_glass_rhs"]

RESERVOIRPY_SEED = 5555  # reservoirpy.datasets' default seed for the random history


def mackey_glass_rhs(x, x_tau, a=0.2, b=0.1, n=10):
    """dx/dt at x(t) = `x` and x(t−τ) = `x_tau` (scalars or arrays)."""
    return a * x_tau / (1.0 + x_tau**n) - b * x


def _history(length, x0, seed, history, name_of_length):
    """The `length` values before t = 0, oldest first."""
    if history is None:
        rng = np.random.default_rng(seed)
        return list(x0 + 0.2 * (rng.random(length) - 0.5))
    history = np.asarray(history, dtype=np.float64).reshape(-1)
    if len(history) < length:
        raise ValueError(
            f"`history` must hold at least {name_of_length} = {length} values. Received: {len(history)} values."
        )
    return [float(v) for v in history[-length:]]


def mackey_glass(n_timesteps, tau=17, a=0.2, b=0.1, n=10, x0=1.2, h=1.0, seed=RESERVOIRPY_SEED, history=None):
    """reservoirpy's Mackey–Glass series: RK4 steps with the delayed value frozen per step.

    x[0] = x0 and x[i+1] = RK4_h(x[i]; x_tau = x[i − ⌊τ/h⌋]), where values
    before t = 0 come from `history`, or, when it is None, from
    x0 + 0.2·(U − 0.5) drawn with `numpy.random.default_rng(seed)`.

    Args:
        n_timesteps: number of samples.
        tau, a, b, n: the equation's delay and coefficients.
        x0: x(0).
        h: time between two samples (and RK4 step size).
        seed: seed of the random history (5555: reservoirpy's default).
        history: optional values before t = 0, oldest first; the last ⌊τ/h⌋ are used.

    Returns:
        float64 array of shape (n_timesteps, 1).

    Raises:
        ValueError: if `n_timesteps` is not a positive integer, `tau` or `h`
            is not positive, ⌊τ/h⌋ < 1 or `history` is too short.
    """
    check_positive_int("n_timesteps", n_timesteps)
    check_number("tau", tau, 0, low_open=True)
    check_number("h", h, 0, low_open=True)
    delay = int(math.floor(tau / h))
    if delay < 1:
        raise ValueError(f"`tau / h` must be at least 1. Received: tau={tau!r}, h={h!r}")
    past = _history(delay, x0, seed, history, "floor(tau / h)")

    def f(x, x_tau):
        return -b * x + a * x_tau / (1.0 + x_tau**n)

    out = np.empty(n_timesteps)
    x = float(x0)
    for i in range(n_timesteps):
        out[i] = x
        x_tau = past[i]  # the value ⌊τ/h⌋ samples back: `past` is history + series
        past.append(x)
        k1 = h * f(x, x_tau)
        k2 = h * f(x + 0.5 * k1, x_tau)
        k3 = h * f(x + 0.5 * k2, x_tau)
        k4 = h * f(x + k3, x_tau)
        x = x + k1 / 6 + k2 / 3 + k3 / 3 + k4 / 6
    return out.reshape(-1, 1)


def mackey_glass_jaeger(
    n_timesteps, tau=17, a=0.2, b=0.1, n=10, x0=1.2, dt=0.1, subsample=10, washout=0, seed=None, history=None
):
    """Jaeger 2001's Mackey–Glass series: Euler steps of `dt`, every `subsample`-th kept.

    x(t + dt) = x(t) + dt·(a·x(t−τ)/(1 + x(t−τ)ⁿ) − b·x(t)), with the delay
    round(τ/dt) Euler steps back. Sample i is x(i·dt·subsample) (one per time
    unit with the defaults), counted after `washout` discarded samples.

    The history before t = 0 is the constant x0 when `seed` and `history` are
    None, else x0 + 0.2·(U − 0.5) from `numpy.random.default_rng(seed)` (the
    scheme of Jaeger's own Matlab generator), else the last round(τ/dt)
    values of `history` (fine-step values, oldest first).

    Args:
        n_timesteps: number of samples returned.
        tau, a, b, n: the equation's delay and coefficients.
        x0: x(0).
        dt: Euler step (0.1 in Jaeger 2001).
        subsample: keep one Euler value out of `subsample` (10 in Jaeger 2001).
        washout: samples generated and dropped first, to leave the transient.
        seed, history: the history before t = 0, as above.

    Returns:
        float64 array of shape (n_timesteps, 1); train on `jaeger_squash` of it.

    Raises:
        ValueError: on a non-positive count, `tau`, `dt`, or a short `history`.
    """
    check_positive_int("n_timesteps", n_timesteps)
    check_positive_int("subsample", subsample)
    check_non_negative_int("washout", washout)
    check_number("tau", tau, 0, low_open=True)
    check_number("dt", dt, 0, low_open=True)
    delay = int(round(tau / dt))
    if delay < 1:
        raise ValueError(f"`tau / dt` must be at least 1. Received: tau={tau!r}, dt={dt!r}")
    if history is None and seed is None:
        past = [float(x0)] * delay
    else:
        past = _history(delay, x0, seed, history, "round(tau / dt)")

    total = washout + n_timesteps
    out = np.empty(total)
    x = float(x0)
    step = 0
    for i in range(total):
        out[i] = x
        for _ in range(subsample):
            x_tau = past[step]
            past.append(x)
            x = x + dt * (a * x_tau / (1.0 + x_tau**n) - b * x)
            step += 1
    return out[washout:].reshape(-1, 1)


def jaeger_squash(x):
    """tanh(x − 1): Jaeger 2001's transform of the series before training."""
    return np.tanh(np.asarray(x, dtype=np.float64) - 1.0)
