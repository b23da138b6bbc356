"""The time loop run as one `tf.while_loop` against the same loop cut into chunks, in one process.

    python -m benchmarks.chunks --rounds 13         # -> benchmarks/results/chunks.json
    python -m benchmarks.chunks --threads 1 --out benchmarks/results/chunks_one_thread.json
    python -m benchmarks.chunks --family lstm --batch 128 --units 128 --rounds 5 --out /tmp/chunks.json

TensorFlow backend only. The question: does running the sequence as several
consecutive `tf.while_loop`s, each chunk's projection (and, in the gradient,
its kernel gradients) free to overlap the previous chunk's recurrence on an
idle core, pay for the extra loops? `zoo/layers/_loop.py` runs `TF_CHUNKS`
chunks; here it is set to 1 and `_chunked` cuts the sequence instead, running
the layer's own loop (`_loop._choose_loop`) on each chunk in turn, the final
states and output of one chunk the initial ones of the next: the same loops
as `TF_CHUNKS` but for one concat of the chunks' outputs, so that both
contenders come from one code path.

Per family and shape, the same layer (T = 100, I = H, `return_sequences`) is
traced four times, at 1 chunk and at `--chunks`: a training step as
`training.loop.Trainer` runs it (`tf.function`: forward under a
`tf.GradientTape`, the gradients, `optimizer.apply`; with no mask this is the
hand-written BPTT of `zoo/layers/_fused.py`) and inference (`tf.function`, no
tape: the loop a SavedModel exports). Rounds interleave the contenders, the
order reversed every other round, each timing a block of steps in wall time and
in process CPU time (work on all cores; it moves less than wall time when
other processes share the machine). Reported: time at 1 chunk / time at
`--chunks` (> 1: the chunks pay), median and min–max over rounds, and the
load average before and after.
Results: `benchmarks/results/chunks.json`.
"""

import argparse
import contextlib
import json
import os
import pathlib
import subprocess
import time

import keras
import numpy as np

from benchmarks.machine import describe_machine, write_results
from benchmarks.timing import interleaved
from zoo.layers import GRU, Elman, PeepholeLSTM, _loop

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "chunks.json"
STEPS = 100

LAYERS = {
    "elman": lambda h: Elman(h, return_sequences=True),
    "lstm": lambda h: PeepholeLSTM(h, use_peepholes=False, return_sequences=True),
    "gru": lambda h: GRU(h, return_sequences=True),
}

# Seconds each contender runs per round (whole steps, at least one).
BLOCK_SECONDS = 0.2


def _chunked(loop, chunks):
    """`loop` (a `_loop` time loop) run over `chunks` consecutive slices of the sequence."""
    import tensorflow as tf

    def run(step, project, inputs_tm, mask_tm, states, first_output):
        steps = tf.shape(inputs_tm)[0]
        outputs, last_output = [], first_output
        for k in range(chunks):
            begin, end = steps * k // chunks, steps * (k + 1) // chunks
            mask = None if mask_tm is None else mask_tm[begin:end]
            chunk, last_output, states = loop(step, project, inputs_tm[begin:end], mask, states, last_output)
            outputs.append(chunk)
        return tf.concat(outputs, axis=0), last_output, states

    return run


@contextlib.contextmanager
def cut_into(chunks):
    """Within it, zoo layers trace their time loop cut into `chunks` (and `_loop.TF_CHUNKS` set to 1)."""
    choose, own_chunks = _loop._choose_loop, _loop.TF_CHUNKS
    _loop._choose_loop = lambda step, mask: _chunked(choose(step, mask), chunks)
    _loop.TF_CHUNKS = 1
    try:
        yield
    finally:
        _loop._choose_loop, _loop.TF_CHUNKS = choose, own_chunks


def _traced(function, chunks, *args):
    """`function` (a `tf.function`) traced now with the loop cut into `chunks`; the trace keeps them."""
    with cut_into(chunks):
        function(*args)
    function(*args)
    return lambda: np.asarray(function(*args))  # back on the host: the step has finished


def _contenders(family, batch, units, chunks):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, STEPS, units)).astype("float32"))
    y = tf.constant(rng.normal(size=(batch, STEPS, units)).astype("float32"))
    contenders = {}
    for n in (1, chunks):
        layer = LAYERS[family](units)
        layer.build(x.shape)
        optimizer = keras.optimizers.SGD(1e-3)

        def train(x, y, layer=layer, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(layer(x, training=True) - y))
            gradients = tape.gradient(loss, layer.trainable_variables)
            optimizer.apply(gradients, layer.trainable_variables)
            return loss

        def infer(x, layer=layer):
            return layer(x, training=False)[:, -1]

        contenders[("train", n)] = _traced(tf.function(train), n, x, y)
        contenders[("infer", n)] = _traced(tf.function(infer), n, x)
    return contenders


def _block_size(run):
    start = time.perf_counter()
    run()
    return max(1, int(BLOCK_SECONDS / (time.perf_counter() - start)))


def _summary(ratios):
    ratios = np.asarray(ratios)
    return {"median": float(np.median(ratios)), "min": float(ratios.min()), "max": float(ratios.max())}


def measure(family, batch, units, chunks, rounds):
    contenders = _contenders(family, batch, units, chunks)
    blocks = {key: _block_size(run) for key, run in contenders.items()}
    for mode in ("train", "infer"):  # the same block at both chunk counts
        blocks[(mode, 1)] = blocks[(mode, chunks)] = min(blocks[(mode, 1)], blocks[(mode, chunks)])
    wall, cpu = interleaved(contenders, rounds, blocks)
    row = {"family": family, "batch": batch, "units": units, "steps": STEPS, "rounds": rounds}
    for mode in ("train", "infer"):
        one, many = (mode, 1), (mode, chunks)
        row[mode] = {
            "steps_per_block": blocks[one],
            "seconds_per_step_1_chunk": {"wall": float(np.median(wall[one])), "cpu": float(np.median(cpu[one]))},
            "cpu_ratio": _summary(np.asarray(cpu[one]) / np.asarray(cpu[many])),
            "wall_ratio": _summary(np.asarray(wall[one]) / np.asarray(wall[many])),
        }
    return row


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--units", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--chunks", type=int, default=4, help="the chunk count set against 1 (default 4)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow's intra- and inter-op threads, as TrainConfig.threads (0: its default)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        parser.error(f"the chunks are TensorFlow's; this backend is {keras.backend.backend()!r}")
    if args.chunks < 2:
        parser.error(f"`--chunks` must be at least 2. Received: --chunks={args.chunks}")
    if args.threads:  # before TensorFlow's first op, which makes its thread pools
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    rows = []
    for family in args.family:
        for batch in args.batch:
            for units in args.units:
                row = measure(family, batch, units, args.chunks, args.rounds)
                print(json.dumps(row), flush=True)
                rows.append(row)
    method = " ".join(__doc__.split("Per family and shape, ", 1)[1].split("Results:", 1)[0].split())
    result = {
        "machine": describe_machine(),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "commit": _commit(),
        "chunks": args.chunks,
        "threads": args.threads or "TensorFlow's default",
        "method": "Per family and shape, " + method,
        "minutes": (time.perf_counter() - started) / 60,
        "rows": rows,
    }
    write_results(result, args.out)


if __name__ == "__main__":
    main()
