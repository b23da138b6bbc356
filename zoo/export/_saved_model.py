"""Export to `<base>/<version>/`, the layout TF Serving polls, atomically.

A version is written into a hidden temporary folder beside its final place and
renamed into place only when complete, so a polling server (ours or TF
Serving) never sees half a model. Each version describes itself in
`assets.extra/zoo.json` (architecture, config, vocabulary, signatures) and
ships a warmup request for every signature it serves.

What a model serves is its own business: the export asks only through the
`Exportable` protocol, never about the model's class.
"""

import json
import math
import os
import pathlib
import shutil
import tempfile
from typing import Callable, Protocol

import keras
import numpy as np
import tensorflow as tf

from zoo._checks import check_tensorflow_backend
from zoo.export._warmup import write_warmup_requests
from zoo.export._whole_kernels import attach_forms, differing_output, whole_kernels
from zoo.layers._loop import StoredColumnBlocks

__all__ = ["Exportable", "METADATA_FILE", "export_saved_model", "next_version", "read_zoo_metadata"]

METADATA_FILE = pathlib.Path("assets.extra") / "zoo.json"


class Exportable(Protocol):
    """What a model brings to be exported (besides being a built `keras.Model`).

    `zoo.models.CharLM`, `SequenceModel`, `Seq2Seq` and `ESNForecaster` follow it.
    """

    def serving_endpoints(self) -> dict[str, tuple[Callable, list[tf.TensorSpec]]]:
        """Signature name -> (function of the named inputs returning a dict of tensors, input signature)."""

    def warmup_requests(self) -> list[tuple[str, dict[str, np.ndarray]]]:
        """At least one small `(signature_name, {input name: array})` request, one per signature is best."""


_PROTOCOL_METHODS = ("serving_endpoints", "warmup_requests")


def _exportable_parts(model):
    """`(endpoints, warmup requests)` of `model`, asked through `Exportable` only.

    Raises:
        TypeError: `model` lacks a method of the protocol.
        ValueError: no warmup request, or one for a signature the model does not serve.
    """
    missing = [name for name in _PROTOCOL_METHODS if not callable(getattr(model, name, None))]
    if missing:
        raise TypeError(
            f"`model` must implement the Exportable protocol (zoo.export.Exportable): "
            f"{', '.join(f'{name}()' for name in missing)} missing. "
            f"Received: model of class {model.__class__.__name__}"
        )
    endpoints, requests = model.serving_endpoints(), model.warmup_requests()
    if not requests:
        raise ValueError(
            "`warmup_requests()` must return at least one request, or the version loads cold. "
            f"Received: {requests!r} from {model.__class__.__name__}"
        )
    unknown = sorted({name for name, _ in requests} - set(endpoints))
    if unknown:
        raise ValueError(
            f"Every warmup request must name a signature of the model, one of {sorted(endpoints)}. "
            f"Received: signature names {unknown}"
        )
    return endpoints, requests


def _run_warmup(signatures, endpoints, requests):
    """Runs every warmup request once, so an export that the server could not warm up fails here; returns each
    request's outputs."""
    outputs = []
    for name, feeds in requests:
        expected = sorted(spec.name for spec in endpoints[name][1])
        if sorted(feeds) != expected:
            raise ValueError(
                f"A warmup request for {name!r} must feed exactly its inputs {expected}. Received: {sorted(feeds)}"
            )
        try:
            outputs.append(signatures[name](*[tf.constant(feeds[spec.name]) for spec in endpoints[name][1]]))
        except (tf.errors.OpError, TypeError, ValueError) as error:
            raise ValueError(f"The warmup request for {name!r} must run on its signature. It fails: {error}") from error
    return outputs


def _check_forms(forms, kernel_blocks, requests, outputs):
    """Raises unless every whole-kernel form gives its signature's outputs, bit for bit, on the warmup requests."""
    kernels = whole_kernels(kernel_blocks)
    for (name, feeds), expected in zip(requests, outputs):
        got = forms[name](kernels, {alias: tf.constant(value) for alias, value in feeds.items()})
        differing = differing_output(expected, got)
        if differing is not None:
            raise RuntimeError(
                f"The whole-kernel form of {name!r} must give its signature's outputs bit for bit, which a server "
                f"on one thread runs in its place. Output {differing!r} differs on a warmup request."
            )


def _json_value(value, where):
    """`value` as plain JSON, objects with `get_config()` through Keras serialization; never a repr.

    Raises:
        TypeError: a value that is neither JSON nor Keras-serializable, or a non-string key.
        ValueError: a float that is NaN or infinite (not JSON).
    """
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"`{where}` must have string keys. Received: key {key!r} of type {type(key).__name__}")
        return {key: _json_value(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"`{where}` must be a finite number, JSON has no NaN or infinity. Received: {where}={value}")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if callable(getattr(value, "get_config", None)):
        return keras.saving.serialize_keras_object(value)
    raise TypeError(
        f"`{where}` must be a JSON value (str, number, bool, None, list, dict) or an object with get_config(). "
        f"Received: {where} of type {type(value).__name__}"
    )


def next_version(base_path):
    """One more than the highest integer-named version under `base_path` (1 if none)."""
    base = pathlib.Path(base_path)
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.exists() else []
    return max(versions, default=0) + 1


def export_saved_model(model, base_path, version=None, metadata=None):
    """Writes `model` as SavedModel version `version` (default: the next one).

    The signatures are `model.serving_endpoints()` and the warmup file holds
    `model.warmup_requests()`, each run once before anything is written. The
    graph holds only ops stock TF Serving runs on a CPU: the zoo's layers never
    take cuDNN kernels, no endpoint is XLA-compiled, no `py_function`. A kernel
    that samplers multiply by column blocks is stored as its blocks
    (`zoo.layers._loop.StoredColumnBlocks`), so no call cuts it again; every
    signature then also has a whole-kernel form beside it, which is not a
    signature, for a server on one thread (`zoo.export._whole_kernels`).

    Args:
        model: a built `keras.Model` following `Exportable`.
        base_path: the model's folder; the version is written below it.
        version: an integer, or None for `next_version(base_path)`.
        metadata: JSON-serializable facts merged into `zoo.json` (e.g. `{"card": ...}`).

    Returns:
        The final version folder.

    Raises:
        FileExistsError: that version already exists.
        TypeError: `model` is not `Exportable`, or its config or `metadata`
            holds a value that is not JSON (the message names its key).
        ValueError: a warmup request that does not fit the model's signatures.
        RuntimeError: a whole-kernel form whose outputs differ from its signature's on a warmup request.
    """
    check_tensorflow_backend(
        "zoo.export.export_saved_model",
        "a SavedModel is a TensorFlow graph traced through the model (save a model trained on another backend as "
        "`.keras` and export it from a TensorFlow process)",
    )
    endpoints, requests = _exportable_parts(model)
    base = pathlib.Path(base_path)
    base.mkdir(parents=True, exist_ok=True)
    version = next_version(base) if version is None else int(version)
    final = base / str(version)
    if final.exists():
        raise FileExistsError(f"Version {version} already exists at {final}; versions are immutable.")
    # A bare tf.Module holding the backing variables once: Keras's ExportArchive
    # stores every variable twice, doubling the files TF Serving has to load.
    # Kernels that samplers cut into column blocks are stored as their blocks.
    blocks = StoredColumnBlocks(model)
    module = tf.Module()
    module.model_variables = [v.value for v in model.weights if id(v) not in blocks.replaced]
    module.column_blocks = blocks.variables
    signatures = {
        name: tf.function(blocks.tracing(function), input_signature=signature, autograph=False)
        .get_concrete_function()
        for name, (function, signature) in endpoints.items()
    }
    forms = attach_forms(module, blocks, endpoints)
    outputs = _run_warmup(signatures, endpoints, requests)
    if forms:
        _check_forms(forms, blocks.kernel_blocks, requests, outputs)
    describe = {
        "architecture": model.__class__.__name__,
        "config": _json_value(model.get_config(), "config"),
        "signatures": sorted(signatures),
        "version": version,
        **_json_value(metadata or {}, "metadata"),
    }
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".export-{version}-", dir=base))
    try:
        tf.saved_model.save(module, str(staging), signatures=signatures)
        (staging / METADATA_FILE).parent.mkdir(exist_ok=True)
        (staging / METADATA_FILE).write_text(json.dumps(describe, indent=2, sort_keys=True, allow_nan=False))
        write_warmup_requests(staging, base.name, requests)
        staging.chmod(0o755)  # mkdtemp makes it private; a serving container runs as another user
        os.rename(staging, final)  # atomic on one file system
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def read_zoo_metadata(version_dir):
    """The `zoo.json` a version was exported with."""
    return json.loads((pathlib.Path(version_dir) / METADATA_FILE).read_text())
