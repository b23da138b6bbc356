"""What an update of each character recipe costs on this machine, and how many fit in the 45-minute budget.

    python -m benchmarks.char_cost                    # char_lstm, char_gru, char_elman: 40 timed updates each
    python -m benchmarks.char_cost --mixed-precision  # the same under mixed_bfloat16 -> char_cost_mixed.json

The three character models share one budget, 45 CPU-minutes of training on one
thread (issue 12 asks for retraining them in the same budget). A CPU-minute is
worth what the machine's core does in it, so this measures, on the recipes'
own `Trainer` step (one thread, the recipe's batch, sequence length and
default step; the corpus's first chunks, state carried), the process CPU
seconds per update, and puts it next to the recipe's step count and the card's
recorded training time. Each update's matrix products are counted
(`update_matmul_flops`) and set against one float32 2048 × 2048 product timed
in the same process (`benchmarks.peers.measure_gemm_peak`), so the figure says
how fast this machine's core is, not only how fast the step is.
Results: `benchmarks/results/char_cost.json`. With `--mixed-precision` the
recipes run with their `mixed_precision` knob on (bfloat16 products, float32
weights; the default step is then the plain one on a CPU, see
`training.loop.xla_pays`): `char_cost_mixed.json`.
"""

import argparse
import json
import pathlib
import tempfile
import time

from benchmarks.machine import describe_machine, write_results

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ("char_lstm", "char_gru", "char_elman")
BUDGET_CPU_MINUTES = 45


def update_matmul_flops(model, batch_size, seq_len):
    """FLOPs of one update's matrix products: every layer's x·W and h·U and the head, forward and twice that
    backward (each product's weight gradient and input gradient: the embedding is trained, so even the first
    layer's input needs one)."""
    width, forward = model.embedding_dim, 0
    for layer in model.recurrent:
        forward += 2 * (width + model.units) * layer.cell.gates * model.units
        width = model.units
    forward += 2 * model.units * model.vocab_size
    return 3 * forward * batch_size * seq_len


def measure(name, warm, timed, mixed_precision=False):
    from training.loop import Trainer
    from training.recipes import recipe_for

    with tempfile.TemporaryDirectory() as out_dir:
        recipe = recipe_for(name, out_dir=out_dir, mixed_precision=mixed_precision)
        trainer = Trainer(recipe)
        states = []
        for step in range(warm):
            inputs, targets, _ = trainer.data.batch(step)
            _, states = trainer.train_step(inputs, targets, states)
        cpu, wall = time.process_time(), time.perf_counter()
        for step in range(warm, warm + timed):
            inputs, targets, _ = trainer.data.batch(step)
            _, states = trainer.train_step(inputs, targets, states)
        cpu_s = (time.process_time() - cpu) / timed
        wall_s = (time.perf_counter() - wall) / timed
        flops = update_matmul_flops(trainer.model, recipe.batch_size, recipe.seq_len)
    card = json.loads((ROOT / "saved_models" / name / "card.json").read_text())["metrics"]
    recorded = card["train_cpu_minutes"] * 60 / card["steps"]
    return {"model": name, "mixed_precision": mixed_precision, "threads": recipe.threads,
            "batch_size": recipe.batch_size, "seq_len": recipe.seq_len,
            "step": "xla" if trainer.jit_compile else "plain", "recipe_steps": recipe.steps,
            "warm_updates": warm, "timed_updates": timed, "cpu_s_per_update": cpu_s, "wall_s_per_update": wall_s,
            "update_matmul_flops": flops, "matmul_gflops_per_cpu_s": flops / cpu_s / 1e9,
            "recipe_cpu_minutes_here": recipe.steps * cpu_s / 60,
            "updates_in_budget_here": int(BUDGET_CPU_MINUTES * 60 / cpu_s),
            "card": {"steps": card["steps"], "train_cpu_minutes": card["train_cpu_minutes"],
                     "cpu_s_per_update": recorded, "matmul_gflops_per_cpu_s": flops / recorded / 1e9}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=MODELS, help="repeatable; default all three")
    parser.add_argument("--warm", type=int, default=5, help="updates run before the timing (tracing, compiling)")
    parser.add_argument("--timed", type=int, default=40)
    parser.add_argument("--mixed-precision", action="store_true", help="the recipes under mixed_bfloat16")
    parser.add_argument("--out", help="default: benchmarks/results/char_cost.json (char_cost_mixed.json with "
                        "--mixed-precision)")
    args = parser.parse_args(argv)

    from benchmarks.peers import measure_gemm_peak
    from training.runs import limit_cpu_threads

    limit_cpu_threads(1)  # the recipes' thread count, before TensorFlow's first op
    import torch

    torch.set_num_threads(1)  # the peak's PyTorch product on the same one thread
    rows = []
    for name in args.model or MODELS:
        rows.append(measure(name, args.warm, args.timed, args.mixed_precision))
        print(json.dumps({k: rows[-1][k] for k in ("model", "cpu_s_per_update", "recipe_cpu_minutes_here")}),
              flush=True)
    peak = measure_gemm_peak(2048, rounds=5, min_block_seconds=0.5)
    print(json.dumps({"gemm_peak": peak["gflops_per_s"]}), flush=True)
    write_results({"machine": describe_machine(), "budget_cpu_minutes": BUDGET_CPU_MINUTES, "gemm_peak_1_thread": peak,
                   "rows": rows},
                  args.out or ROOT / "benchmarks" / "results" / f"char_cost{'_mixed' * args.mixed_precision}.json")


if __name__ == "__main__":
    main()
