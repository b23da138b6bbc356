"""Trains each named model the way its recipe says it is measured, and records the figure against its bar.

    python -m benchmarks.quality                      # every row
    python -m benchmarks.quality --only binary_adder elman_grammar --publish

The rows, their training protocol (seeds tried, medians), figure, bar and
anchor come from the recipes (`training.recipes`, `Recipe.quality` and
`Recipe.judge`): this module only runs them and records. With `--publish`,
rows that meet their bar are written to `saved_models/<name>/` (servable
SavedModel, `.keras`, `card.json`, figures); rows that miss get a `card.json`
with their measured figures only, so `zoo.card` shows the miss, unless
`--ship-misses` ships them too, the card still saying `passed: false`. A row that
varies its model (a twin without peepholes) is recorded, not published.
Results: `benchmarks/results/quality.json`, merged row by row with earlier runs.
"""

import argparse
import json
import os
import pathlib
import time

from benchmarks.machine import describe_machine

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "quality.json"


def run_row(row):
    """Trains row `row` through its recipe; returns (model, recipe, row record)."""
    from training.recipes import quality_rows, recipe_for

    name, fields = quality_rows()[row]
    recipe = recipe_for(name, **{"out_dir": f"runs/quality/{row}", **fields})
    return recipe.quality()


def _record(row_name, model, recipe, row, publish, ship_misses=False):
    from training.publish import publish as publish_model
    from zoo._registry import artifact_dir, write_card

    extra = {key: row[key] for key in ("bar", "anchor", "notes") if key in row} | {"passed": row["passed"]}
    if not publish or row_name != recipe.model:
        return
    if row["passed"] is False and not ship_misses:  # a miss ships no weights, but its card shows the figure
        folder = artifact_dir(recipe.model)
        folder.mkdir(parents=True, exist_ok=True)
        card = {"metrics": row["metrics"], "seed": recipe.seed, "machine": describe_machine(),
                "recipe": {"command": f"python -m training train {recipe.model}", "config": row["recipe"]}, **extra}
        write_card(folder, card)
    else:
        publish_model(model, recipe, row["metrics"], extra=extra)


def _parameters(row, card):
    """The shipped model's count (a character model's vocabulary is its corpus's); a variant's is built."""
    overrides = row["recipe"].get("overrides", {})
    if not overrides:
        return card["parameters"]
    import zoo

    model = zoo.get(card["name"], **overrides)
    model(zoo.example_input(card["name"], card["defaults"]))
    return model.count_params()


def markdown_table(results):
    """README's table: model, task, parameters, measured figure, bar, published anchor."""
    import zoo

    lines = ["| model | task | parameters | measured | bar | published anchor |", "|---|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        card = zoo.card(row["recipe"]["model"])
        lines.append(f"| `{name}` | {card['task']} | {_parameters(row, card):,} | {row['metric']} {row['value']:.4g} "
                     f"| {row['bar']} | {row['anchor']} |")
    return "\n".join(lines)


def main(argv=None):
    from training.recipes import quality_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rows = list(quality_rows())
    parser.add_argument("--only", nargs="*", default=rows, choices=rows)
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--ship-misses", action="store_true",
                        help="with --publish, ship a row that misses its bar too (its card records the miss)")
    parser.add_argument("--table", action="store_true", help="print README's table from the results and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(RESULTS.read_text())))
        return
    for name in args.only:
        began = time.time()
        model, recipe, row = run_row(name)
        row["train_seconds"] = time.time() - began
        row["seed"] = recipe.seed
        row["recipe"] = json.loads(recipe.to_json())
        summary = {k: row[k] for k in ("metric", "value", "bar", "passed", "train_seconds")}
        print(json.dumps({name: summary}), flush=True)
        row["machine"] = describe_machine()
        _record(name, model, recipe, row, args.publish, args.ship_misses)
        _merge_row(name, row)


def _merge_row(name, row):
    """Adds one row to the results file, read again now: rows run in other processes meanwhile are kept."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": {}}
    results["rows"][name] = row
    results["machine"] = row["machine"]
    RESULTS.parent.mkdir(exist_ok=True)
    staging = RESULTS.with_suffix(".json.tmp")
    staging.write_text(json.dumps(results, indent=2, sort_keys=True, default=float))
    os.replace(staging, RESULTS)


if __name__ == "__main__":
    main()
