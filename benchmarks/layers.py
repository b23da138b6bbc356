"""Training throughput of zoo recurrent layers against Keras's built-ins.

    python -m benchmarks.layers                   # all shapes, this backend
    KERAS_BACKEND=jax python -m benchmarks.layers # e.g. on a GPU machine
    python -m benchmarks.layers --batch 32 --units 128 --repeats 3

For each family and shape, both layers train the same one-layer model
(forward + backward + SGD update through `train_on_batch`, so Keras's own
compiled step drives both) on (B, T=100, I=H) inputs. Reported: tokens/s of
each, their ratio (zoo / Keras, measured in the same run), the zoo layer's
achieved GFLOP/s (training ≈ 3 × forward FLOPs, forward per step from
`FORWARD_FLOPS`) and that as a fraction of this machine's float32 matmul rate,
measured in the same run. Results: `benchmarks/results/layers_<backend>_<device>.json`.
"""

import argparse
import json
import pathlib
import time

import keras
import numpy as np

from benchmarks.machine import describe_machine
from zoo.layers import RECURRENT_LAYERS

# Forward FLOPs of one time step per (batch row, unit): multiply by B·H·(H+I).
FORWARD_FLOPS = {"elman": 2, "lstm": 8, "gru": 6}

# family -> (zoo layer name, zoo arguments, Keras built-in)
FAMILIES = {
    "elman": ("elman", {}, keras.layers.SimpleRNN),
    "lstm": ("peephole_lstm", {"use_peepholes": False}, keras.layers.LSTM),
    "gru": ("gru", {}, keras.layers.GRU),
}


def _model(layer, steps, width):
    model = keras.Sequential([keras.Input((steps, width)), layer])
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    return model


def _seconds_per_step(model, x, y, repeats):
    for _ in range(2):  # compile and warm up
        model.train_on_batch(x, y)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_on_batch(x, y)  # returns host values: the step has finished
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def matmul_gflops(size=2048, repeats=10):
    """This machine's float32 matmul rate through keras.ops, for the peak fraction."""
    a = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(size, size)).astype("float32"))
    matmul = keras.ops.matmul
    if keras.backend.backend() == "jax":
        import jax

        matmul = jax.jit(matmul)
    np.asarray(matmul(a, a))
    start = time.perf_counter()
    for _ in range(repeats):
        out = matmul(a, a)
    np.asarray(out)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def measure(family, batch, units, steps=100, repeats=5):
    zoo_name, zoo_args, builtin = FAMILIES[family]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, units)).astype("float32")
    y = np.zeros((batch, steps, units), "float32")
    zoo_layer = RECURRENT_LAYERS[zoo_name](units, return_sequences=True, **zoo_args)
    zoo_time = _seconds_per_step(_model(zoo_layer, steps, units), x, y, repeats)
    keras_time = _seconds_per_step(_model(builtin(units, return_sequences=True), steps, units), x, y, repeats)
    flops = 3 * FORWARD_FLOPS[family] * batch * units * (units + units) * steps
    tokens = batch * steps
    return {
        "family": family,
        "batch": batch,
        "units": units,
        "steps": steps,
        "zoo_tokens_per_s": tokens / zoo_time,
        "keras_tokens_per_s": tokens / keras_time,
        "ratio": keras_time / zoo_time,
        "zoo_gflops": flops / zoo_time / 1e9,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--units", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--family", nargs="+", default=list(FAMILIES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="results file (default: by backend and device)")
    args = parser.parse_args(argv)
    machine = describe_machine()
    peak = matmul_gflops()
    rows = []
    for family in args.family:
        if FAMILIES[family][0] not in RECURRENT_LAYERS:
            print(f"skip {family}: no zoo layer registered yet")
            continue
        for batch in args.batch:
            for units in args.units:
                row = measure(family, batch, units, repeats=args.repeats)
                row["fraction_of_matmul_peak"] = row["zoo_gflops"] / peak
                rows.append(row)
                print(
                    f"{family:5s} B={batch:4d} H={units:5d}  zoo {row['zoo_tokens_per_s']:12.0f} tok/s  "
                    f"keras {row['keras_tokens_per_s']:12.0f} tok/s  ratio {row['ratio']:.2f}  "
                    f"{row['zoo_gflops']:.1f} GFLOP/s ({row['fraction_of_matmul_peak']:.1%} of matmul)",
                    flush=True,
                )
    device = "gpu" if machine["accelerators"] else "cpu"
    out = pathlib.Path(args.out or f"benchmarks/results/layers_{machine['backend']}_{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "matmul_gflops": peak, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
