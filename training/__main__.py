"""Command line: `python -m training train NAME [options]`.

Trains a registered model (resuming its run folder if it has checkpoints),
measures validation bits per character on the whole held-out text and, with
`--publish`, writes the SavedModel, Keras model and card to `saved_models/`.
"""

import argparse
import dataclasses
import json
import sys

from training.config import TrainConfig


def _parse_override(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE. Received: {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _parser():
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a registered model")
    train.add_argument("model", help="a name from zoo.list()")
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        if field.name in ("model", "overrides"):
            continue
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if isinstance(default, bool):
            train.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            train.add_argument(flag, type=type(default) if default is not None else str, default=default)
    train.add_argument("--set", dest="overrides", action="append", type=_parse_override, default=[],
                       metavar="KEY=VALUE", help="architecture argument, e.g. --set units=512")
    train.add_argument("--publish", action="store_true", help="export the trained model to saved_models/")
    return parser


def main(argv=None):
    args = vars(_parser().parse_args(argv))
    args.pop("command")
    publish = args.pop("publish")
    args["overrides"] = dict(args["overrides"])
    if args["out_dir"] == TrainConfig.out_dir:
        args["out_dir"] = f"runs/{args['model']}"
    config = TrainConfig(**args)

    from training.loop import Trainer  # TensorFlow loads only once the arguments are valid

    trainer = Trainer(config)
    metrics = trainer.fit()
    print(json.dumps(metrics, indent=2))
    if publish:
        from training.publish import publish as publish_model

        version_dir = publish_model(trainer.model, config.model, metrics, config, trainer.corpus.source)
        print(f"Published {config.model} to {version_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
