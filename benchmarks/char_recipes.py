"""Candidate recipes for a character model, each trained within the 45 CPU-minute budget and scored on every
held-out character: what issue 12's item 4 (char_lstm at or under 1.35 nats/char) tried.

    python -m benchmarks.char_recipes --steps 6400 --mixed-precision --candidate dropout=0.1 --candidate dropout=0.2
        # char_lstm, two candidates trained at once -> benchmarks/results/char_recipes.json

Each candidate is the model's recipe (`training.recipes`) with the options given (`units=384` and the other
`ARCHITECTURE_KEYS` size the model instead), trained on one thread in a process of its own, so two candidates use
the two cores of the reference machine and neither's CPU time counts the other's work. A candidate trains into
`runs/<model>_<its options>` (`runs/char_lstm_dropout0.1`); a finished run folder is measured, not retrained (its
checkpoint resumes at the last step), so rerunning the command collects the figures again. The figure is the
recipe's own: cross-entropy of the float32 model on every character of the four held-out plays, and the run's
CPU-minutes over all its segments. Each row also keeps the run's validation curve (the periodic passes over the
first `eval_chars` held-out characters) and the shipped card's figure for comparison.

The model's card keeps what was tried: after each run, `saved_models/<model>/card.json` lists under `tried` every
candidate of every `benchmarks/results/char_recipes*.json` for that model, best first (`--record-tried` alone
rewrites that list from the files).
"""

import argparse
import json
import pathlib
import subprocess
import sys

from benchmarks.machine import describe_machine, write_results

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ("char_lstm", "char_gru", "char_elman")
# Issue 12, item 4: char_lstm's nats/char within the budget (its recipe's own bar is 1.5); GRU and Elman have none.
ISSUE_BARS = {"char_lstm": 1.35}
ARCHITECTURE_KEYS = ("units", "num_layers", "embedding_dim")  # a candidate's keys that size the model, not the recipe


def parse_candidate(text):
    """`"dropout=0.1,batch_size=64"` -> {"dropout": 0.1, "batch_size": 64}: recipe options and architecture
    arguments (numbers)."""
    options = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"a candidate is KEY=VALUE[,KEY=VALUE...]. Received: {text!r}")
        number = float(value)
        options[key.strip()] = int(number) if number.is_integer() and "." not in value else number
    return options


def run_folder(model, changes):
    return f"runs/{model}_" + "_".join(f"{key}{value:g}" for key, value in sorted(changes.items()))


def candidate_options(args, changes):
    """The recipe options of one candidate: the recipe's defaults, replaced by the command line's common options
    and then by the candidate's own `changes`; its `ARCHITECTURE_KEYS` go to the model (the recipe's
    `overrides`)."""
    options = {"out_dir": run_folder(args.model, changes), "threads": 1}
    if args.steps:
        options["steps"] = args.steps
    if args.mixed_precision:
        options["mixed_precision"] = True
    architecture = {key: value for key, value in changes.items() if key in ARCHITECTURE_KEYS}
    if architecture:
        options["overrides"] = architecture
    return {**options, **{key: value for key, value in changes.items() if key not in ARCHITECTURE_KEYS}}


def train_candidate(model, options):
    """Trains (or measures a finished run of) one candidate in this process; returns its results row."""
    from training.recipes import recipe_for
    from training.recipes.char import BUDGET_MINUTES
    from training.runs import limit_cpu_threads

    limit_cpu_threads(options["threads"])
    recipe = recipe_for(model, **options)
    _, metrics = recipe.train(verbose=0)
    judged = recipe.judge(metrics)
    within_budget = metrics["train_cpu_minutes"] <= BUDGET_MINUTES
    return {"model": model, "options": options, "metrics": metrics, **_judged(judged), "within_budget": within_budget,
            "at_most_issue_bar": _at_most_issue_bar(model, judged["value"], within_budget),
            "validation_curve": _validation_curve(ROOT / options["out_dir"])}


def _at_most_issue_bar(model, value, within_budget):
    """Whether the figure meets the issue's bar within the budget; None for a model the issue sets no bar."""
    bar = ISSUE_BARS.get(model)
    return None if bar is None else value <= bar and within_budget


def _judged(judgement):
    return {key: judgement[key] for key in ("value", "bar", "passed", "notes")}


def _validation_curve(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [[row["step"], row["val_nats"]] for row in map(json.loads, lines) if "val_nats" in row]


def _check_candidates(parser, args):
    """Builds every candidate's recipe before any trains, so a bad option in the last one fails now, not after the
    first ones have spent their budget."""
    from training.recipes import recipe_for

    for changes in args.candidate:
        try:
            recipe = recipe_for(args.model, **candidate_options(args, changes))
            if recipe.overrides:  # the model's own checks judge its size: only building it runs them
                recipe.build_model()
        except (TypeError, ValueError) as error:
            parser.error(f"candidate {changes}: {error}")


def train_all(args):
    """Runs the candidates `args.parallel` at a time, each in a child process; returns their rows in order."""
    pending = list(enumerate(candidate_options(args, changes) for changes in args.candidate))
    rows, running = {}, []
    while pending or running:
        while pending and len(running) < args.parallel:
            index, options = pending.pop(0)
            command = [sys.executable, "-m", "benchmarks.char_recipes", "--worker", args.model, json.dumps(options)]
            running.append((index, subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE)))
        index, child = running.pop(0)
        out, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"candidate {args.candidate[index]} failed (exit code {child.returncode})")
        rows[index] = {"changes": args.candidate[index], **json.loads(out.decode().strip().splitlines()[-1])}
        print(json.dumps({k: rows[index][k] for k in ("options", "value", "at_most_issue_bar")}), flush=True)
    return [rows[index] for index in range(len(args.candidate))]


def tried_candidates(model, results_dir=ROOT / "benchmarks" / "results"):
    """Every candidate of `model` in the char_recipes results files, best first: what the card says was tried."""
    rows = []
    for path in sorted(results_dir.glob("char_recipes*.json")):
        result = json.loads(path.read_text())
        if result["model"] != model:
            continue
        for row in result["candidates"]:
            rows.append({"changes": row["changes"], "nats_per_char": row["value"],
                         "train_cpu_minutes": row["metrics"]["train_cpu_minutes"],
                         "within_budget": row["within_budget"], "machine": result["machine"]["cpu"],
                         "results": f"benchmarks/results/{path.name}"})
    return sorted(rows, key=lambda row: row["nats_per_char"])


def record_tried(model, models_dir=ROOT / "saved_models", results_dir=ROOT / "benchmarks" / "results"):
    """Writes `tried_candidates` into the shipped card of `model` (kept by `training.publish` across versions)."""
    from zoo._registry import write_card

    card = json.loads((models_dir / model / "card.json").read_text())
    card["tried"] = tried_candidates(model, results_dir)
    print(f"wrote {len(card['tried'])} tried candidates into {write_card(models_dir / model, card)}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(train_candidate(argv[1], json.loads(argv[2]))), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="char_lstm")
    parser.add_argument("--candidate", type=parse_candidate, action="append", default=[],
                        help="KEY=VALUE[,KEY=VALUE...] recipe options of one candidate, e.g. dropout=0.1, or the "
                        f"model's size ({', '.join(ARCHITECTURE_KEYS)}); repeatable")
    parser.add_argument("--steps", type=int, help="updates of every candidate (default: the recipe's)")
    parser.add_argument("--mixed-precision", action="store_true", help="bfloat16 products, float32 weights")
    parser.add_argument("--parallel", type=int, default=2, help="candidates trained at once, one thread each")
    parser.add_argument("--out", help="default: benchmarks/results/char_recipes.json")
    parser.add_argument("--record-tried", action="store_true",
                        help="only rewrite the card's list of tried candidates from the results files")
    args = parser.parse_args(argv)
    if args.record_tried:
        record_tried(args.model)
        return
    if not args.candidate:
        parser.error("at least one --candidate is required (or --record-tried)")
    _check_candidates(parser, args)
    card = json.loads((ROOT / "saved_models" / args.model / "card.json").read_text())
    write_results({"machine": describe_machine(), "model": args.model, "issue_bar": ISSUE_BARS.get(args.model),
                   "candidates": train_all(args),
                   "shipped": {"served_version": card["served_version"], "value": card["metrics"]["val_nats_per_char"],
                               "notes": card["notes"]}},
                  args.out or ROOT / "benchmarks" / "results" / "char_recipes.json")
    record_tried(args.model)


if __name__ == "__main__":
    main()
