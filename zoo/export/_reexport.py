"""Re-exporting a shipped model from its `.keras` weights, without retraining.

A shipped version goes stale when the exporter improves after it was written
(a warmup file that was empty, a `zoo.json` holding a Python repr). Versions
are immutable, since a polling server may have loaded one, so the fix is a
new version written from `saved_models/<name>/<name>.keras`, carrying the
same card, served in place of the old one.
"""

import json
import pathlib
import re
import shutil

import keras

from zoo._checks import FINITE_STATE
from zoo._registry import artifact_dir, list_models, write_card
from zoo.export._saved_model import METADATA_FILE, export_saved_model, read_zoo_metadata
from zoo.export._warmup import WARMUP_FILE
from zoo.export._whole_kernels import FORMS
from zoo.layers._loop import COLUMN_BLOCKS, STORED_COLUMN_BLOCKS
from zoo.sampling import NO_ROWS_PADDING

__all__ = ["stale_reasons", "stale_models", "reexport"]

_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
# Added to card.json after the export wrote zoo.json (see training.publish): not part of the exported card.
_CARD_ONLY_KEYS = ("served_version", "figures", "figures_missing")


def stale_reasons(version_dir):
    """Why the version in `version_dir` should be re-exported; an empty list when it is current."""
    version_dir = pathlib.Path(version_dir)
    reasons = []
    metadata = version_dir / METADATA_FILE
    if not metadata.exists():
        reasons.append("no zoo.json")
    elif _REPR.search(metadata.read_text()):
        reasons.append("zoo.json holds a Python repr")
    graph_file = version_dir / "saved_model.pb"
    graph = graph_file.read_bytes() if graph_file.exists() else b""
    if _draws_row_by_row(graph):
        reasons.append("a sampler that draws row by row")
    if _serves_generate(version_dir, graph):
        if "generate_bytes" not in read_zoo_metadata(version_dir)["signatures"]:
            reasons.append("no `generate_bytes` (REST streams then carry the state as JSON numbers)")
        if FINITE_STATE.encode() not in graph:
            reasons.append("a sampler that takes a NaN or infinite state unchecked")
        if b"Case" not in graph:
            reasons.append("a sampler that filters, takes the argmax and freezes rows at every step, needed or not")
        if NO_ROWS_PADDING.encode() not in graph:
            reasons.append("a sampler that fails on a batch of no rows")
        if COLUMN_BLOCKS.encode() not in graph:
            reasons.append("a sampler whose products take whole kernels, one core each")
        elif _cuts_kernels_at_every_call(graph):
            reasons.append("a sampler that cuts its kernels into column blocks at every call")
    if STORED_COLUMN_BLOCKS.encode() in graph and FORMS.encode() not in graph:
        reasons.append("kernels stored as column blocks without whole-kernel forms (a server on one thread then "
                       "runs the blocks, slower there than whole kernels)")
    warmup = version_dir / WARMUP_FILE
    if not warmup.exists():
        reasons.append("no warmup file")
    elif warmup.stat().st_size == 0:
        reasons.append("an empty warmup file")
    return reasons


def _draws_row_by_row(graph):
    """Whether the graph (saved_model.pb's bytes) samples with `StatelessMultinomial`, one call per row in a
    `map_fn` (most of a sampling step at batch 32): the exporter now draws the same tokens for the whole batch at
    once (`zoo.sampling.stateless_uniforms`)."""
    return b"StatelessMultinomial" in graph


def _cuts_kernels_at_every_call(graph):
    """Whether the graph (saved_model.pb's bytes) splits a kernel into more than one block of columns in its
    functions: a copy of the kernel at every call (about a millisecond for char_lstm's), where an export now stores
    the blocks (`zoo.layers._loop.StoredColumnBlocks`)."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    try:
        saved = saved_model_pb2.SavedModel.FromString(graph)
    except DecodeError:
        return False
    nodes = (node for meta in saved.meta_graphs for function in meta.graph_def.library.function
             for node in function.node_def)
    return any(node.op in ("Split", "SplitV") and node.name.rsplit("/", 1)[-1].startswith(COLUMN_BLOCKS)
               and node.attr["num_split"].i > 1 for node in nodes)


def _serves_generate(version_dir, graph):
    """Whether the version serves `generate` from a graph (saved_model.pb's bytes). Its sampler is stale without a
    `Case` choosing among `zoo.sampling.SAMPLING_PLANS` (every step then runs the top-k filter, argmax and per-row
    state freeze, a third of a step at batch 1), without `zoo.sampling.NO_ROWS_PADDING` (a batch of no rows
    then fails in the prompt's time loop), or without `zoo.layers._loop.COLUMN_BLOCKS` (each product of a step
    then runs on one core: at batch 1 on two cores, char_lstm's steps took 1.6 times as long)."""
    if not graph or not (version_dir / METADATA_FILE).exists():
        return False
    return "generate" in read_zoo_metadata(version_dir).get("signatures", {})


def _base(name, models_dir):
    return pathlib.Path(models_dir) / name if models_dir else artifact_dir(name)


def _served_dir(base, card):
    version = card.get("served_version")
    return None if version is None else base / str(version)


def stale_models(models_dir=None):
    """`{name: reasons}` for every shipped model whose served version is stale or missing."""
    stale = {}
    for name in list_models():
        base = _base(name, models_dir)
        if not (base / f"{name}.keras").exists():
            continue
        card_file = base / "card.json"
        served = _served_dir(base, json.loads(card_file.read_text())) if card_file.exists() else None
        reasons = ["no served version"] if served is None or not served.exists() else stale_reasons(served)
        if reasons:
            stale[name] = reasons
    return stale


def reexport(name, models_dir=None, keep_old=False):
    """Writes a new version of shipped model `name` from its `.keras` file and serves it.

    The new version's `zoo.json` carries the card of the version it replaces
    (or, without one, `card.json` less the keys publishing adds later);
    `card.json`'s `served_version` then names the new version and, unless
    `keep_old`, the replaced version's folder is removed.

    Args:
        name: a model shipped under `models_dir` (default: `saved_models/`).
        models_dir: the folder holding `<name>/`.
        keep_old: keep the replaced version folder (e.g. while a server still streams from it).

    Returns:
        The new version folder.

    Raises:
        ValueError: `name` has no `.keras` file or no `card.json`.
    """
    base = _base(name, models_dir)
    keras_file, card_file = base / f"{name}.keras", base / "card.json"
    if not keras_file.exists() or not card_file.exists():
        raise ValueError(
            f"Model {name!r} must ship {keras_file.name} and card.json to be re-exported. Received: {base}")
    card = json.loads(card_file.read_text())
    old = _served_dir(base, card)
    if old is not None and (old / METADATA_FILE).exists():
        exported_card = read_zoo_metadata(old)["card"]
    else:
        exported_card = {key: value for key, value in card.items() if key not in _CARD_ONLY_KEYS}
    model = keras.saving.load_model(keras_file)
    new = export_saved_model(model, base, metadata={"card": exported_card})
    card["served_version"] = int(new.name)
    write_card(base, card)
    if old is not None and old.exists() and not keep_old:
        shutil.rmtree(old)
    return new
