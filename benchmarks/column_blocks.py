"""Sampling with each kernel's columns in blocks against whole kernels, in one process per thread count.

    python -m benchmarks.column_blocks              # -> benchmarks/results/column_blocks.json
    python -m benchmarks.column_blocks --models char_lstm --batches 1 --rounds 3 --out /tmp/blocks.json

TensorFlow backend only. `zoo.sampling`'s `generate` multiplies by blocks of
each cell kernel's columns (`zoo.layers._loop.column_blocks`, about
`STEP_BLOCK_ELEMENTS` each), so that the executor can run a step's products on
every core at once. Here the same shipped model's `generate` is traced twice:
with the blocks, and with whole kernels (`STEP_BLOCK_ELEMENTS` larger than any
kernel while it traces); so is a loop of a step's matrix products alone, the
floor of a step (`_products_alone`). For each model, batch and thread count, both draw the
same characters from the same prompt, seeds and positions (checked: the same
text and state, bit for bit), and are timed in interleaved rounds, the order
reversed every other round, each timing one call in wall time and in process
CPU time. Each thread count runs in its own process (TensorFlow's intra- and
inter-op threads, fixed at its first op). Reported: characters/s of both and
blocks / whole (> 1: the blocks pay), median and min–max over rounds, and the
load average before and after. Then the blocks cut from whole kernels at every
call against blocks stored as variables, as `zoo.export` writes them
(`zoo.layers._loop.StoredColumnBlocks`), in calls of a streaming chunk
(`--chunk-characters`, the server's `--generation_chunk_steps` by default),
where a call's fixed costs count (each prompt one character, as in a stream's
later calls): the same text and state checked, ten calls a timing,
milliseconds per call and cut / stored.
Results: `benchmarks/results/column_blocks.json`.
"""

import argparse
import functools
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from benchmarks.machine import describe_machine, write_results
from benchmarks.timing import interleaved
from serving.execution import DEFAULT_GENERATION_CHUNK_STEPS

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "column_blocks.json"
PROMPT = "ROMEO."
TEMPERATURE = 0.8


def _products_alone(model, characters):
    """A sampling step's matrix products alone, chained as a step chains them, `characters` times: the floor
    of a step in TensorFlow on this machine, whatever its elementwise and sampling ops cost.

    Each layer's input and recurrent products feed the next layer through one tanh, and the head's logits the
    next character's input: the same kernels read in the same order, with the blocks where `column_blocks` cuts.
    """
    import tensorflow as tf

    from zoo.layers import _cell, _loop

    width = model.embedding_dim
    if model.vocab_size < width:
        raise ValueError(f"The products' chain feeds the logits back as the next input, so it needs a vocabulary "
                         f"of at least embedding_dim characters. Received: {model.vocab_size} < {width}")

    def run(batch):
        hs = [tf.zeros((batch, layer.cell.units)) for layer in model.recurrent]
        with _loop.column_blocks(model):
            def body(t, x, hs):
                new = []
                for layer, h in zip(model.recurrent, hs):
                    z = _cell.matmul(x, layer.cell.kernel) + _cell.matmul(h, layer.cell.recurrent_kernel)
                    x = tf.tanh(z[:, : layer.cell.units])
                    new.append(x)
                return t + 1, tf.tanh(tf.matmul(x, model.head.kernel)[:, :width]), new

            return tf.while_loop(lambda t, *_: t < characters, body, (0, tf.zeros((batch, width)), hs))[1]

    return run


def _generate_fns(model, characters):
    """`{"blocks": generate, "whole": generate, "blocks_products": run, "whole_products": run}`: `generate`
    traced for `model`'s state width, and `_products_alone`, each with and without the blocks."""
    import tensorflow as tf

    from zoo import sampling
    from zoo.layers import _loop

    signature = sampling.generate_signature(sum(model.state_sizes))
    traced = {}
    for contender, elements in (("blocks", _loop.STEP_BLOCK_ELEMENTS), ("whole", sys.maxsize)):
        default, _loop.STEP_BLOCK_ELEMENTS = _loop.STEP_BLOCK_ELEMENTS, elements
        try:
            function = tf.function(sampling.make_generate_fn(model), input_signature=signature, autograph=False)
            traced[contender] = function.get_concrete_function()
            products = tf.function(_products_alone(model, characters), autograph=False)
            traced[f"{contender}_products"] = products.get_concrete_function(tf.TensorSpec([], tf.int32))
        finally:
            _loop.STEP_BLOCK_ELEMENTS = default
    stored = _loop.StoredColumnBlocks(model)
    function = stored.tracing(sampling.make_generate_fn(model))  # as `zoo.export` traces it
    traced["stored"] = tf.function(function, input_signature=signature, autograph=False).get_concrete_function()
    traced["stored"].blocks = stored  # the variables live as long as the function
    return traced


def _inputs(model, batch, characters, prompt=PROMPT):
    import tensorflow as tf

    return dict(
        prompt=tf.constant([prompt] * batch), state=tf.zeros((batch, sum(model.state_sizes))),
        steps=tf.fill([batch], characters), temperature=tf.fill([batch], TEMPERATURE),
        top_k=tf.zeros([batch], tf.int32), seed=tf.range(batch, dtype=tf.int64),
        position=tf.zeros([batch], tf.int64),
    )


def _summary(values):
    values = np.asarray(values)
    return {"median": float(np.median(values)), "min": float(values.min()), "max": float(values.max())}


def _same_answers(answers, contenders):
    return all(np.array_equal(answers[contenders[0]][out].numpy(), answers[other][out].numpy())
               for other in contenders[1:] for out in ("text", "token_ids", "state"))


def _stream_chunks(traced, model, batch, characters, rounds):
    """Calls of a stream's chunk (`characters` each) with the blocks cut at every call and stored: figures.

    Each call's prompt is one character, as in a stream's calls after its first: the last character drawn.
    """
    inputs = _inputs(model, batch, characters, prompt=PROMPT[-1])
    contenders = {key: functools.partial(traced[key], **inputs) for key in ("blocks", "stored")}
    same = _same_answers({key: run() for key, run in contenders.items()}, ["blocks", "stored"])
    wall, _ = interleaved(contenders, rounds, 10)  # ten calls a timing: one is a few milliseconds
    return {"characters": characters, "same_text_and_state": same,
            "ms_per_call": {key: _summary(np.asarray(wall[key]) * 1e3) for key in contenders},
            "stored_over_cut_wall": _summary(np.asarray(wall["blocks"]) / np.asarray(wall["stored"]))}


def measure(name, batches, characters, rounds, chunk_characters):
    """One row per batch for shipped model `name`, on this process's threads."""
    import tensorflow as tf

    import zoo

    model = zoo.get(name, weights="default")
    traced = _generate_fns(model, characters)
    rows = []
    for batch in batches:
        inputs = _inputs(model, batch, characters)
        contenders = {key: functools.partial(function, **inputs) if "products" not in key
                      else functools.partial(function, tf.constant(batch)) for key, function in traced.items()
                      if key != "stored"}
        answers = {key: run() for key, run in contenders.items()}  # also the warm-up call
        same = _same_answers(answers, ["blocks", "whole"])
        wall, cpu = interleaved(contenders, rounds, 1)
        row = {"model": name, "batch": batch, "characters": characters, "rounds": rounds, "same_text_and_state": same,
               "chars_per_s": {key: _summary(batch * characters / np.asarray(wall[key])) for key in contenders}}
        for clock, times in (("wall", wall), ("cpu", cpu)):
            row[f"blocks_over_whole_{clock}"] = _summary(np.asarray(times["whole"]) / np.asarray(times["blocks"]))
        # How much of a step the products alone take: the rest is the elementwise, sampling and per-op work.
        row["products_share_of_step_wall"] = {
            contender: _summary(np.asarray(wall[f"{contender}_products"]) / np.asarray(wall[contender]))
            for contender in ("blocks", "whole")}
        row["stream_chunks"] = _stream_chunks(traced, model, batch, chunk_characters, rounds)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def worker(args):
    from training.runs import limit_cpu_threads

    limit_cpu_threads(args.threads)  # before TensorFlow's first op
    load_before = os.getloadavg()[0]
    rows = [row for name in args.models
            for row in measure(name, args.batches, args.characters, args.rounds, args.chunk_characters)]
    return {"threads": args.threads, "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
            "rows": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["char_lstm", "char_gru", "char_elman"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--characters", type=int, default=300, help="characters per row and call")
    parser.add_argument("--chunk-characters", type=int, default=DEFAULT_GENERATION_CHUNK_STEPS,
                        help="characters per call of the stored-blocks comparison (default: the server's chunk)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one thread count, JSON to stdout
    args = parser.parse_args(argv)
    if args.worker:
        args.threads = args.threads[0]
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        parser.error(f"the blocks are TensorFlow's; this backend is {keras.backend.backend()!r}")
    started, parts = time.perf_counter(), []
    for threads in args.threads:
        command = [sys.executable, "-m", "benchmarks.column_blocks", "--worker", "--threads", str(threads),
                   "--models", *args.models, "--batches", *map(str, args.batches),
                   "--characters", str(args.characters), "--chunk-characters", str(args.chunk_characters),
                   "--rounds", str(args.rounds)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        result_lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        parts.append(json.loads(result_lines[-1][len("RESULT "):]))
        print(f"{threads} thread(s) done", flush=True)
    from zoo.layers._loop import STEP_BLOCK_ELEMENTS

    method = " ".join(__doc__.split("TensorFlow backend only. ", 1)[1].split("Results:", 1)[0].split())
    write_results({
        "machine": describe_machine(),
        "command": "python -m benchmarks.column_blocks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "step_block_elements": STEP_BLOCK_ELEMENTS,
        "prompt": PROMPT,
        "temperature": TEMPERATURE,
        "method": method,
        "minutes": (time.perf_counter() - started) / 60,
        "threads": parts,
    }, args.out)


if __name__ == "__main__":
    main()
