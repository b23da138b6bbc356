"""Command line: `python -m training train NAME [options]`.

Every registered model with a recipe (`training.recipes`) trains the same way:
the recipe's fields are the options (`--steps 500`, `--set units=512` for the
architecture), gradient-trained models run on `training.loop.Trainer` and
resume their run folder if it has checkpoints, the echo state networks fit
their readout in closed form. It prints the recipe's figures and, with
`--publish`, writes the SavedModel, Keras model and card to `saved_models/`.
"""

import argparse
import dataclasses
import json
import sys

from training.recipes import RECIPES, recipe_for


def _parse_override(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE. Received: {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _bool_or_choice(text):
    """"true"/"false" -> True/False; other words (e.g. "auto") stay words, for the field's own check."""
    return {"true": True, "false": False}.get(text.lower(), text)


def _parser(defaults):
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a registered model")
    train.add_argument("model", help="a name from zoo.list()")
    for field in dataclasses.fields(defaults) if defaults is not None else ():
        if field.name in ("model", "overrides"):
            continue
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if field.type == bool | str:
            choices = [*field.metadata["choices"], "true", "false"]
            train.add_argument(flag, type=_bool_or_choice, choices=[_bool_or_choice(c) for c in choices],
                               default=default, metavar="{" + ",".join(choices) + "}")
        elif isinstance(default, bool):
            train.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            train.add_argument(flag, type=type(default) if default is not None else str, default=default)
    train.add_argument("--set", dest="overrides", action="append", type=_parse_override, default=[],
                       metavar="KEY=VALUE", help="architecture argument, e.g. --set units=512")
    train.add_argument("--publish", action="store_true", help="export the trained model to saved_models/")
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    model = argv[1] if len(argv) > 1 and argv[0] == "train" else None
    if model is not None and model not in RECIPES:
        try:
            recipe_for(model)
        except ValueError as error:  # names the models that have a recipe
            raise SystemExit(f"python -m training: {error}") from None
    parser = _parser(RECIPES[model]() if model else None)
    args = vars(parser.parse_args(argv))
    args.pop("command")
    publish = args.pop("publish")
    args["overrides"] = dict(args["overrides"])
    try:
        recipe = recipe_for(args.pop("model"), **args)
    except (TypeError, ValueError) as error:  # a knob's rule: the message names the option and the value
        parser.error(str(error))
    trained, metrics = recipe.train()
    print(json.dumps(metrics, indent=2))
    if publish:
        from training.publish import publish as publish_model

        version_dir = publish_model(trained, recipe, metrics)
        print(f"Published {recipe.model} to {version_dir}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
