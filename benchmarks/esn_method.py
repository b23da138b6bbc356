"""Mackey–Glass one step ahead at 100 units as a statement about the method, not about one reservoir seed.

    python -m benchmarks.esn_method             # tune on validation series, then test; zoo and reservoirpy
    python -m benchmarks.esn_method --quick     # a smaller grid and fewer seeds (a smoke run)

reservoirpy's README protocol (2,000 samples of its Mackey–Glass generator,
one-step-ahead pairs, the last 400 for test, state carried from the fit into
the test part, 100 warm-up steps), repeated over series that differ in their
random history (`mackey_glass(2000, seed=s)`, other stretches of the same
attractor) and over reservoir seeds:

1. *Tuning*, on validation series only: history seeds 101–103, reservoir
   seeds 100–102. Every configuration of `GRID` × `RIDGES` is scored by the
   median RMSE on the validation series' last 400 samples over those 9 fits;
   the lowest wins.
2. *Test*: the chosen configuration and reservoirpy's README configuration,
   reservoir seeds 0–9 × fresh series of history seeds 1–5 (50 fits each),
   for the zoo (`ESNForecaster`, i.e. `harvest_states` + `RidgeReadout`) and
   for reservoirpy 0.4 (`Reservoir >> Ridge` with the same hyperparameters).
   The bar: median RMSE ≤ 0.0020 (reservoirpy's README figure).

No test series is ever seen by step 1. Results: benchmarks/results/esn_method.json.
"""

import argparse
import itertools
import json

import numpy as np

from benchmarks.machine import describe_machine, write_results
from training.data.mackey_glass import mackey_glass
from zoo.layers.esn import EchoState, harvest_states
from zoo.layers.ridge import RidgeReadout

BAR = 0.0020
README = {"spectral_radius": 1.25, "leak_rate": 0.3, "input_scaling": 1.0, "ridge": 1e-5}
# The reservoir's hyperparameters; ridges are scored on the same states (harvested once per reservoir).
GRID = {"spectral_radius": (1.0, 1.25), "leak_rate": (0.3, 0.5, 0.8), "input_scaling": (0.5, 1.0)}
RIDGES = (1e-9, 1e-8, 1e-7, 1e-6, 1e-5)
VALIDATION = {"history_seeds": (101, 102, 103), "reservoir_seeds": (100, 101, 102)}
TEST = {"history_seeds": (1, 2, 3, 4, 5), "reservoir_seeds": tuple(range(10))}
UNITS, WARMUP, TEST_STEPS = 100, 100, 400


def split(history_seed):
    """One-step-ahead pairs of a fresh series; the last 400 samples for test."""
    series = mackey_glass(2000, seed=history_seed)
    inputs, targets = series[:-1], series[1:]
    return inputs[:-TEST_STEPS], targets[:-TEST_STEPS], inputs[-TEST_STEPS:], targets[-TEST_STEPS:]


def zoo_rmse(config, reservoir_seed, data, ridges):
    """Test RMSE of the zoo's ESN for each ridge in `ridges` (one reservoir run)."""
    u_train, y_train, u_test, y_test = data
    reservoir = EchoState(UNITS, spectral_radius=config["spectral_radius"], leak_rate=config["leak_rate"],
                          input_scaling=config["input_scaling"], seed=reservoir_seed)
    states, x = harvest_states(reservoir, u_train)
    test_states, _ = harvest_states(reservoir, u_test, x)
    out = []
    for ridge in ridges:
        readout = RidgeReadout(ridge=ridge, warmup=WARMUP).fit(states, y_train)
        out.append(float(np.sqrt(np.mean((readout.predict(test_states) - y_test) ** 2))))
    return out


def reservoirpy_rmse(config, reservoir_seed, data):
    from reservoirpy.nodes import Reservoir, Ridge

    u_train, y_train, u_test, y_test = data
    reservoir = Reservoir(UNITS, lr=config["leak_rate"], sr=config["spectral_radius"],
                          input_scaling=config["input_scaling"], seed=reservoir_seed)
    esn = reservoir >> Ridge(ridge=config["ridge"])
    esn.fit(u_train, y_train, warmup=WARMUP)
    return float(np.sqrt(np.mean((np.asarray(esn.run(u_test)) - y_test) ** 2)))


def tune(grid, ridges, validation):
    """Median validation RMSE of every configuration; returns (chosen, rows)."""
    datas = [split(h) for h in validation["history_seeds"]]
    rows = []
    for values in itertools.product(*grid.values()):
        config = dict(zip(grid, values))
        scores = np.array([zoo_rmse(config, seed, data, ridges) for seed in validation["reservoir_seeds"]
                           for data in datas])  # (fits, ridges)
        for ridge, column in zip(ridges, scores.T):
            rows.append({**config, "ridge": ridge, "median_rmse": float(np.median(column))})
        best = min(rows, key=lambda r: r["median_rmse"])
        print(json.dumps({**config, "best_so_far": best}), flush=True)
    chosen = min(rows, key=lambda r: r["median_rmse"])
    return {k: chosen[k] for k in ("spectral_radius", "leak_rate", "input_scaling", "ridge")}, rows


def _summary(values):
    values = np.asarray(values)
    return {"median": float(np.median(values)), "q25": float(np.quantile(values, 0.25)),
            "q75": float(np.quantile(values, 0.75)), "min": float(values.min()), "max": float(values.max()),
            "fraction_meeting_bar": float(np.mean(values <= BAR)), "n": int(values.size)}


def test(config, test_seeds, with_reservoirpy):
    """Zoo (and reservoirpy) RMSE over reservoir seeds × fresh series, per fit and summarised."""
    out = {"config": config}
    datas = {h: split(h) for h in test_seeds["history_seeds"]}
    fits = [(seed, h) for seed in test_seeds["reservoir_seeds"] for h in datas]
    out["zoo"] = {f"{seed}/{h}": zoo_rmse(config, seed, datas[h], [config["ridge"]])[0] for seed, h in fits}
    out["zoo_summary"] = _summary(list(out["zoo"].values()))
    if with_reservoirpy:
        out["reservoirpy"] = {f"{seed}/{h}": reservoirpy_rmse(config, seed, datas[h]) for seed, h in fits}
        out["reservoirpy_summary"] = _summary(list(out["reservoirpy"].values()))
    print(json.dumps({k: v for k, v in out.items() if "summary" in k or k == "config"}), flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 2×2×1 grid, 2 validation seeds, 3 test seeds")
    parser.add_argument("--out", default="benchmarks/results/esn_method.json")
    args = parser.parse_args(argv)
    grid, ridges, validation, test_seeds = GRID, RIDGES, VALIDATION, TEST
    if args.quick:
        grid = {"spectral_radius": (1.1, 1.25), "leak_rate": (0.3, 0.5), "input_scaling": (1.0,)}
        ridges = (1e-7, 1e-5)
        validation = {"history_seeds": (101, 102), "reservoir_seeds": (100, 101)}
        test_seeds = {"history_seeds": (1, 2), "reservoir_seeds": (0, 1, 2)}
    try:
        import reservoirpy

        reservoirpy_version = reservoirpy.__version__
    except ImportError:
        reservoirpy_version = None
    chosen, rows = tune(grid, ridges, validation)
    result = {
        "machine": describe_machine(), "reservoirpy": reservoirpy_version, "units": UNITS, "warmup": WARMUP,
        "bar": f"median RMSE <= {BAR}", "grid": {**grid, "ridge": ridges}, "validation": validation,
        "test_seeds": test_seeds, "chosen": chosen,
        "tuning": sorted(rows, key=lambda r: r["median_rmse"])[:20],
        "tested": {"chosen": test(chosen, test_seeds, reservoirpy_version is not None),
                   "readme": test(README, test_seeds, reservoirpy_version is not None)},
    }
    median = result["tested"]["chosen"]["zoo_summary"]["median"]
    result["passed"] = median <= BAR
    print(f"zoo median {median:.5f} ({'meets' if result['passed'] else 'misses'} {BAR})")
    write_results(result, args.out)


if __name__ == "__main__":
    main()
