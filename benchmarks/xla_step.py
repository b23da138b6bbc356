"""The recipes' training step with and without XLA (`jit_compile`), on the CPU, one thread.

    python -m benchmarks.xla_step                     # LSTM / GRU / Elman at B x H = 32 x 128, 32 x 512, 128 x 128
    python -m benchmarks.xla_step --mixed-precision   # the same under mixed_bfloat16 -> xla_step_mixed.json

Issue 12 asks for the fastest correct step by default; its probe saw XLA run
the zoo's layers 1.2-1.8x faster at B = 32, H = 128. This measures it on the
step the recipes train with: `training.loop.Trainer.train_step` on
`benchmarks.peers`' one-layer net and fixed batch (T = 100, Adam, global-norm
clip), once built with `jit_compile=False` (the default before "auto") and once with
`jit_compile=True`, timed in interleaved rounds (wall time per step, median
and range of the ratio). Also per shape: the first step's time (tracing, and
XLA's compiling) and how far the two variants' weights are apart after the
same steps from the same start (XLA fuses and approximates float32 functions
differently: not bit-identical). Results: `benchmarks/results/xla_step.json`.

With `--mixed-precision` both variants run under Keras's mixed_bfloat16 policy
(bfloat16 products, float32 weights), the recipes' `mixed_precision` knob:
on a CPU the plain step's products go to oneDNN's bfloat16 kernels, XLA's
through its own code generator (`xla_step_mixed.json`).
"""

import argparse
import pathlib
import tempfile
import time

import numpy as np

from benchmarks.machine import describe_machine, write_results
from benchmarks.timing import interleaved

SHAPES = ((32, 128), (32, 512), (128, 128))


def _trainer(family, batch, units, jit_compile, run_dir, mixed_precision=False):
    from benchmarks.peers import PeerConfig
    from training.loop import Trainer

    config = PeerConfig(family=family, batch_size=batch, units=units, jit_compile=jit_compile,
                        mixed_precision=mixed_precision,
                        out_dir=str(run_dir / f"{family}_{batch}_{units}_{jit_compile}"))  # nothing is saved there
    trainer = Trainer(config)
    inputs, targets, _ = trainer.data.batch(0)
    start = time.perf_counter()
    trainer.train_step(inputs, targets)
    first_s = time.perf_counter() - start
    return trainer, (lambda: trainer.train_step(inputs, targets)), first_s


def measure(family, batch, units, rounds, calls, run_dir, mixed_precision=False):
    """One shape's figures; `run_dir` (a `pathlib.Path`) holds the trainers' run folders."""
    plain, plain_step, plain_first = _trainer(family, batch, units, False, run_dir, mixed_precision)
    xla, xla_step, xla_first = _trainer(family, batch, units, True, run_dir, mixed_precision)
    # Same start, same single step each: how far apart do the weights land?
    apart = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                for a, b in zip(plain.model.trainable_variables, xla.model.trainable_variables, strict=True))
    for _ in range(3):  # past any retracing: the timed steps are steady ones
        plain_step(), xla_step()
    times, _ = interleaved({"plain": plain_step, "xla": xla_step}, rounds, calls)
    ratios = [p / x for p, x in zip(times["plain"], times["xla"], strict=True)]
    return {
        "family": family, "batch": batch, "units": units,
        "step_ms": {name: float(np.median(t)) * 1e3 for name, t in times.items()},
        "speedup": {"median": float(np.median(ratios)), "min": float(min(ratios)), "max": float(max(ratios))},
        "first_step_s": {"plain": plain_first, "xla": xla_first},
        "weights_max_abs_difference_after_one_step": apart,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["lstm", "gru", "elman"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3, help="steps per contender per round")
    parser.add_argument("--mixed-precision", action="store_true", help="both steps under mixed_bfloat16")
    parser.add_argument("--out", help="default: benchmarks/results/xla_step.json (xla_step_mixed.json with "
                        "--mixed-precision)")
    args = parser.parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="xla_step_") as run_dir:
        for family in args.families:
            for batch, units in SHAPES:
                row = measure(family, batch, units, args.rounds, args.calls, pathlib.Path(run_dir),
                              args.mixed_precision)
                rows.append(row)
                s = row["speedup"]
                print(f"{family} {batch}x{units}: XLA {s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f}), weights "
                      f"apart {row['weights_max_abs_difference_after_one_step']:.1e}", flush=True)
    write_results({"machine": describe_machine(), "threads": 1, "time_steps": 100, "rounds": args.rounds,
                   "calls": args.calls, "mixed_precision": args.mixed_precision, "rows": rows},
                  args.out or f"benchmarks/results/xla_step{'_mixed' if args.mixed_precision else ''}.json")


if __name__ == "__main__":
    main()
