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

from zoo import _weights
from zoo._weights import models_dir

__all__ = ["register", "get", "list_models", "card", "write_card", "example_input", "models_dir", "artifact_dir"]


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    factory: callable
    defaults: dict
    card: dict
    example_input: callable = None  # config -> a batch the model accepts (builds it to count parameters)


# Every card answers these, measured or not: a user comparing models reads the
# same fields everywhere, and `None` says plainly "not measured yet".
CARD_FIELDS = ("task", "paper", "parameters", "data", "recipe", "metrics", "seed", "machine", "export")


_REGISTRY = {}


def write_card(folder, card):
    """Writes `card` to `folder/card.json` whole or not at all (staged, then renamed), so `card`, the model
    browser and a serving poll never read half a card; returns the file."""
    path = pathlib.Path(folder) / "card.json"
    staging = path.with_name("card.json.tmp")
    staging.write_text(json.dumps(card, indent=2, sort_keys=True))
    os.replace(staging, path)
    return path


def artifact_dir(name):
    return models_dir() / name


def register(name, *, defaults, card, example_input=None):
    """Decorator: registers `factory(**config) -> keras.Model` under `name`.

    Args:
        name: the public name; must be new.
        defaults: the factory's arguments; `get`'s overrides may replace only these.
        card: static facts (at least "task", "paper", "data", "recipe", "export").
        example_input: optional `config -> inputs` used to build the model when
            the card has to count its parameters.

    Raises:
        ValueError: the name is taken, or the card lacks a static field.
    """
    missing = [key for key in ("task", "paper", "data", "recipe") if key not in card]
    if missing:
        raise ValueError(f"The card of {name!r} lacks {missing}. Expected keys {list(CARD_FIELDS)}.")

    def decorate(factory):
        if name in _REGISTRY:
            raise ValueError(f"A model named {name!r} is already registered.")
        _REGISTRY[name] = _Entry(name, factory, dict(defaults), dict(card), example_input)
        return factory

    return decorate


def _entry(name):
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Registered: {sorted(_REGISTRY)}.")
    return _REGISTRY[name]


def example_input(name, config=None):
    """A small batch that model `name` accepts: calling the model on it builds its weights.

    Args:
        name: a name from `list_models()`.
        config: the model's config, merged over the registered defaults
            (None = the defaults).

    Raises:
        ValueError: unknown name, or the architecture registers no `example_input`.
    """
    entry = _entry(name)
    if entry.example_input is None:
        raise ValueError(f"Model {name!r} registers no `example_input`. Pass `example_input=` to `register`.")
    return entry.example_input({**entry.defaults, **(config or {})})


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
            model, from the source tree or the installed package), a path to a
            `.keras` file saved from this architecture, or a URL of one ending
            in `#sha256=<hex>` (fetched once into `~/.cache/rnn-zoo`).
        **overrides: config values that replace the defaults (and the shipped
            model's own config when weights are loaded). With weights, every
            variable whose shape is unchanged is loaded; the others (say a
            new output head) keep their fresh initialisation and a warning
            names them.

    Raises:
        ValueError: unknown name or argument, no such weights, a URL without its hash or with another.
        ConnectionError: a URL that cannot be reached.
    """
    entry = _entry(name)
    _check_overrides(entry, overrides)
    if weights is None:
        return entry.factory(**{**entry.defaults, **overrides})
    trained = keras.saving.load_model(_weights.resolve(name, weights))
    if not overrides:
        return trained
    config = {**entry.defaults, **_factory_config(trained, entry), **overrides}
    model = entry.factory(**config)
    if entry.example_input is None:
        raise ValueError(f"Model {name!r} cannot take overrides with weights: it registers no `example_input`.")
    model(example_input(name, config))  # create the weights before copying into them
    _transfer_weights(trained, model)
    return model


def _factory_config(model, entry):
    config = model.get_config()
    return {key: config[key] for key in entry.defaults if key in config}


def _relative_path(model, variable):
    # A built model prefixes its name, a loaded one may not: compare what follows it.
    prefix = model.name + "/"
    return variable.path[len(prefix) :] if variable.path.startswith(prefix) else variable.path


def _transfer_weights(source, target):
    """Copies every variable whose path and shape agree; re-initialises the rest.

    Matching is by variable path (`rnn_0/cell/kernel`), not layer name: every
    recurrent layer's cell is called "cell". A changed output head is named in
    the warning by its layer path.
    """
    by_path = {_relative_path(target, v): v for v in target.weights}
    changed = []
    for variable in source.weights:
        path = _relative_path(source, variable)
        twin = by_path.get(path)
        if twin is None:
            continue
        if tuple(twin.shape) == tuple(variable.shape):
            twin.assign(variable.value)
        else:
            changed.append(f"{path!r} {tuple(variable.shape)} -> {tuple(twin.shape)}")
    if changed:
        message = f"Weights that changed shape were re-initialised, not loaded: {', '.join(changed)}."
        warnings.warn(message, stacklevel=3)  # at the caller of zoo.get


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
    """The model card: static facts plus the measured metrics of the shipped model.

    Returns:
        dict with at least `CARD_FIELDS`, `name` and `defaults`. `metrics`,
        `seed` and `machine` are None until a model is trained and published;
        `parameters` is counted from the shipped model or, failing that, from a
        freshly built one.
    """
    entry = _entry(name)
    result = {field: None for field in CARD_FIELDS}
    result.update({"name": name, **entry.card, "defaults": dict(entry.defaults)})
    measured = artifact_dir(name) / "card.json"
    if measured.exists():
        result.update(json.loads(measured.read_text()))
    if result["parameters"] is None and entry.example_input is not None:
        model = entry.factory(**entry.defaults)
        model(example_input(name))
        result["parameters"] = int(model.count_params())
    return result
