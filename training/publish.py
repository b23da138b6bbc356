"""Publishing a trained model into `saved_models/<name>/`: the servable version,
the Keras model `zoo.get(name, weights="default")` loads, the measured card and
its figures (`training.plots`)."""

import datetime
import json
import os
import pathlib
import platform

import keras
import tensorflow as tf

from zoo._registry import artifact_dir, write_card
from zoo.export import export_saved_model

__all__ = ["publish", "machine_description"]

KEPT_CARD_KEYS = ("tried",)  # what a new version's card carries over from the previous card


def machine_description():
    """The machine a figure was measured on, for results files and cards."""
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": [g.name for g in gpus],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def publish(model, recipe, metrics, models_dir=None, extra=None):
    """Writes the artifacts of `model`, trained by `recipe` (a `training.recipes` recipe).

    `extra` (e.g. the bar, the published anchor, notes) is merged into the card.
    The previous card's `tried` (the recipes tried for this model, written by
    `benchmarks.char_recipes`) is kept: a new version does not forget them.
    The card's figures (the training curve from the run folder, and the figures
    the recipe draws) are drawn beside it and listed under `figures`.

    Returns:
        The new SavedModel version folder.
    """
    name = recipe.model
    target = pathlib.Path(models_dir) / name if models_dir else artifact_dir(name)
    target.mkdir(parents=True, exist_ok=True)
    card = {
        "metrics": metrics,
        "data": recipe.data_description(),
        "recipe": {"command": f"python -m training train {name}", "config": json.loads(recipe.to_json())},
        "seed": recipe.seed,
        "machine": machine_description(),
        "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "parameters": int(model.count_params()),
        **_kept_from_previous_card(target),
        **(extra or {}),
    }
    version_dir = export_saved_model(model, target, metadata={"card": card})
    card["served_version"] = int(version_dir.name)
    keras_file = target / f"{name}.keras"
    staging = keras_file.with_suffix(".keras.tmp.keras")
    model.save(staging)
    os.replace(staging, keras_file)
    write_card(target, card)
    # Drawn once the model and its card are in place: a figure that fails leaves a complete, servable model.
    card = _with_figures(card, recipe, target, model)
    write_card(target, card)
    return version_dir


def _kept_from_previous_card(target):
    previous = target / "card.json"
    if not previous.exists():
        return {}
    return {key: value for key, value in json.loads(previous.read_text()).items() if key in KEPT_CARD_KEYS}


def _with_figures(card, recipe, target, model):
    """`card` listing the figures drawn into `target`; matplotlib is optional, so without it the card says so."""
    try:
        from training import plots
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "matplotlib":
            raise
        why = f"matplotlib is not installed: pip install -e '.[dev]', then python -m training.plots {recipe.model}"
        return {**card, "figures": {}, "figures_missing": {"all": why}}
    return plots.with_figures(card, *plots.draw_card_figures(recipe, target, model))
