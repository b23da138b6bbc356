"""An echo state network: a fixed reservoir and a ridge-regression readout."""

import keras
import numpy as np

from zoo._checks import check_positive_int
from zoo.layers.esn import EchoState, closed_loop, forecast, harvest_states
from zoo.layers.ridge import RidgeReadout

__all__ = ["ESNForecaster"]


@keras.saving.register_keras_serializable(package="zoo")
class ESNForecaster(keras.Model):
    """Reservoir states → ridge readout (linear, or polynomial in the states), fitted in closed form.

    Nothing here is trained by gradients: `fit` drives the reservoir once and
    solves the ridge problem (`RidgeReadout`); both the drawn reservoir and the
    fitted readout are non-trainable weights, so a `.keras` file restores them.

    Args:
        units, spectral_radius, leak_rate, input_scaling, bias_scaling,
        rc_connectivity, input_connectivity, seed: as `zoo.layers.EchoState`.
        output_dim: readout width O.
        ridge: λ of the readout.
        warmup: steps at the start of each fitted sequence left out of the fit.
        readout_degree: the readout reads the states' powers 1 to this (`RidgeReadout`'s `degree`); 1: linear.

    Call arguments:
        inputs: (B, T, I) float64 tensor.
        initial_state: optional `[x]`, (B, units).

    Returns:
        (B, T, O) readout of every state.
    """

    # The exported `forecast` signature's bound on a row's horizon: the embedded server's default
    # --max_generation_steps, which it applies to any input named `steps`.
    MAX_FORECAST_STEPS = 4096

    def __init__(self, units=100, spectral_radius=1.25, leak_rate=0.3, input_scaling=1.0, bias_scaling=1.0,
                 rc_connectivity=0.1, input_connectivity=0.1, seed=0, output_dim=1, ridge=1e-5, warmup=100,
                 readout_degree=1, **kwargs):
        kwargs.setdefault("dtype", "float64")
        super().__init__(**kwargs)
        self.reservoir_config = dict(
            units=units, spectral_radius=spectral_radius, leak_rate=leak_rate, input_scaling=input_scaling,
            bias_scaling=bias_scaling, rc_connectivity=rc_connectivity, input_connectivity=input_connectivity,
            seed=seed,
        )
        self.output_dim, self.ridge, self.warmup = output_dim, ridge, warmup
        self.readout_degree = check_positive_int("readout_degree", readout_degree)  # named as the caller passed it
        self.reservoir = EchoState(return_sequences=True, return_state=True, name="reservoir", **self.reservoir_config)
        self.readout = RidgeReadout(output_dim, ridge=ridge, warmup=warmup, degree=readout_degree,
                                    name="readout")

    def build(self, input_shape):
        self.reservoir.build(input_shape)
        if not self.readout.built:
            self.readout.build((None, self.reservoir.cell.units))

    def states(self, inputs, initial_state=None, noise=0.0, noise_seed=None):
        """Reservoir states (B, T, H) and the final state [x], in float64 NumPy (`harvest_states`)."""
        if not self.built:
            self.build(np.shape(inputs))
        states, x = harvest_states(self.reservoir, inputs, initial_state, noise=noise, noise_seed=noise_seed)
        return states, [x]

    def call(self, inputs, initial_state=None):
        states, _ = self.reservoir(keras.ops.convert_to_tensor(inputs, "float64"), initial_state=initial_state)
        return self.readout(states)

    def one_step(self, inputs, initial_state=None):
        """One-step predictions (B, T, O) in float64 NumPy and the final state [x]: `call` without a graph."""
        states, final = self.states(inputs, initial_state)
        return self.readout.predict(states), final

    def fit_readout(self, inputs, targets, noise=0.0, noise_seed=None):
        """Drives the reservoir over `inputs` (B, T, I) and fits the readout to `targets` (B, T, O).

        Args:
            inputs, targets: as above.
            noise, noise_seed: state noise while harvesting (see `harvest_states`); 0 for none.

        Returns:
            The final reservoir state [x], to continue the same trajectory.
        """
        states, final = self.states(inputs, noise=noise, noise_seed=noise_seed)
        self.readout.fit(states, np.asarray(targets, np.float64))
        return final

    def forecast(self, warmup_inputs, steps, initial_state=None):
        """Closed-loop forecast (see `zoo.layers.esn.forecast`)."""
        return forecast(self.reservoir, self.readout, warmup_inputs, steps, initial_state)

    def serving_endpoints(self):
        """`zoo.export.Exportable`: `serving_default`, float64 series (B, T, I) in, one-step predictions
        (B, T, O) out; `forecast`, a closed-loop forecast: each row's series teacher-forced from the zero
        state, then `steps[b]` predictions fed back as inputs, (B, max(steps), O), NaN past a row's horizon.
        `steps` is checked in the graph: 1 to `MAX_FORECAST_STEPS`."""
        import tensorflow as tf

        from zoo._checks import passed_through

        def outputs(inputs):
            return {"outputs": self(inputs)}

        def forecast_signature(inputs, steps):
            in_range = tf.logical_and(steps >= 1, steps <= self.MAX_FORECAST_STEPS)
            message = (f"`steps` must be integers in [1, {self.MAX_FORECAST_STEPS}] (one horizon per row). "
                       "Received: steps=")
            check = tf.debugging.Assert(tf.reduce_all(in_range), [message, steps], summarize=8)
            inputs, steps = passed_through([check], inputs, steps)
            _, x = self.reservoir(inputs)
            total = tf.reduce_max(steps)
            with self.reservoir.cell.recurrence():
                predictions, _ = closed_loop(self.reservoir.cell, self.readout, [x], total, self.output_dim)
            beyond = tf.range(total)[None, :] >= steps[:, None]  # (B, max(steps)): past the row's horizon
            nan = tf.constant(float("nan"), predictions.dtype)
            return {"forecast": tf.where(beyond[:, :, None], nan, predictions)}

        width = self.reservoir.cell.input_dim
        spec = tf.TensorSpec([None, None, width], tf.float64, name="inputs")
        steps = tf.TensorSpec([None], tf.int32, name="steps")
        endpoints = {"serving_default": (outputs, [spec])}
        if width == self.output_dim:  # the prediction can be the next input
            endpoints["forecast"] = (forecast_signature, [spec, steps])
        return endpoints

    def warmup_requests(self):
        """`zoo.export.Exportable`: one small request per signature (TensorFlow optimises a graph on its first run)."""
        series = np.zeros((1, 2, self.reservoir.cell.input_dim), np.float64)
        requests = [("serving_default", {"inputs": series})]
        if self.reservoir.cell.input_dim == self.output_dim:
            requests.append(("forecast", {"inputs": series, "steps": np.array([2], np.int32)}))
        return requests

    def get_config(self):
        return {**super().get_config(), **self.reservoir_config, "output_dim": self.output_dim,
                "ridge": self.ridge, "warmup": self.warmup, "readout_degree": self.readout_degree}
