"""The fused (hand-written BPTT) loop against the autodiff loop it replaces, in one process.

    python -m benchmarks.loop_ab --shape lstm 128 128 --shape elman 128 128 --rounds 5

TensorFlow backend only. Each contender trains the same one-layer model through
`train_on_batch` (as `benchmarks.layers`): `keras` (the built-in, generic
loop), `autodiff` (the zoo layer with TensorFlow differentiating its loop:
what ran before `zoo/layers/_fused.py`) and `fused` (the zoo layer as it
ships). Rounds interleave the contenders, order reversed every other round.
Reported per contender: Keras's time over its time, median over rounds, in
wall time and in process CPU time. CPU time counts work on all cores, so it
moves less than wall time when other processes share the machine.
Results: `benchmarks/results/loop_ab.json`.
"""

import argparse
import json
import pathlib

import keras
import numpy as np

from benchmarks.machine import describe_machine, write_results
from benchmarks.timing import interleaved
from zoo.layers import GRU, Elman, PeepholeLSTM, _loop

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "loop_ab.json"
STEPS = 100

LAYERS = {
    "elman": (lambda h: keras.layers.SimpleRNN(h), lambda h: Elman(h)),
    "lstm": (lambda h: keras.layers.LSTM(h, use_cudnn=False), lambda h: PeepholeLSTM(h, use_peepholes=False)),
    "gru": (lambda h: keras.layers.GRU(h, use_cudnn=False), lambda h: GRU(h)),
}


def _train_step(layer, inputs, targets, fused):
    """A compiled train_on_batch closure; `fused=False` traces the zoo layer with the autodiff loop."""
    model = keras.Sequential([keras.Input(inputs.shape[1:]), layer])
    model.compile("sgd", "mse", jit_compile=False)
    chosen = _loop._choose_loop
    if not fused:
        _loop._choose_loop = lambda step, mask: _loop._tf_time_loop  # traced now, kept by the trace
    try:
        model.train_on_batch(inputs, targets)
    finally:
        _loop._choose_loop = chosen
    model.train_on_batch(inputs, targets)
    return lambda: model.train_on_batch(inputs, targets)


def measure(family, batch, units, rounds, block=3):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(batch, STEPS, units)).astype("float32")
    targets = rng.normal(size=(batch, units)).astype("float32")
    keras_layer, zoo_layer = LAYERS[family]
    contenders = {
        "keras": _train_step(keras_layer(units), inputs, targets, fused=True),
        "autodiff": _train_step(zoo_layer(units), inputs, targets, fused=False),
        "fused": _train_step(zoo_layer(units), inputs, targets, fused=True),
    }
    wall, cpu = interleaved(contenders, rounds, block)

    def ratio(times, name):
        return float(np.median(np.array(times["keras"]) / np.array(times[name])))

    return {
        "family": family, "batch": batch, "units": units, "steps": STEPS, "rounds": rounds,
        "wall_ratio": {name: ratio(wall, name) for name in ("autodiff", "fused")},
        "cpu_ratio": {name: ratio(cpu, name) for name in ("autodiff", "fused")},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs=3, action="append", metavar=("FAMILY", "B", "H"),
                        help="e.g. --shape lstm 128 128 (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        parser.error(f"the fused loop is TensorFlow's; this backend is {keras.backend.backend()!r}")
    shapes = args.shape or [["elman", "128", "128"], ["lstm", "128", "128"], ["lstm", "128", "512"]]
    rows = []
    for family, batch, units in shapes:
        if family not in LAYERS:
            parser.error(f"FAMILY must be one of {sorted(LAYERS)}. Received: {family!r}")
        row = measure(family, int(batch), int(units), args.rounds)
        print(json.dumps(row), flush=True)
        rows.append(row)
    write_results({"machine": describe_machine(), "rows": rows}, RESULTS)


if __name__ == "__main__":
    main()
