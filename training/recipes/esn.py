"""Echo state networks on Mackey-Glass: the readout is fitted in closed form (ridge regression), so a
recipe fits and measures in seconds and has nothing to checkpoint.

- `ESNReadmeRecipe`: reservoirpy's README protocol, one step ahead.
- `ESNJaegerRecipe`: Jaeger 2001's NRMSE84, 84 free-running steps.
"""

import dataclasses
from typing import ClassVar

import numpy as np

from training.config import Recipe, knob
from training.data.mackey_glass import jaeger_squash, mackey_glass, mackey_glass_jaeger
from zoo._checks import check_number

__all__ = ["ESNRecipe", "ESNReadmeRecipe", "ESNJaegerRecipe", "fit_esn"]


@dataclasses.dataclass
class ESNRecipe(Recipe):
    """Base of the echo state network recipes. Subclasses set the protocol (`fit`) and the data (`data`)."""

    def fit(self, model):
        """Fits `model`'s readout and measures it: dict name -> float."""
        raise NotImplementedError

    def build_model(self):
        import zoo

        return zoo.get(self.model, **{"seed": self.seed, **self.overrides})

    def train(self, verbose=1):
        model = self.build_model()
        return model, self.fit(model)

    def evaluate(self, model):
        return self.fit(model)

    def diagnostic_inputs(self, model):
        return self.split()[2][None, :200]  # the first 200 test inputs, (1, 200, 1)


def fit_esn(recipe, model=None):
    """Builds the recipe's model (unless given), fits its readout; returns (model, the recipe's figures)."""
    model = model or recipe.build_model()
    return model, recipe.fit(model)


@dataclasses.dataclass
class ESNReadmeRecipe(ESNRecipe):
    """reservoirpy's README protocol: 2,000 steps, one step ahead, last 20% for test, 100 warm-up steps."""

    model: str = "esn_mackey_glass"
    series_length: int = 2000  # samples of reservoirpy's `mackey_glass`
    test_fraction: float = 0.2
    seeds_to_try: int = 10  # `quality` chooses the reservoir seed on a validation split of the training part

    data: ClassVar[str] = ("training.data.mackey_glass.mackey_glass(2000), reservoirpy's generator; one step ahead, "
                           "last 20% test")

    def __post_init__(self):
        super().__post_init__()
        check_number("test_fraction", self.test_fraction, low=0, high=1, low_open=True, high_open=True)

    def split(self):
        series = mackey_glass(self.series_length)
        inputs, targets = series[:-1], series[1:]
        test = round(self.test_fraction * self.series_length)
        return inputs[:-test], targets[:-test], inputs[-test:], targets[-test:]

    def fit(self, model):
        """One-step-ahead test RMSE and R², the state carried on from the fit into the test part."""
        u_train, y_train, u_test, y_test = self.split()
        final = model.fit_readout(u_train[None], y_train[None])
        predicted = model.one_step(u_test[None], initial_state=final)[0][0]
        residual = np.sum((predicted - y_test) ** 2)
        return {"rmse": float(np.sqrt(residual / len(y_test))),
                "r2": float(1 - residual / np.sum((y_test - y_test.mean()) ** 2))}

    def judge(self, metrics):
        value = metrics["rmse"]
        return {"metric": "rmse", "value": value, "bar": "<= 0.0020", "passed": value <= 0.0020,
                "anchor": "reservoirpy README: RMSE 0.0020, R2 0.99992 (0.0019-0.0030 across seeds)",
                "data": self.data}

    def quality(self):
        """Seed chosen on a validation split cut from the training part, then measured on the test part."""
        validation = {seed: self.replace(seed=seed, series_length=1600, test_fraction=0.25).train()[1]["rmse"]
                      for seed in range(self.seeds_to_try)}  # 1,600 training samples: the last 400 validate
        best = min(validation, key=validation.get)
        tests = {seed: self.replace(seed=seed).train()[1]["rmse"] for seed in validation}
        recipe = self.replace(seed=best)
        model, metrics = recipe.train()
        notes = (f"seed {best} chosen by validation RMSE {validation}; test RMSE of every seed: {tests}; "
                 f"median {float(np.median(list(tests.values()))):.5f}")
        return model, recipe, {**recipe.judge(metrics), "metrics": metrics, "notes": notes}

    def figures(self, model, folder):
        from training import plots

        u_train, _, u_test, y_test = self.split()
        _, final = model.states(u_train[None])  # the test part runs on from the state the training part left
        predicted = model.one_step(u_test[None], initial_state=final)[0][0]
        rmse = float(np.sqrt(np.mean((predicted - y_test) ** 2)))
        title = f"{self.model}: one-step forecast on the last {len(y_test)} samples (RMSE {rmse:.5f})"
        return {"forecast": plots.forecast_vs_truth(y_test, predicted, folder / "forecast.png", title).name}


@dataclasses.dataclass
class ESNJaegerRecipe(ESNRecipe):
    """Jaeger 2001's NRMSE84 on tanh(x − 1) of his Mackey–Glass series (Euler 0.1, every 10th sample).

    The readout is fitted one step ahead on `train_steps` teacher-forced steps
    (the model's `warmup` first states left out); then each of `runs` runs
    continues from the fitted state, is teacher-forced for `teacher_steps`
    steps of the series that follow and runs free for `horizon` steps, each
    prediction fed back as the next input (all runs in one batch):

        NRMSE_k = sqrt(mean over runs of (y − ŷ)² at free step k / σ²),  σ² the variance of the series

    `nrmse84` is NRMSE_k at k = `horizon`. The test series starts from Jaeger's
    constant history (`history_seed` < 0); hyperparameters were chosen on
    series from seeded random histories, which are other stretches of the same
    attractor (benchmarks/esn.py `--validate`).
    """

    model: str = "esn_mackey_glass_jaeger"
    train_steps: int = 3000  # as in the paper (its other figure: 21,000 steps, NRMSE84 1.2e-4)
    runs: int = 20
    teacher_steps: int = 1000
    horizon: int = 84
    series_washout: int = 1000  # samples dropped first: the transient from the initial history
    # < 0: the constant history x0 (the test series); >= 0: a seeded random history
    history_seed: int = knob(-1, minimum=-1)
    seeds_to_try: int = 10  # `quality` reports the median over reservoir seeds 0..seeds_to_try-1
    # Amplitude of uniform noise added inside the reservoir's activation while harvesting the training states
    # (Jaeger 2001's stabiliser of closed loops; `zoo.layers.esn.harvest_states`); 0: none
    state_noise: float = knob(0.0, at_least=0.0)

    data: ClassVar[str] = ("tanh(x - 1) of training.data.mackey_glass.mackey_glass_jaeger (Euler 0.1, every 10th "
                           "sample, constant history 1.2, first 1,000 samples dropped); 3,000 training steps, then "
                           "20 runs of 1,000 teacher-forced + 84 free steps")

    def series(self):
        """(N, 1) float64: the squashed series, training part first, then the runs one after another."""
        length = self.train_steps + self.runs * (self.teacher_steps + self.horizon) + 1
        seed = None if self.history_seed < 0 else self.history_seed
        return jaeger_squash(mackey_glass_jaeger(length, washout=self.series_washout, seed=seed))

    def fit(self, model):
        series = self.series()
        train, teacher, horizon = self.train_steps, self.teacher_steps, self.horizon
        (final,) = model.fit_readout(series[None, :train], series[None, 1 : train + 1], noise=self.state_noise,
                                     noise_seed=model.reservoir.cell.seed)
        starts = train + np.arange(self.runs) * (teacher + horizon)
        warmups = np.stack([series[a : a + teacher] for a in starts])  # (runs, teacher, 1)
        truth = np.stack([series[a + teacher : a + teacher + horizon] for a in starts])  # (runs, horizon, 1)
        states = np.repeat(np.asarray(final), self.runs, axis=0)  # every run goes on from the fitted state
        predictions = np.asarray(model.forecast(warmups, horizon, initial_state=[states])[0])
        nrmse = np.sqrt(np.mean((predictions - truth)[..., 0] ** 2, axis=0) / np.var(series))  # (horizon,)
        return {f"nrmse{horizon}": float(nrmse[-1]), "nrmse1": float(nrmse[0]),
                f"nrmse{horizon // 2}": float(nrmse[horizon // 2 - 1])}

    def judge(self, metrics):
        value = metrics["nrmse84_median"]
        return {"metric": "nrmse84", "value": value, "bar": "<= 2.8e-4", "passed": value <= 2.8e-4,
                "anchor": "Jaeger 2001 (GMD Report 148): 400-unit leaky ESN, 3,000 training steps, NRMSE84 2.8e-4 "
                "(21,000 steps: 1.2e-4); Jaeger & Haas 2004: 1,000 units, about 10^-4.2",
                "data": self.data}

    def quality(self):
        """The median over reservoir seeds on the test series, and what choosing a seed on one validation series
        would give. The row's model is seed 0's."""
        seeds = range(self.seeds_to_try)
        fitted = {seed: self.replace(seed=seed).train() for seed in seeds}
        model, first = fitted[0]
        tests = {seed: metrics["nrmse84"] for seed, (_, metrics) in fitted.items()}
        validation = {seed: self.replace(seed=seed, history_seed=1).train()[1]["nrmse84"] for seed in seeds}
        value = float(np.median(list(tests.values())))
        chosen = min(validation, key=validation.get)
        metrics = {"nrmse84_median": value, "nrmse84_best": min(tests.values()), "nrmse84_seed0": first["nrmse84"],
                   "nrmse1_seed0": first["nrmse1"], "nrmse84_validation_chosen_seed": tests[chosen]}
        notes = (f"median over reservoir seeds 0-{self.seeds_to_try - 1}; test NRMSE84 per seed {tests}; validation "
                 f"NRMSE84 (history seed 1) per seed {validation}, which would choose seed {chosen}: test "
                 f"{tests[chosen]:.3g}")
        return model, self.replace(seed=0), {**self.judge(metrics), "metrics": metrics, "notes": notes}
