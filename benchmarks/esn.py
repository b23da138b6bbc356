"""Echo state network: accuracy and fit + forecast time against reservoirpy.

    python -m benchmarks.esn                   # README protocol at 100 and 2,000 units, + NRMSE84
    python -m benchmarks.esn --units 100 --seeds 0 1 2 --skip-nrmse84
    python -m benchmarks.esn --check-radius    # + the exact spectral radius of reservoirpy's W (dense eig)
    python -m benchmarks.esn --dense-too       # + the zoo with a dense W (its path before the sparse one)
    python -m benchmarks.esn --validate        # NRMSE84 of esn_mackey_glass_jaeger's neighbours, validation series

reservoirpy's README protocol (see docs/tasks-and-anchors.md):
2,000 steps of its Mackey–Glass series, one-step-ahead pairs, the last 20%
for test; ESN with spectral radius 1.25, leak 0.3, ridge 1e-5, 100 warm-up
steps; state carried from fit into forecast. Reported per seed: test RMSE and
R² of the zoo (`EchoState` + `RidgeReadout`) and, when reservoirpy is
installed (`pip install .[bench]`), of reservoirpy on the same series, and
the time of each, measured in the same run, alternating the two:

- cold: build (weights drawn, spectral radius computed; `build_s` alone), fit, forecast;
- warm: fit and forecast again with the built objects (the zoo's graph traced).

Jaeger 2001's NRMSE84 (≤ 400 units, `training.recipes.ESNJaegerRecipe`):
teacher-force 1,000 steps, run free 84, NRMSE of step 84 over 20 runs, for
the tuned `esn_mackey_glass_jaeger` and for the untuned `EchoState` defaults.
`--validate` measures the tuned configuration and its neighbours (one
hyperparameter moved at a time) on validation series only, the evidence for
the choice. Results: `benchmarks/results/esn.json` (`--out`).
"""

import argparse
import json
import pathlib
import time

import numpy as np
import tensorflow as tf

import zoo
from benchmarks.machine import describe_machine
from training.data.mackey_glass import mackey_glass
from training.recipes import fit_esn, recipe_for
from zoo.layers import esn as esn_module
from zoo.layers.esn import EchoState
from zoo.layers.ridge import RidgeReadout

README = {"spectral_radius": 1.25, "leak_rate": 0.3, "ridge": 1e-5, "warmup": 100}


def readme_split(n=2000):
    """One-step-ahead pairs of reservoirpy's series; the last 20% of the series for test."""
    series = mackey_glass(n)
    inputs, targets = series[:-1], series[1:]
    test = round(0.2 * n)
    return inputs[:-test], targets[:-test], inputs[-test:], targets[-test:]


def scores(prediction, truth):
    rmse = float(np.sqrt(np.mean((prediction - truth) ** 2)))
    r2 = float(1.0 - np.sum((prediction - truth) ** 2) / np.sum((truth - truth.mean()) ** 2))
    return {"rmse": rmse, "r2": r2}


class ZooESN:
    """The zoo's README ESN: reservoir run in a `tf.function`, ridge readout in NumPy float64."""

    def __init__(self, units, seed):
        self.reservoir = EchoState(
            units,
            spectral_radius=README["spectral_radius"],
            leak_rate=README["leak_rate"],
            seed=seed,
            return_sequences=True,
            return_state=True,
        )
        # One trace for any length, fitting (from zeros) and forecasting (from the fitted state) alike.
        self.run_reservoir = tf.function(
            lambda u, x: self.reservoir(u, initial_state=[x]),
            input_signature=[tf.TensorSpec([1, None, 1], tf.float64), tf.TensorSpec([1, units], tf.float64)],
        )
        self.readout = RidgeReadout(ridge=README["ridge"], warmup=README["warmup"])
        self.units = units
        self.reservoir.build((1, None, 1))  # W drawn and its spectral radius computed here (timed as build_s)

    def fit_forecast(self, u_train, y_train, u_test):
        states, x = self.run_reservoir(tf.constant(u_train[None]), tf.zeros((1, self.units), tf.float64))
        self.readout.fit(states, y_train[None])
        states, _ = self.run_reservoir(tf.constant(u_test[None]), x)  # the state carried on
        return self.readout.predict(states[0])


class ZooDenseESN(ZooESN):
    """`ZooESN` with W multiplied as a dense matrix (the layer before its sparse path): the same-run A/B."""

    def fit_forecast(self, *data):
        saved, esn_module.SPARSE_MAX_CONNECTIVITY = esn_module.SPARSE_MAX_CONNECTIVITY, 0.0
        try:  # the trace (first call) reads the threshold; later calls run that trace
            return super().fit_forecast(*data)
        finally:
            esn_module.SPARSE_MAX_CONNECTIVITY = saved


class ReservoirpyESN:
    """reservoirpy's own README ESN (its defaults otherwise)."""

    def __init__(self, units, seed):
        from reservoirpy.nodes import Reservoir, Ridge

        self.reservoir = Reservoir(units, lr=README["leak_rate"], sr=README["spectral_radius"], seed=seed)
        self.esn = self.reservoir >> Ridge(ridge=README["ridge"])

    def exact_spectral_radius(self):
        """max |eigenvalue| of the W reservoirpy built (it rescales by ARPACK's largest-magnitude estimate)."""
        return float(np.max(np.abs(np.linalg.eigvals(self.reservoir.W.toarray()))))

    def fit_forecast(self, u_train, y_train, u_test):
        self.esn.fit(u_train, y_train, warmup=README["warmup"])
        return self.esn.run(u_test)


def _timed(make, units, seed, data, check_radius=False):
    start = time.perf_counter()
    model = make(units, seed)
    build = time.perf_counter() - start
    prediction = model.fit_forecast(*data[:3])
    cold = time.perf_counter() - start
    start = time.perf_counter()
    model.fit_forecast(*data[:3])
    warm = time.perf_counter() - start
    row = {**scores(np.asarray(prediction).reshape(data[3].shape), data[3]), "cold_s": cold, "warm_s": warm,
           "build_s": build}
    if check_radius:  # after the timings: a dense eigendecomposition
        row["exact_spectral_radius"] = model.exact_spectral_radius()
    return row


def readme_protocol(units, seeds, with_reservoirpy, check_radius=False, dense_too=False):
    data = readme_split()
    rows = []
    for seed in seeds:
        row = {"units": units, "seed": seed, "zoo": _timed(ZooESN, units, seed, data)}
        if dense_too:
            row["zoo_dense"] = _timed(ZooDenseESN, units, seed, data)
        if with_reservoirpy:
            row["reservoirpy"] = _timed(ReservoirpyESN, units, seed, data, check_radius)
            for kind in ("cold", "warm"):
                row[f"{kind}_time_ratio_reservoirpy_over_zoo"] = (
                    row["reservoirpy"][f"{kind}_s"] / row["zoo"][f"{kind}_s"]
                )
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# EchoState's defaults with ridge 1e-8: the figure before any tuning (BENCHMARKS.md keeps it for comparison).
UNTUNED = {"units": 400, "spectral_radius": 1.0, "leak_rate": 1.0, "input_scaling": 1.0, "bias_scaling": 1.0,
           "rc_connectivity": 0.1, "input_connectivity": 0.1, "ridge": 1e-8, "warmup": 100}

# Each hyperparameter of esn_mackey_glass_jaeger moved one step either way (the search that chose it
# moved them the same way, in a float64 NumPy copy of the equations, on validation series only).
NEIGHBOURS = {"spectral_radius": (1.05, 1.25), "leak_rate": (0.2, 0.35), "input_scaling": (1.0, 2.0),
              "input_connectivity": (0.1,), "ridge": (1e-13, 1e-11)}


def nrmse84(seeds, history_seed=-1, **overrides):
    """Jaeger 2001's NRMSE84 of `esn_mackey_glass_jaeger` (with `overrides`) per reservoir seed.

    `history_seed` < 0 is the test series (Jaeger's constant history); ≥ 0 a validation series.
    """
    recipe = {"history_seed": history_seed, "overrides": overrides}
    return {seed: fit_esn(recipe_for("esn_mackey_glass_jaeger", seed=seed, **recipe))[1]["nrmse84"] for seed in seeds}


def validate(seeds=(0, 1, 2, 3), history_seeds=(1, 2)):
    """NRMSE84 on validation series of the chosen configuration and of each neighbour: geometric means."""
    candidates = [{}] + [{name: value} for name, values in NEIGHBOURS.items() for value in values]
    rows = []
    for change in candidates:
        values = [v for h in history_seeds for v in nrmse84(seeds, h, **change).values()]
        row = {"change": change, "geometric_mean": float(np.exp(np.mean(np.log(values)))), "values": values}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"chosen": zoo.card("esn_mackey_glass_jaeger")["defaults"], "reservoir_seeds": list(seeds),
            "history_seeds": list(history_seeds), "rows": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--skip-nrmse84", action="store_true")
    parser.add_argument("--nrmse84-seeds", type=int, default=10, help="reservoir seeds 0..N-1 for NRMSE84")
    parser.add_argument("--check-radius", action="store_true", help="exact spectral radius of reservoirpy's W")
    parser.add_argument("--dense-too", action="store_true", help="also the zoo with W multiplied densely (A/B)")
    parser.add_argument("--validate", action="store_true", help="only the validation of the NRMSE84 configuration")
    parser.add_argument("--out", help="default: benchmarks/results/esn.json (esn_validation.json with --validate)")
    args = parser.parse_args(argv)
    try:
        import reservoirpy

        reservoirpy_version = reservoirpy.__version__
    except ImportError:
        reservoirpy_version = None
    if args.validate:
        result = {"machine": describe_machine(), "validation": validate()}
        out = pathlib.Path(args.out or "benchmarks/results/esn_validation.json")
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")
        return
    result = {"machine": describe_machine(), "reservoirpy": reservoirpy_version, "protocol": README, "readme": []}
    for units in args.units:
        result["readme"] += readme_protocol(units, args.seeds, reservoirpy_version is not None, args.check_radius,
                                            args.dense_too)
    if not args.skip_nrmse84:
        seeds = range(args.nrmse84_seeds)
        tuned, untuned = nrmse84(seeds), nrmse84(seeds, **UNTUNED)
        result["nrmse84"] = {
            "esn_mackey_glass_jaeger": tuned, "untuned": untuned, "untuned_config": UNTUNED,
            "median_tuned": float(np.median(list(tuned.values()))),
            "median_untuned": float(np.median(list(untuned.values()))),
        }
        print("NRMSE84", json.dumps(result["nrmse84"]))
    out = pathlib.Path(args.out or "benchmarks/results/esn.json")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
