"""Echo state network: accuracy and fit + forecast time against reservoirpy.

    python -m benchmarks.esn                   # README protocol at 100, 400, 2,000, 5,000 units, memory, NRMSE84
    python -m benchmarks.esn --units 100 --rounds 3 --skip-nrmse84 --skip-memory
    python -m benchmarks.esn --check-radius    # + the exact spectral radius of reservoirpy's W (dense eig)
    python -m benchmarks.esn --layer-too       # + the zoo's states from the Keras layer (its path before)
    python -m benchmarks.esn --validate        # NRMSE84 of esn_mackey_glass_jaeger's neighbours, validation series
    python -m benchmarks.esn --jaeger-options  # NRMSE84 with state noise (chosen on validation), and 1,000 units
    python -m benchmarks.esn --test-seeds 30   # NRMSE84 of esn_mackey_glass_jaeger on the test series, seeds 0-29
    python -m benchmarks.esn --big-reservoir   # the same at 1,000 units, ridge chosen again on validation

reservoirpy's README protocol (see docs/tasks-and-anchors.md):
2,000 steps of its Mackey–Glass series, one-step-ahead pairs, the last 20%
for test; ESN with spectral radius 1.25, leak 0.3, ridge 1e-5, 100 warm-up
steps; state carried from fit into forecast. Reported per size: test RMSE and
R² of the zoo (`EchoState` states by `harvest_states`, `RidgeReadout`) and,
when reservoirpy is installed (`pip install .[bench]`), of reservoirpy on the
same series, and the time of each, measured in the same run:

- cold: build (weights drawn, spectral radius computed; `build_s` alone), fit, forecast;
- warm: fit and forecast again with the built objects, `--rounds` rounds, the
  contenders interleaved (order reversed every other round); ratio =
  reservoirpy / zoo per round, median and range reported;
- memory: peak RSS of build + fit + forecast at `--memory-units`, each
  contender in a fresh process (`--memory-worker`).

Jaeger 2001's NRMSE84 (≤ 400 units, `training.recipes.ESNJaegerRecipe`):
teacher-force 1,000 steps, run free 84, NRMSE of step 84 over 20 runs, for
the tuned `esn_mackey_glass_jaeger` and for the untuned `EchoState` defaults.
`--validate` measures the tuned configuration and its neighbours (one
hyperparameter moved at a time) on validation series only, the evidence for
the choice. Results: `benchmarks/results/esn.json` (`--out`); the NRMSE84 block
in `esn_nrmse84.json` beside it.
"""

import argparse
import json
import os
import pathlib
import time

import numpy as np
import tensorflow as tf

import zoo
from benchmarks.machine import describe_machine, write_results
from training.data.mackey_glass import mackey_glass
from training.recipes import fit_esn, recipe_for
from zoo.layers.esn import EchoState, harvest_states
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
    """The zoo's README ESN as a user fits it: `EchoState` + `harvest_states` (NumPy, CSR W) + `RidgeReadout`."""

    def __init__(self, units, seed):
        self.reservoir = EchoState(units, spectral_radius=README["spectral_radius"], leak_rate=README["leak_rate"],
                                   seed=seed)
        self.readout = RidgeReadout(ridge=README["ridge"], warmup=README["warmup"])
        self.reservoir.build((1, None, 1))  # W drawn and its spectral radius computed here (timed as build_s)

    def fit_forecast(self, u_train, y_train, u_test):
        states, x = harvest_states(self.reservoir, u_train)
        self.readout.fit(states, y_train)
        return self.readout.predict(harvest_states(self.reservoir, u_test, x)[0])  # the state carried on


class ZooLayerESN(ZooESN):
    """The same model with the states from the Keras layer in one `tf.function` (the path before `harvest_states`)."""

    def __init__(self, units, seed):
        super().__init__(units, seed)
        layer = EchoState(units, spectral_radius=README["spectral_radius"], leak_rate=README["leak_rate"], seed=seed,
                          return_sequences=True, return_state=True)
        layer.build((1, None, 1))
        self.run_reservoir = tf.function(  # one trace for any length, from zeros and from the fitted state alike
            lambda u, x: layer(u, initial_state=[x]),
            input_signature=[tf.TensorSpec([1, None, 1], tf.float64), tf.TensorSpec([1, units], tf.float64)],
        )
        self.units = units

    def fit_forecast(self, u_train, y_train, u_test):
        states, x = self.run_reservoir(tf.constant(u_train[None]), tf.zeros((1, self.units), tf.float64))
        self.readout.fit(states, y_train[None])
        states, _ = self.run_reservoir(tf.constant(u_test[None]), x)
        return self.readout.predict(states[0])


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


CONTENDERS = {"zoo": ZooESN, "zoo_layer": ZooLayerESN, "reservoirpy": ReservoirpyESN}


def _spread(values):
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def readme_protocol(units, seed, names, rounds, check_radius=False):
    """Cold (build + first fit + forecast) once per contender, then `rounds` warm rounds, contenders interleaved
    and their order reversed every other round; ratios = reservoirpy time / zoo time of the same round."""
    data = readme_split()
    models, row = {}, {"units": units, "seed": seed}
    for name in names:
        start = time.perf_counter()
        models[name] = CONTENDERS[name](units, seed)
        build = time.perf_counter() - start
        prediction = models[name].fit_forecast(*data[:3])
        row[name] = {**scores(np.asarray(prediction).reshape(data[3].shape), data[3]), "build_s": build,
                     "cold_s": time.perf_counter() - start, "warm_rounds_s": []}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            models[name].fit_forecast(*data[:3])
            row[name]["warm_rounds_s"].append(time.perf_counter() - start)
    for name in names:
        row[name]["warm_s"] = float(np.median(row[name]["warm_rounds_s"]))
        row[name]["warm_spread_s"] = _spread(row[name]["warm_rounds_s"])
    if "reservoirpy" in names:
        zoo_rounds = np.asarray(row["zoo"]["warm_rounds_s"])
        ratios = np.asarray(row["reservoirpy"]["warm_rounds_s"]) / zoo_rounds
        row["warm_ratio_reservoirpy_over_zoo"] = _spread(ratios)
        row["warm_time_ratio_reservoirpy_over_zoo"] = float(np.median(ratios))
        row["cold_time_ratio_reservoirpy_over_zoo"] = row["reservoirpy"]["cold_s"] / row["zoo"]["cold_s"]
        if check_radius:  # after the timings: a dense eigendecomposition
            row["reservoirpy"]["exact_spectral_radius"] = models["reservoirpy"].exact_spectral_radius()
    print(json.dumps({k: v for k, v in row.items()}), flush=True)
    return row


def _vm(field):
    """A /proc/self/status figure in MiB (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def _memory_worker(name, units, seed):
    """Peak RSS of one contender's build + fit + forecast, in a fresh process, printed as JSON. The peak is
    reset (Linux clear_refs) after the imports and the data, so TensorFlow's import peak is not counted."""
    import tracemalloc

    data = readme_split()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _vm("VmRSS")
    tracemalloc.start()
    CONTENDERS[name](units, seed).fit_forecast(*data[:3])
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps({"rss_before_mib": before, "peak_rss_mib": _vm("VmHWM"),
                      "peak_rss_over_start_mib": _vm("VmHWM") - before, "tracemalloc_peak_mib": traced}))


def memory(names, units, seed):
    """`_memory_worker` of each contender in its own process."""
    import subprocess
    import sys

    out = {}
    for name in names:
        command = [sys.executable, "-m", "benchmarks.esn", "--memory-worker", name, "--units", str(units),
                   "--seeds", str(seed)]
        lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()
        out[name] = json.loads(lines[-1])
        print(name, units, out[name], flush=True)
    return {"units": units, "seed": seed, **out}


JAEGER_BAR = 2.8e-4  # NRMSE84 of Jaeger 2001's 400-unit ESN (`ESNJaegerRecipe.judge`)

# EchoState's defaults with ridge 1e-8: the figure before any tuning (BENCHMARKS.md keeps it for comparison).
UNTUNED = {"units": 400, "spectral_radius": 1.0, "leak_rate": 1.0, "input_scaling": 1.0, "bias_scaling": 1.0,
           "rc_connectivity": 0.1, "input_connectivity": 0.1, "ridge": 1e-8, "warmup": 100, "readout_degree": 1}

# Each hyperparameter of esn_mackey_glass_jaeger moved one step either way (the search that chose it
# moved them the same way, in a float64 NumPy copy of the equations, on validation series only;
# esn_validation.json holds the same check of the linear readout's configuration, with its neighbours).
NEIGHBOURS = {"spectral_radius": (1.2, 1.4), "leak_rate": (0.275, 0.325), "input_scaling": (2.0, 3.0),
              "bias_scaling": (0.55, 0.85), "readout_degree": (3, 5), "ridge": (3e-12, 3e-11)}


def nrmse84(seeds, history_seed=-1, **overrides):
    """Jaeger 2001's NRMSE84 of `esn_mackey_glass_jaeger` (with `overrides`) per reservoir seed.

    `history_seed` < 0 is the test series (Jaeger's constant history); ≥ 0 a validation series.
    """
    recipe = {"history_seed": history_seed, "overrides": overrides}
    return {seed: fit_esn(recipe_for("esn_mackey_glass_jaeger", seed=seed, **recipe))[1]["nrmse84"] for seed in seeds}


def _geometric_mean(values):
    return float(np.exp(np.mean(np.log(values))))


def _choose(candidates, seeds, history_seeds, **fixed):
    """Validation rows of each candidate (`nrmse84` over reservoir × history seeds) and the best one's change."""
    rows = []
    for change in candidates:
        values = [v for h in history_seeds for v in nrmse84(seeds, h, **fixed, **change).values()]
        rows.append({"change": change, "geometric_mean": _geometric_mean(values), "values": values})
        print(json.dumps(rows[-1]), flush=True)
    return rows, min(rows, key=lambda row: row["geometric_mean"])["change"]


def validate(seeds=(0, 1, 2, 3), history_seeds=(1, 2), changes=None):
    """NRMSE84 on validation series of the chosen configuration and of each change to it (default: each
    neighbour): geometric means."""
    candidates = [{}] + (changes if changes is not None else
                         [{name: value} for name, values in NEIGHBOURS.items() for value in values])
    rows, _ = _choose(candidates, seeds, history_seeds)
    return {"chosen": zoo.card("esn_mackey_glass_jaeger")["defaults"], "reservoir_seeds": list(seeds),
            "history_seeds": list(history_seeds), "rows": rows}


# Sized for the shared 2-core machine (an earlier scratch search covered 1e-9-1e-5, BENCHMARKS.md).
NOISE_LEVELS = (0.0, 1e-6)


def jaeger_options(validation_seeds=(0, 1), history_seeds=(1,), test_seeds=range(10), big_seeds=range(3)):
    """State noise chosen on validation series; then the test series at 400 units and at 1,000 (Jaeger & Haas 2004's
    size, the same hyperparameters otherwise)."""

    def run(seeds, history_seed=-1, **fields):
        recipe = {"history_seed": history_seed, **fields}
        return {s: fit_esn(recipe_for("esn_mackey_glass_jaeger", seed=s, **recipe))[1]["nrmse84"] for s in seeds}

    rows = []
    for noise in NOISE_LEVELS:
        values = [v for h in history_seeds for v in run(validation_seeds, h, state_noise=noise).values()]
        rows.append({"state_noise": noise, "validation_geometric_mean": _geometric_mean(values), "values": values})
        print(json.dumps(rows[-1]), flush=True)
    chosen = min(rows, key=lambda r: r["validation_geometric_mean"])["state_noise"]
    test = run(test_seeds, state_noise=chosen)
    print("test", json.dumps(test), flush=True)
    big = run(big_seeds, state_noise=chosen, overrides={"units": 1000})
    print("1000 units", json.dumps(big), flush=True)
    return {"validation": {"reservoir_seeds": list(validation_seeds), "history_seeds": list(history_seeds),
                           "rows": rows},
            "chosen_state_noise": chosen, "test_400": test, "median_test_400": float(np.median(list(test.values()))),
            "test_1000": big, "median_test_1000": float(np.median(list(big.values()))), "bar": JAEGER_BAR}


# The readout's options, each with the ridges around the one the linear readout was chosen with (its squares
# have other scales, so their λ is chosen again).
READOUT_CANDIDATES = [{}] + [{"readout_degree": 2, "ridge": ridge} for ridge in (1e-12, 1e-11, 1e-10)]
# The reservoir the linear readout was chosen with (`--validate`, esn_validation.json), which these candidates
# change only in the readout: pinned, since the model's defaults have moved on since.
LINEAR_CHOICE = {"spectral_radius": 1.15, "leak_rate": 0.275, "input_scaling": 1.4, "bias_scaling": 1.0,
                 "ridge": 1e-12, "warmup": 300, "readout_degree": 1}
BIG_CANDIDATES = [{"readout_degree": degree, "ridge": ridge} for degree in (1, 2) for ridge in (1e-11, 1e-10)]


def readout_options(seeds=(0, 1, 2, 3), history_seeds=(1, 2), test_seeds=range(10), big_seeds=(0, 1),
                    big_test_seeds=range(5)):
    """The squared-state readout against the linear one: chosen on validation series at 400 units, then the test
    series; and Jaeger & Haas 2004's 1,000 units with readout and λ chosen again on validation series."""
    rows, chosen = _choose([{**LINEAR_CHOICE, **c} for c in READOUT_CANDIDATES], seeds, history_seeds)
    test = nrmse84(test_seeds, **chosen)
    print("test 400", json.dumps(test), flush=True)
    big_rows, big_chosen = _choose([{**LINEAR_CHOICE, **c} for c in BIG_CANDIDATES], big_seeds, history_seeds,
                                   units=1000)
    big_test = nrmse84(big_test_seeds, units=1000, **big_chosen)
    print("test 1000", json.dumps(big_test), flush=True)
    return {"base": LINEAR_CHOICE,
            "validation_400": {"reservoir_seeds": list(seeds), "history_seeds": list(history_seeds), "rows": rows},
            "chosen_400": chosen, "test_400": test, "median_test_400": float(np.median(list(test.values()))),
            "validation_1000": {"reservoir_seeds": list(big_seeds), "history_seeds": list(history_seeds),
                                "rows": big_rows},
            "chosen_1000": big_chosen, "test_1000": big_test,
            "median_test_1000": float(np.median(list(big_test.values()))), "bar": JAEGER_BAR}


BIG_RIDGES = (1e-11, 1e-10, 1e-9)


def big_reservoir(units=1000, seeds=(0, 1), history_seeds=(1, 2), test_seeds=range(10)):
    """Jaeger & Haas 2004's 1,000 units with the shipped configuration otherwise, λ chosen again on validation
    series (four times the features call for another λ); then the test series."""
    rows, chosen = _choose([{"ridge": ridge} for ridge in BIG_RIDGES], seeds, history_seeds, units=units)
    test = nrmse84(test_seeds, units=units, **chosen)
    print(f"test {units}", json.dumps(test), flush=True)
    return {"config": {**zoo.card("esn_mackey_glass_jaeger")["defaults"], "units": units},
            "validation": {"reservoir_seeds": list(seeds), "history_seeds": list(history_seeds), "rows": rows},
            "chosen": chosen, "test": test, "median_test": float(np.median(list(test.values()))),
            "jaeger_haas_2004": 10**-4.2}


def test_seeds(count):
    """`esn_mackey_glass_jaeger` as shipped on the test series over reservoir seeds 0..count-1: whether the bar
    is a property of the configuration rather than of seeds 0-9 (nothing is chosen here)."""
    values = nrmse84(range(count))
    bar = JAEGER_BAR
    return {"config": zoo.card("esn_mackey_glass_jaeger")["defaults"], "nrmse84": values,
            "median": float(np.median(list(values.values()))),
            "median_seeds_0_9": float(np.median([values[s] for s in range(min(count, 10))])),
            "share_at_or_under_bar": float(np.mean([v <= bar for v in values.values()])), "bar": bar}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[100, 400, 2000, 5000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rounds", type=int, default=7, help="warm rounds per size, contenders interleaved")
    parser.add_argument("--skip-nrmse84", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-units", type=int, default=5000)
    parser.add_argument("--memory-worker", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--nrmse84-seeds", type=int, default=10, help="reservoir seeds 0..N-1 for NRMSE84")
    parser.add_argument("--check-radius", action="store_true", help="exact spectral radius of reservoirpy's W")
    parser.add_argument("--layer-too", action="store_true", help="also the zoo with states from the Keras layer")
    parser.add_argument("--jaeger-options", action="store_true",
                        help="only NRMSE84 with state noise (chosen on validation) and at 1,000 units")
    parser.add_argument("--validate", action="store_true", help="only the validation of the NRMSE84 configuration")
    parser.add_argument("--history-seeds", type=int, nargs="+", default=[1, 2],
                        help="with --validate: the validation series (seeded random histories)")
    parser.add_argument("--changes", type=json.loads, metavar="JSON",
                        help='with --validate: a list of changes to try instead of the neighbours, e.g. '
                             '\'[{"input_scaling": 2.5}]\'')
    parser.add_argument("--readout-options", action="store_true",
                        help="only NRMSE84 with the squared-state readout (chosen on validation), 400 and 1,000 units")
    parser.add_argument("--big-reservoir", action="store_true",
                        help="only NRMSE84 at 1,000 units (Jaeger & Haas 2004), ridge chosen again on validation")
    parser.add_argument("--test-seeds", type=int, metavar="N",
                        help="only NRMSE84 of the shipped configuration on the test series, reservoir seeds 0..N-1")
    parser.add_argument("--out", help="default: benchmarks/results/esn.json (esn_validation.json with --validate)")
    args = parser.parse_args(argv)
    try:
        import reservoirpy

        reservoirpy_version = reservoirpy.__version__
    except ImportError:
        reservoirpy_version = None
    if args.memory_worker:
        _memory_worker(args.memory_worker, args.units[0], args.seeds[0])
        return
    if args.jaeger_options:
        write_results({"machine": describe_machine(), "jaeger_options": jaeger_options()},
               args.out or "benchmarks/results/esn_jaeger_options.json")
        return
    if args.readout_options:
        write_results({"machine": describe_machine(), "command": "python -m benchmarks.esn --readout-options",
                       "readout_options": readout_options()},
                      args.out or "benchmarks/results/esn_readout_options.json")
        return
    if args.big_reservoir:
        write_results({"machine": describe_machine(), "command": "python -m benchmarks.esn --big-reservoir",
                       "big_reservoir": big_reservoir()}, args.out or "benchmarks/results/esn_big_reservoir.json")
        return
    if args.test_seeds:
        command = f"python -m benchmarks.esn --test-seeds {args.test_seeds}"
        write_results({"machine": describe_machine(), "command": command, "test_seeds": test_seeds(args.test_seeds)},
                      args.out or "benchmarks/results/esn_jaeger_test_seeds.json")
        return
    if args.validate:
        write_results({"machine": describe_machine(), "command": "python -m benchmarks.esn --validate"
                       + (f" --changes '{json.dumps(args.changes)}'" if args.changes is not None else "")
                       + f" --history-seeds {' '.join(map(str, args.history_seeds))}",
                       "validation": validate(history_seeds=tuple(args.history_seeds), changes=args.changes)},
               args.out or "benchmarks/results/esn_validation.json")
        return
    result = {"machine": describe_machine(), "reservoirpy": reservoirpy_version, "protocol": README, "readme": []}
    names = ["zoo"] + (["zoo_layer"] if args.layer_too else []) + (["reservoirpy"] if reservoirpy_version else [])
    result["rounds"] = args.rounds
    result["blas_threads"] = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    for units in args.units:
        for seed in args.seeds:
            result["readme"].append(readme_protocol(units, seed, names, args.rounds, args.check_radius))
    if not args.skip_memory:
        result["memory"] = memory([n for n in names if n != "zoo_layer"], args.memory_units, args.seeds[0])
    if not args.skip_nrmse84:
        seeds = range(args.nrmse84_seeds)
        tuned, untuned = nrmse84(seeds), nrmse84(seeds, **UNTUNED)
        result["nrmse84"] = {
            "esn_mackey_glass_jaeger": tuned, "untuned": untuned, "untuned_config": UNTUNED,
            "median_tuned": float(np.median(list(tuned.values()))),
            "median_untuned": float(np.median(list(untuned.values()))),
        }
        print("NRMSE84", json.dumps(result["nrmse84"]))
        nrmse84_out = pathlib.Path(args.out or "benchmarks/results/esn.json").with_name("esn_nrmse84.json")
        write_results({"machine": result["machine"], "nrmse84": result.pop("nrmse84")}, nrmse84_out)
    write_results(result, args.out or "benchmarks/results/esn.json")


if __name__ == "__main__":
    main()
