"""How many updates `seq2seq_addition` needs: held-out exact match along a few learning-rate schedules.

    python -m benchmarks.seq2seq                                   # the schedules below
    python -m benchmarks.seq2seq --schedule cosine:1e-2:2000 constant:3e-3:3000

Each schedule trains the registered model through its own recipe
(`training.recipes.Seq2SeqAdditionRecipe`, `training.loop.Trainer`:
same pairs, batches, reversed source and seed as the shipped run) with only
the learning rate, its decay and the step count changed, and logs greedy and
beam-4 whole-answer exact match on `--test-pairs` held-out pairs every
`--eval-every` updates. This is the probe the recipe's step count was chosen
from; the shipped figures come from `benchmarks.quality`. It also times
the shipped model's beam search (width 4) against its greedy decoding on the
same held-out pairs. Results: `benchmarks/results/seq2seq.json`, with the machine.
"""

import argparse
import json
import pathlib
import shutil
import time

import numpy as np

from benchmarks.machine import describe_machine, write_results

RESULTS = pathlib.Path(__file__).parent / "results" / "seq2seq.json"
SCHEDULES = ("cosine:1e-2:2000", "constant:3e-3:3000", "cosine:1e-2:3000")  # the last is the recipe's


def _schedule(text):
    """"cosine:LR:STEPS" or "constant:LR:STEPS" -> recipe fields."""
    try:
        kind, rate, steps = text.split(":")
        if kind not in ("cosine", "constant"):
            raise ValueError(kind)
        return {"lr_decay": kind, "learning_rate": float(rate), "steps": int(steps)}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"A schedule is cosine:LR:STEPS or constant:LR:STEPS. Received: {text!r}"
        ) from None


def _curve(name, fields, args):
    from training.recipes import recipe_for

    out_dir = pathlib.Path("runs/seq2seq_probe") / name.replace(":", "_")
    recipe = recipe_for("seq2seq_addition", test_pairs=args.test_pairs, eval_every=args.eval_every,
                        checkpoint_every=fields["steps"], seed=args.seed, out_dir=str(out_dir), **fields)
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh run: no checkpoint to resume, no earlier curve
    began, cpu = time.time(), time.process_time()
    recipe.train(verbose=0)
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [{key: row[key] for key in ("step", "loss", "exact_match_greedy", "exact_match_beam4")}
             for row in rows if "exact_match_greedy" in row]
    return recipe, {"curve": curve, "wall_seconds": time.time() - began, "cpu_seconds": time.process_time() - cpu}


def _decode_times(recipe, rounds=5):
    """Median seconds of the shipped model to decode the held-out pairs greedy and with beam 4.

    The two alternate round by round, so a busy neighbour on the machine slows both alike.
    """
    import zoo

    model, questions = zoo.get("seq2seq_addition", weights="default"), recipe.pairs[1][0]
    widths = {"greedy": 1, "beam4": 4}
    seconds = {name: [] for name in widths}
    for width in widths.values():
        recipe.decode(model, questions[:10], width)  # traces the decoder
    for _ in range(rounds):
        for name, width in widths.items():
            began = time.perf_counter()
            recipe.decode(model, questions, width)
            seconds[name].append(time.perf_counter() - began)
    return {name: float(np.median(values)) for name, values in seconds.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", nargs="+", default=list(SCHEDULES), help="KIND:LR:STEPS, KIND cosine or constant")
    parser.add_argument("--test-pairs", type=int, default=2000, help="held-out pairs scored at each evaluation")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        schedules = {text: _schedule(text) for text in args.schedule}
    except argparse.ArgumentTypeError as error:  # a usage error, not a traceback
        parser.error(str(error))

    curves = {}
    for name, fields in schedules.items():
        recipe, curves[name] = _curve(name, fields, args)
        print(json.dumps({name: curves[name]["curve"][-1]}), flush=True)
    times = _decode_times(recipe)
    result = {
        "benchmark": "seq2seq_addition_schedules",
        "config": vars(args),
        "held_out_pairs": args.test_pairs,
        "curves": curves,
        "decode_seconds_shipped_model": {**times, "beam4_over_greedy": times["beam4"] / times["greedy"]},
        "machine": describe_machine(),
    }
    write_results(result, RESULTS)


if __name__ == "__main__":
    main()
