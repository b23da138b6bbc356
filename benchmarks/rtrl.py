"""Real-time recurrent learning against BPTT: cost per step over the width H, and UORO's bias and variance.

    python -m benchmarks.rtrl                          # H = 4 8 16 32 64, Elman and peephole LSTM
    python -m benchmarks.rtrl --units 4 8 --rounds 3 --draws 200 --out /tmp/rtrl.json

Cost (`training.rtrl`, one stream, B = 1, input width 8): the time of one online step of exact RTRL (the step's
Jacobians, M ← ∂F/∂s·M + ∂F/∂θ, the gradient ∂l/∂s·M) and of UORO, against the time per step of BPTT through a
`--bptt-steps`-step sequence of the same layer (forward and backward, divided by the steps), measured in the same
run, interleaved (`benchmarks.timing`). Memory is counted, not sampled: what each method must keep, in numbers —
RTRL's sensitivity M (S·P, whatever the sequence length), UORO's s̃ and θ̃ (S + P), BPTT's states of every step
of the window (T·S, plus the cell's residuals). Exponents are least-squares slopes of log cost against log H over
the widths ≥ 16.

Bias and variance (float64, fixed weights): on each of `--problems` random sequences of `--length` steps, the
exact RTRL gradient g and `--draws` UORO estimates ĝ. Reported per cell: relative bias ‖mean ĝ − g‖ / ‖g‖ beside
the value an unbiased estimator shows from sampling alone, √(E‖ĝ − mean ĝ‖² / draws) / ‖g‖; relative variance
E‖ĝ − mean ĝ‖² / ‖g‖²; and the mean cosine between ĝ and g. Results: `benchmarks/results/rtrl.json`.
"""

import argparse
import json
import statistics

import numpy as np

__all__ = ["cost", "bias_variance", "main"]

CELLS = ("elman", "peephole_lstm")
INPUT_WIDTH = 8


def _loss(outputs, targets):
    import tensorflow as tf

    return tf.reduce_sum(tf.square(outputs - targets), axis=-1)


def _layer_and_head(cell, units, dtype="float32", batch=1, seed=0):
    import keras

    from zoo.layers import recurrent_layer

    keras.utils.set_random_seed(seed)
    layer = recurrent_layer(cell, units, return_sequences=True, dtype=dtype)
    head = keras.layers.Dense(1, dtype=dtype)
    layer.build((batch, None, INPUT_WIDTH))
    head.build((batch, units))
    return layer, head


def _contenders(cell, units, bptt_steps):
    import keras
    import tensorflow as tf

    from training import rtrl

    layer, head = _layer_and_head(cell, units)
    rng = np.random.default_rng(units)
    x_t, y_t = tf.constant(rng.normal(size=(1, INPUT_WIDTH)), tf.float32), tf.constant([[0.5]], tf.float32)
    learners = {method: rtrl.OnlineLearner(layer.cell, head, _loss, keras.optimizers.SGD(0.0), method=method)
                for method in rtrl.METHODS}
    xs = tf.constant(rng.normal(size=(1, bptt_steps, INPUT_WIDTH)), tf.float32)
    ys = tf.zeros((1, bptt_steps, 1))
    variables = layer.trainable_weights + head.trainable_weights

    @tf.function
    def bptt():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(_loss(head(layer(xs)), ys))
        return tape.gradient(loss, variables)

    def online(learner):
        def step():  # the sensitivity update and the step's gradient; no weight update
            learner.state, learner.carried = learner._step(x_t, y_t, learner.state, learner.carried)[2:]
            learner.state.numpy()
        return step

    def bptt_sequence():
        bptt()[0].numpy()

    sizes = learners["rtrl"].steps
    counts = {"rtrl": sum(sizes.sizes) * sizes.parameters, "uoro": sum(sizes.sizes) + sizes.parameters,
              "bptt": bptt_steps * sum(sizes.sizes)}
    return {"rtrl": online(learners["rtrl"]), "uoro": online(learners["uoro"]), "bptt": bptt_sequence}, counts, \
        sizes.parameters, sum(sizes.sizes)


def _slope(widths, values):
    chosen = [(w, v) for w, v in zip(widths, values) if w >= 16]
    if len(chosen) < 2:
        return None
    return float(np.polyfit(np.log([w for w, _ in chosen]), np.log([v for _, v in chosen]), 1)[0])


def cost(units, rounds, bptt_steps, block):
    """Rows of the cost table, one per (cell, H), and the fitted exponents per cell."""
    from benchmarks.timing import interleaved

    rows, exponents = [], {}
    for cell in CELLS:
        for h in units:
            contenders, counts, parameters, state = _contenders(cell, h, bptt_steps)
            for run in contenders.values():  # traced before the clock starts
                run()
            blocks = {"rtrl": block, "uoro": block, "bptt": max(1, block // 4)}
            wall, cpu = interleaved(contenders, rounds, blocks)
            per_step = {key: [seconds / (bptt_steps if key == "bptt" else 1) for seconds in cpu[key]] for key in cpu}
            ratios = {key: [a / b for a, b in zip(per_step[key], per_step["bptt"])] for key in ("rtrl", "uoro")}
            rows.append({
                "cell": cell, "units": h, "state_size": state, "parameters": parameters,
                "cpu_ms_per_step": {key: 1e3 * statistics.median(v) for key, v in per_step.items()},
                "cpu_ms_per_step_range": {key: [1e3 * min(v), 1e3 * max(v)] for key, v in per_step.items()},
                "ratio_to_bptt": {key: statistics.median(v) for key, v in ratios.items()},
                "ratio_to_bptt_range": {key: [min(v), max(v)] for key, v in ratios.items()},
                "memory_numbers": counts,
            })
            print(json.dumps(rows[-1]), flush=True)
        mine = [r for r in rows if r["cell"] == cell]
        exponents[cell] = {
            "time": {key: _slope([r["units"] for r in mine], [r["cpu_ms_per_step"][key] for r in mine])
                     for key in ("rtrl", "uoro", "bptt")},
            "memory": {key: _slope([r["units"] for r in mine], [r["memory_numbers"][key] for r in mine])
                       for key in ("rtrl", "uoro", "bptt")},
        }
    return rows, exponents


def bias_variance(units, length, problems, draws):
    """UORO against exact RTRL, float64, per cell: the figures of the module docstring, over `problems`."""
    from training import rtrl

    results = {}
    for cell in CELLS:
        per_problem = []
        for problem in range(problems):
            layer, head = _layer_and_head(cell, units, dtype="float64", seed=100 + problem)
            rng = np.random.default_rng(problem)
            xs, ys = rng.normal(size=(1, length, INPUT_WIDTH)), rng.normal(size=(1, length, 1))
            _, exact, _ = rtrl.rtrl_gradients(layer.cell, head, _loss, xs, ys)
            exact = np.concatenate([np.ravel(g) for g in exact])
            estimates = rtrl.uoro_draws(layer.cell, head, _loss, xs, ys, draws, seed=problem)
            mean, scale = estimates.mean(axis=0), np.linalg.norm(exact)
            spread = np.mean(np.sum((estimates - mean) ** 2, axis=1))
            cosines = estimates @ exact / (np.linalg.norm(estimates, axis=1) * scale)
            per_problem.append({
                "relative_bias": float(np.linalg.norm(mean - exact) / scale),
                "relative_bias_if_unbiased": float(np.sqrt(spread / draws) / scale),
                "relative_variance": float(spread / scale**2),
                "mean_cosine": float(np.mean(cosines)),
            })
            print(json.dumps({"cell": cell, "problem": problem, **per_problem[-1]}), flush=True)
        results[cell] = {"problems": per_problem,
                         **{f"median_{key}": float(np.median([p[key] for p in per_problem])) for key in per_problem[0]}}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rtrl", description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=20, help="online steps per timing")
    parser.add_argument("--bptt-steps", type=int, default=64)
    parser.add_argument("--bias-units", type=int, default=8)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--problems", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/rtrl.json")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from benchmarks.machine import describe_machine, write_results

    tf.config.threading.set_intra_op_parallelism_threads(1)  # one thread: CPU time is comparable across widths
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rows, exponents = cost(args.units, args.rounds, args.bptt_steps, args.block)
    result = {
        "machine": describe_machine(),
        "settings": vars(args),
        "cost": rows,
        "exponents": exponents,
        "uoro_vs_rtrl": bias_variance(args.bias_units, args.length, args.problems, args.draws),
    }
    write_results(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
