"""Training throughput of zoo recurrent layers against Keras's built-ins.

    python -m benchmarks.layers                   # all shapes, this backend
    KERAS_BACKEND=jax python -m benchmarks.layers # e.g. on a GPU machine
    python -m benchmarks.layers --batch 32 --units 128 --rounds 5

For each family and shape, the layers train the same one-layer model
(forward + backward + SGD update through `train_on_batch`, so Keras's own
compiled step drives every contender) on (B, T=100, I=H) inputs. Contenders:
the zoo layer; the Keras built-in on its generic per-step loop (`keras`, with
`use_cudnn=False` where the layer has that argument), the reference of the
ratio; and, on a GPU, the built-in with its default `use_cudnn="auto"`
(`keras_cudnn`), for comparison: cuDNN for the LSTM (on JAX through
`jax.experimental.rnn`); on JAX, which has no cuDNN GRU, Keras's own fused GRU
path (projection hoisted, `lax.scan`); SimpleRNN has no such path.

Measurement: after two warm-up steps each, `rounds` rounds each time a block
of steps of every contender in turn (the order reversed every other round),
so that load from other processes on a shared machine falls on all of them
alike; the ratio is the median over rounds of the per-round ratio
keras time / zoo time. Also reported: the zoo layer's achieved GFLOP/s
(training ≈ 3 × forward FLOPs, forward per step from `FORWARD_FLOPS`) and that
as a fraction of this machine's float32 matmul rate (the best of several
2048² matmul runs at the start and the end of the same run).
Results: `benchmarks/results/layers_<backend>_<device>.json`.
"""

import argparse
import pathlib
import time

import keras
import numpy as np

from benchmarks.machine import describe_machine, write_results
from zoo.layers import RECURRENT_LAYERS

# Forward FLOPs of one time step per (batch row, unit): multiply by B·H·(H+I).
FORWARD_FLOPS = {"elman": 2, "lstm": 8, "gru": 6}

# family -> (zoo layer name, zoo arguments, Keras built-in)
FAMILIES = {
    "elman": ("elman", {}, keras.layers.SimpleRNN),
    "lstm": ("peephole_lstm", {"use_peepholes": False}, keras.layers.LSTM),
    "gru": ("gru", {}, keras.layers.GRU),
}

# Seconds of training each contender runs per round (in whole steps, at least one).
BLOCK_SECONDS = 0.25


def _model(layer, steps, width):
    model = keras.Sequential([keras.Input((steps, width)), layer])
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    return model


def _contenders(family, units, on_gpu):
    """name -> layer: zoo, keras (generic loop) and, on a GPU, keras_cudnn."""
    zoo_name, zoo_args, builtin = FAMILIES[family]
    has_cudnn = builtin is not keras.layers.SimpleRNN
    layers = {
        "zoo": RECURRENT_LAYERS[zoo_name](units, return_sequences=True, **zoo_args),
        "keras": builtin(units, return_sequences=True, **({"use_cudnn": False} if has_cudnn else {})),
    }
    if on_gpu and has_cudnn:
        layers["keras_cudnn"] = builtin(units, return_sequences=True)
    return layers


def _interleaved_seconds_per_step(models, x, y, rounds):
    """name -> list over rounds of seconds per training step, contenders interleaved."""
    per_block = {}
    for name, model in models.items():
        for _ in range(2):  # compile and warm up
            model.train_on_batch(x, y)
        start = time.perf_counter()
        model.train_on_batch(x, y)  # returns host values: the step has finished
        per_block[name] = max(1, int(BLOCK_SECONDS / (time.perf_counter() - start)))
    times = {name: [] for name in models}
    for round_ in range(rounds):
        order = list(models) if round_ % 2 == 0 else list(reversed(models))
        for name in order:
            start = time.perf_counter()
            for _ in range(per_block[name]):
                models[name].train_on_batch(x, y)
            times[name].append((time.perf_counter() - start) / per_block[name])
    return times


def matmul_gflops(size=2048, repeats=10, trials=5):
    """This machine's float32 matmul rate through keras.ops (best of `trials`), for the peak fraction."""
    a = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(size, size)).astype("float32"))
    matmul = keras.ops.matmul
    if keras.backend.backend() == "jax":
        import jax

        matmul = jax.jit(matmul)
    np.asarray(matmul(a, a))
    best = 0.0
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            out = matmul(a, a)
        np.asarray(out)
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def measure(family, batch, units, steps=100, rounds=9, on_gpu=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, units)).astype("float32")
    y = np.zeros((batch, steps, units), "float32")
    models = {name: _model(layer, steps, units) for name, layer in _contenders(family, units, on_gpu).items()}
    times = _interleaved_seconds_per_step(models, x, y, rounds)
    zoo = np.asarray(times["zoo"])
    median = {name: float(np.median(t)) for name, t in times.items()}
    flops = 3 * FORWARD_FLOPS[family] * batch * units * (units + units) * steps
    tokens = batch * steps
    row = {"family": family, "batch": batch, "units": units, "steps": steps, "rounds": rounds}
    for name in models:
        row[f"{name}_tokens_per_s"] = tokens / median[name]
    row["ratio"] = float(np.median(np.asarray(times["keras"]) / zoo))
    row["ratio_min_max_over_rounds"] = [float(r) for r in np.quantile(np.asarray(times["keras"]) / zoo, [0, 1])]
    if "keras_cudnn" in models:
        row["ratio_vs_cudnn"] = float(np.median(np.asarray(times["keras_cudnn"]) / zoo))
    row["zoo_gflops"] = flops / median["zoo"] / 1e9
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--units", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--family", nargs="+", default=list(FAMILIES))
    parser.add_argument("--rounds", type=int, default=9)
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
                row = measure(family, batch, units, rounds=args.rounds, on_gpu=bool(machine["accelerators"]))
                rows.append(row)
                print(
                    f"{family:5s} B={batch:4d} H={units:5d}  zoo {row['zoo_tokens_per_s']:12.0f} tok/s  "
                    f"keras {row['keras_tokens_per_s']:12.0f} tok/s  ratio {row['ratio']:.2f}  "
                    + (f"cudnn ratio {row['ratio_vs_cudnn']:.2f}  " if "ratio_vs_cudnn" in row else "")
                    + f"{row['zoo_gflops']:.1f} GFLOP/s",
                    flush=True,
                )
    # Measured again at the end: on a shared machine the best of both is the closer to the peak.
    peak = max(peak, matmul_gflops())
    for row in rows:
        row["fraction_of_matmul_peak"] = row["zoo_gflops"] / peak
    device = "gpu" if machine["accelerators"] else "cpu"
    out = pathlib.Path(args.out or f"benchmarks/results/layers_{machine['backend']}_{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    method = __doc__.split("Measurement: ", 1)[1].split("Results:", 1)[0].split()
    result = {"machine": machine, "matmul_gflops": peak, "method": " ".join(method), "rows": rows}
    write_results(result, out)


if __name__ == "__main__":
    main()
