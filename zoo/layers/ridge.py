"""Ridge-regression readout for reservoirs: closed-form fit from streamed sufficient statistics."""

import keras
import numpy as np
from keras import ops

from zoo._checks import check_float64_backend, check_non_negative_int, check_number, check_positive_int

__all__ = ["RidgeReadout"]


@keras.saving.register_keras_serializable(package="zoo")
class RidgeReadout(keras.layers.Layer):
    """A readout y = x·W_out + b fitted by ridge regression in closed form.

    The data are centred, so the bias is not regularised:

        W_out = (X̃ᵀX̃ + λ·I)⁻¹ X̃ᵀỸ,    b = ȳ − x̄·W_out,    X̃ = X − x̄, Ỹ = Y − ȳ

    over all fitted steps, the first `warmup` steps of each sequence dropped
    (the reservoir is still forgetting its initial state there). `partial_fit`
    merges each batch's count, means and centred cross-products into running
    float64 totals (Chan et al.'s pairwise update, exact and free of the
    cancellation of raw sums), so data larger than memory can be streamed;
    `finalize` solves and writes `kernel` W_out (H, O) and `bias` b (O,).
    Those are non-trainable Keras weights, so a fitted readout is saved in a
    `.keras` file; the running statistics are not.

    Online option (`online=True`): recursive least squares, the update of
    FORCE learning (Sussillo & Abbott 2009). Each step's state x̃ = [x, 1]
    updates the weights W̃ = [W_out; b] and the inverse correlation P in turn,

        k = P·x̃ / (γ + x̃ᵀ·P·x̃),   W̃ ← W̃ + k·(y − x̃ᵀ·W̃),   P ← (P − k·x̃ᵀ·P) / γ,

    from P = diag(1/λ, …, 1/λ, 1/(λ·`ONLINE_BIAS_PRIOR`)) and W̃ = 0, γ the
    `forgetting` factor. With γ = 1 this is exactly the ridge solution of
    everything seen so far with the bias penalised by λ·`ONLINE_BIAS_PRIOR`
    (so, nearly, the closed form above); `partial_fit` writes `kernel` and
    `bias` after every batch and `finalize` has nothing left to do. Each step
    costs O(H²), so it suits streams and slowly drifting targets (γ < 1 forgets
    old steps with time constant 1/(1 − γ)), not refits of long series.

    Args:
        units: output width O; None infers it from the first targets.
        ridge: λ ≥ 0 (> 0 when `online`).
        warmup: steps dropped at the start of every sequence passed to `partial_fit`.
        online: fit by recursive least squares, step by step, instead of in closed form.
        forgetting: γ in (0, 1] of the online fit.
        degree: read the states' elementwise powers 1 to `degree`, [x, x⊙x, …]: 1 is the
            linear readout; higher degrees add the even and higher-order parts a tanh
            reservoir's odd symmetry leaves out of a linear map of x (a polynomial readout).
        dtype: float64 unless given.

    Call arguments:
        states: (..., H) tensor. Returns (..., O).

    Raises:
        ValueError: on a negative `ridge` or `warmup`, `forgetting` outside (0, 1], `online` with `ridge` = 0,
            a `degree` that is not a positive integer, or mismatched shapes.
        TypeError: if `online` is not a bool.
    """

    ONLINE_BIAS_PRIOR = 1e-6  # the online fit's bias penalty, relative to λ: nearly unregularised, as in closed form

    def __init__(self, units=None, ridge=0.0, warmup=0, online=False, forgetting=1.0, degree=1, **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "float64"
        super().__init__(**kwargs)
        check_float64_backend("RidgeReadout", self.compute_dtype)
        self.units = check_positive_int("units", units, allow_none=True)
        self.ridge = check_number("ridge", ridge, 0)
        self.warmup = check_non_negative_int("warmup", warmup)
        if not isinstance(online, bool):
            raise TypeError(f"`online` must be True or False. Received: online={online!r}")
        self.online = online
        self.forgetting = check_number("forgetting", forgetting, 0, 1, low_open=True)
        self.degree = check_positive_int("degree", degree)
        if online and self.ridge == 0:
            raise ValueError(
                "The online fit starts from P = I/λ and needs `ridge` > 0. Received: ridge=0, online=True"
            )
        self.reset_statistics()

    def build(self, input_shape):
        if self.units is None:
            raise ValueError("RidgeReadout does not know its output width yet: pass `units` or call `fit` first.")
        features = input_shape[-1] * self.degree
        self.kernel = self.add_weight(shape=(features, self.units), name="kernel", initializer="zeros", trainable=False)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros", trainable=False)

    def call(self, states):
        return ops.matmul(self._powers(states, ops.concatenate), self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    # Fitting: NumPy float64, outside any graph.

    def reset_statistics(self):
        """Forgets everything `partial_fit` accumulated."""
        self.count = 0
        self._mean_x = self._mean_y = self._cxx = self._cxy = None
        self._p = self._w = None  # the online fit's P and W̃

    def partial_fit(self, states, targets):
        """Adds sequences to the statistics.

        Args:
            states: (B, T, H) or one sequence (T, H).
            targets: (B, T, O) or (T, O), aligned with `states` step by step.

        Returns:
            self.
        """
        x, y = self._prepare(states, targets)
        if self.online:
            return self._recursive_least_squares(x, y)
        n = x.shape[0]
        mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - mean_x, y - mean_y
        cxx, cxy = xc.T @ xc, xc.T @ yc
        if self.count == 0:
            self._mean_x, self._mean_y, self._cxx, self._cxy = mean_x, mean_y, cxx, cxy
        else:
            total = self.count + n
            dx, dy = mean_x - self._mean_x, mean_y - self._mean_y
            weight = self.count * n / total
            self._cxx = self._cxx + cxx + weight * np.outer(dx, dx)
            self._cxy = self._cxy + cxy + weight * np.outer(dx, dy)
            self._mean_x = self._mean_x + dx * (n / total)
            self._mean_y = self._mean_y + dy * (n / total)
        self.count += n
        return self

    def finalize(self):
        """Solves the ridge problem from the statistics and writes `kernel` and `bias`.

        Returns:
            self.
        """
        if self.count == 0:
            raise ValueError("RidgeReadout.finalize needs data: call `partial_fit` first.")
        if self.online:  # written after every batch
            return self
        import scipy.linalg

        regularised = self._cxx + self.ridge * np.eye(self._cxx.shape[0])
        try:  # symmetric positive definite for λ > 0: Cholesky, half the work of an LU solve
            w_out = scipy.linalg.cho_solve(scipy.linalg.cho_factor(regularised, check_finite=False), self._cxy,
                                           check_finite=False)
        except np.linalg.LinAlgError:  # singular with ridge=0: the minimum-norm solution
            w_out = np.linalg.lstsq(regularised, self._cxy, rcond=None)[0]
        self.kernel.assign(w_out)
        self.bias.assign(self._mean_y - self._mean_x @ w_out)
        return self

    def _recursive_least_squares(self, x, y):
        """The online update over rows x (N, H), y (N, O), in order; writes `kernel` and `bias`."""
        features = x.shape[1] + 1
        if self._p is None:
            prior = np.full(features, 1.0 / self.ridge)
            prior[-1] /= self.ONLINE_BIAS_PRIOR
            self._p, self._w = np.diag(prior), np.zeros((features, y.shape[1]))
        p, w, gamma = self._p, self._w, self.forgetting
        x = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)  # x̃ = [x, 1]
        for row, target in zip(x, y):
            px = p @ row  # P·x̃ (P stays symmetric)
            gain = px / (gamma + row @ px)
            w += np.outer(gain, target - row @ w)
            p -= np.outer(gain, px)
            if gamma != 1.0:
                p /= gamma
            p[...] = 0.5 * (p + p.T)  # rounding makes P lose its symmetry, then its definiteness, then the fit
        self.count += x.shape[0]
        self.kernel.assign(w[:-1])
        self.bias.assign(w[-1])
        return self

    def fit(self, states, targets):
        """`reset_statistics`, one `partial_fit` and `finalize`. Returns self."""
        self.reset_statistics()
        return self.partial_fit(states, targets).finalize()

    def predict(self, states):
        """y = x·W_out + b in float64 NumPy (x with its powers up to `degree`): (..., H) -> (..., O)."""
        features = self._powers(np.asarray(states, dtype=np.float64), np.concatenate)
        return features @ np.asarray(self.kernel.numpy(), np.float64) + np.asarray(self.bias.numpy(), np.float64)

    def _powers(self, states, concatenate):
        """[x, x⊙x, …, x^degree] along the last axis, each power the previous one times x, so the graph
        (`ops.concatenate`) and NumPy (`np.concatenate`) round alike."""
        powers = [states]
        for _ in range(1, self.degree):
            powers.append(powers[-1] * states)
        return concatenate(powers, axis=-1) if self.degree > 1 else states

    def _prepare(self, states, targets):
        """(N, H) and (N, O) float64 rows, the warm-up of each sequence dropped."""
        x = np.asarray(states, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        if y.ndim == 2:
            y = y[None]
        if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
            raise ValueError(
                "`states` and `targets` must be (B, T, H) and (B, T, O) (or (T, H) and (T, O)) with the same "
                f"B and T. Received: states.shape={np.shape(states)}, targets.shape={np.shape(targets)}"
            )
        if x.shape[1] <= self.warmup:
            raise ValueError(
                f"Sequences must be longer than `warmup` to leave steps to fit. "
                f"Received: warmup={self.warmup}, sequence length {x.shape[1]}"
            )
        if self.units is None:
            self.units = y.shape[-1]
        if not self.built:
            self.build((None, x.shape[-1]))
        x = self._powers(x, np.concatenate)
        if (x.shape[-1], y.shape[-1]) != tuple(self.kernel.shape):
            width = self.kernel.shape[0] // self.degree
            raise ValueError(
                f"This readout maps states of {width} features to {self.kernel.shape[1]} outputs. "
                f"Received: states with {np.shape(states)[-1]} features, targets with {y.shape[-1]} outputs."
            )
        x, y = x[:, self.warmup :], y[:, self.warmup :]
        return x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units, "ridge": self.ridge, "warmup": self.warmup,
                "online": self.online, "forgetting": self.forgetting, "degree": self.degree}
