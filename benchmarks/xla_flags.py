"""XLA's CPU options against the training step's misses in `benchmarks.peers` (issue 12).

    python -m benchmarks.xla_flags                   # every setting below, on the shapes below, 2 rounds
    python -m benchmarks.xla_flags --setting default --setting "XNNPACK dots" --rounds 1 --out /tmp/flags.json

The recipes' step runs under XLA (`jit_compile="auto"`), whose CPU compiler has options of its own, read
from `XLA_FLAGS` once per process: which library runs a product (its own Eigen calls, XNNPACK, YNNPACK,
oneDNN), whether Eigen splits a product over the intra-op threads, and how wide its vectors are. Each
setting runs `benchmarks.peers`' training contenders (the zoo's `Trainer` step, PyTorch, the Keras
built-in, interleaved in one worker process per thread count) on shapes where the zoo missed a bar:
the LSTM at 32 × 128 on two threads, where PyTorch gains from the second thread and the zoo does not,
and shapes at B = 128 on one thread, where Keras's layers under XLA come close. A setting reaches
the Keras built-in too (one process, one XLA), so only its zoo / PyTorch ratio can say whether it
helps the zoo; zoo / Keras says whether it helps the zoo more than Keras. The settings take turns,
their order reversed every other round, and each ratio is the median over the rounds (min–max), each
round's figure being that worker's median over its own interleaved rounds.
Results: `benchmarks/results/xla_flags.json`.
"""

import argparse
import json
import os
import sys

from benchmarks.machine import describe_machine, write_results
from benchmarks.peers import ROOT, run_worker, spread

SETTINGS = {
    "default": "",
    "XNNPACK dots": "--xla_cpu_experimental_xnn_fusion_type=dot",
    "YNNPACK dots": "--xla_cpu_experimental_ynn_fusion_type=dot",
    "oneDNN thunks": "--xla_cpu_use_onednn=true",
    "Eigen on one thread": "--xla_cpu_multi_thread_eigen=false",
    "512-bit vectors": "--xla_cpu_prefer_vector_width=512",
}
# (threads, family, batch, units): misses of the AMD EPYC's `peers_tensorflow_cpu.json`
SHAPES = ((2, "lstm", 32, 128), (1, "lstm", 128, 128), (1, "gru", 128, 512))
RATIOS = ("zoo/pytorch", "zoo/keras")


def measure(setting, shapes, worker_rounds, min_block_seconds):
    """One worker per thread count under `setting`'s flags: per shape, each ratio's median over the worker's
    rounds and the zoo's tokens/s."""
    figures = {}
    for threads in sorted({shape[0] for shape in shapes}):
        spec = {"kind": "speed", "threads": threads, "time_steps": 100, "rounds": worker_rounds,
                "min_block_seconds": min_block_seconds, "generation_batches": [], "tokens": 0, "peak_size": 0,
                "shapes": [list(shape[1:]) for shape in shapes if shape[0] == threads]}
        for row in run_worker(spec, SETTINGS[setting])["training"]:
            key = f"{threads} {row['family']} {row['batch']}x{row['units']}"
            figures[key] = {"zoo_tokens_per_s": row["tokens_per_s"]["zoo"]["median"],
                            **{name: row["ratios"][name]["wall"]["median"] for name in RATIOS},
                            "xla": row["xla"]["zoo"]}
    return figures


def summarize(rounds):
    """Per setting and shape: each ratio's spread over the rounds, and the zoo's rate over the default's in the
    same round (a cross-process figure, so only as steady as the machine between two workers)."""
    summary = {}
    for setting in rounds[0]:
        summary[setting] = {}
        for shape in rounds[0][setting]:
            per_round = [r[setting][shape] for r in rounds]
            summary[setting][shape] = {
                **{name: spread([f[name] for f in per_round]) for name in RATIOS},
                "zoo_over_default": spread([r[setting][shape]["zoo_tokens_per_s"] / r["default"][shape]
                                            ["zoo_tokens_per_s"] for r in rounds]),
                "xla": all(f["xla"] for f in per_round)}
    return summary


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", action="append", choices=list(SETTINGS),
                        help="repeatable; default every setting (the default is always run)")
    parser.add_argument("--rounds", type=int, default=2, help="turns of every setting")
    parser.add_argument("--worker-rounds", type=int, default=3, help="interleaved rounds within each worker")
    parser.add_argument("--min-block-seconds", type=float, default=0.5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "xla_flags.json"))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    settings = ["default", *[s for s in args.setting or SETTINGS if s != "default"]]
    machine, load_before = describe_machine(), os.getloadavg()
    rounds = []
    for index in range(args.rounds):
        order = settings if index % 2 == 0 else settings[::-1]
        rounds.append({setting: measure(setting, SHAPES, args.worker_rounds, args.min_block_seconds)
                       for setting in order})
        print(json.dumps({"round": index, **{s: {k: round(v["zoo/pytorch"], 2) for k, v in f.items()}
                                               for s, f in rounds[-1].items()}}), flush=True)
    import torch

    write_results({
        "machine": {**machine, "torch": torch.__version__},
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "command": "python -m benchmarks.xla_flags " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {s: SETTINGS[s] for s in settings},
        "shapes": [{"threads": t, "family": f, "batch": b, "units": u} for t, f, b, u in SHAPES],
        "rounds": args.rounds, "worker_rounds": args.worker_rounds,
        "ratio": "a/b = b's time per step over a's in the same worker round (> 1: a is faster)",
        "summary": summarize(rounds),
        "per_round": rounds,
    }, args.out)


if __name__ == "__main__":
    main()
