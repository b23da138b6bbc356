"""The registry behind `zoo.get`, `zoo.list`, `zoo.card` and `zoo.register`.

An architecture is a small factory registered with its default config and a
static model card. Trained artifacts live in `saved_models/<name>/`: the
servable versions (`<int>/`), the Keras model `<name>.keras` and `card.json`
with the measured metrics. Both describe themselves, so `get` rebuilds a
shipped model from its own config.
"""

import dataclasses
import difflib
import fnmatch
import json
import os
import pathlib
import warnings

import keras

__all__ = ["register", "get", "list_models", "card", "models_dir", "artifact_dir"]


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    factory: callable
    defaults: dict
    card: dict


_REGISTRY = {}


def models_dir():
    """Where trained artifacts live: `$RNN_ZOO_MODELS` or the repo's `saved_models/`."""
    return pathlib.Path(os.environ.get("RNN_ZOO_MODELS", pathlib.Path(__file__).resolve().parents[1] / "saved_models"))


def artifact_dir(name):
    return models_dir() / name


def register(name, *, defaults, card):
    """Decorator: registers `factory(**config) -> keras.Model` under `name`."""

    def decorate(factory):
        if name in _REGISTRY:
            raise ValueError(f"A model named {name!r} is already registered.")
        _REGISTRY[name] = _Entry(name, factory, dict(defaults), dict(card))
        return factory

    return decorate


def _entry(name):
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Registered: {sorted(_REGISTRY)}.")
    return _REGISTRY[name]


def _shipped_keras_file(name):
    return artifact_dir(name) / f"{name}.keras"


def _check_overrides(entry, overrides):
    unknown = sorted(set(overrides) - set(entry.defaults))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {unknown} for model {entry.name!r}. Expected some of {sorted(entry.defaults)}."
        )


def get(name, weights=None, **overrides):
    """Builds the registered architecture `name`.

    Args:
        name: a name from `list_models()`.
        weights: None (fresh initialisation), "default" (the shipped trained
            model) or a path to a `.keras` file saved from this architecture.
        **overrides: config values that replace the defaults (and the shipped
            model's own config when weights are loaded).

    Raises:
        ValueError: unknown name or argument, or no shipped weights.
    """
    entry = _entry(name)
    _check_overrides(entry, overrides)
    if weights is None:
        return entry.factory(**{**entry.defaults, **overrides})
    path = _shipped_keras_file(name) if weights == "default" else pathlib.Path(weights)
    if not path.exists():
        raise ValueError(f"No weights for model {name!r} at {path}. Train and export it first (see README).")
    trained = keras.saving.load_model(path)
    if not overrides:
        return trained
    model = entry.factory(**{**entry.defaults, **_factory_config(trained, entry), **overrides})
    _transfer_weights(trained, model)
    return model


def _factory_config(model, entry):
    config = model.get_config()
    return {key: config[key] for key in entry.defaults if key in config}


def _transfer_weights(source, target):
    """Copies weights layer by layer where shapes agree; re-initialises the rest."""
    target_layers = {layer.name: layer for layer in target._flatten_layers(include_self=False)}
    for layer in source._flatten_layers(include_self=False):
        twin = target_layers.get(layer.name)
        if twin is None or not layer.weights:
            continue
        if [w.shape for w in layer.weights] == [w.shape for w in twin.weights]:
            twin.set_weights(layer.get_weights())
        else:
            warnings.warn(f"Layer {layer.name!r} changed shape: its weights were re-initialised, not loaded.")


def list_models(pattern=None, task=None, pretrained=None):
    """Registered names, sorted; filtered by shell pattern, task and shipped weights."""
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if task is not None:
        names = [n for n in names if _REGISTRY[n].card.get("task") == task]
    if pretrained is not None:
        names = [n for n in names if _shipped_keras_file(n).exists() == pretrained]
    return names


def card(name):
    """The model card: static facts plus the measured metrics of the shipped model."""
    entry = _entry(name)
    result = {"name": name, **entry.card, "defaults": dict(entry.defaults)}
    measured = artifact_dir(name) / "card.json"
    if measured.exists():
        result.update(json.loads(measured.read_text()))
    return result
