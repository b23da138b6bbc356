"""`zoo.export`: the Exportable protocol, self-describing metadata, warmup for every model, re-exporting."""

import json
import re
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from serving.warmup import read_warmup_requests
from zoo import _registry
from zoo.export import METADATA_FILE, WARMUP_FILE, export_saved_model, read_zoo_metadata, reexport, stale_reasons
from zoo.export.__main__ import main as export_main

REPR = re.compile(r"object at 0x[0-9a-fA-F]+")
SHIPPED_VERSIONS = sorted(
    path for path in _registry.models_dir().glob("*/*") if path.is_dir() and path.name.isdigit()
)


class AffineModel(keras.Model):
    """y = w x + b behind the Exportable protocol; `requests` replaces its warmup."""

    requests = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def serving_endpoints(self):
        def serve(x):
            return {"y": self(x)}

        return {"serving_default": (serve, [tf.TensorSpec([None, 1], tf.float32, name="x")])}

    def warmup_requests(self):
        return [("serving_default", {"x": np.zeros((1, 1), np.float32)})] if self.requests is None else self.requests


class NoWarmupModel(keras.Model):
    def call(self, x):
        return x

    def serving_endpoints(self):
        return {}


def _affine(requests=None):
    model = AffineModel()
    model(np.zeros((1, 1), np.float32))
    model.requests = requests
    return model


def _run_every_warmup_request(version_dir):
    """Each request of the version's warmup file, run as shipped against its loaded signature."""
    loaded = tf.saved_model.load(str(version_dir))
    requests = read_warmup_requests(version_dir)
    for name, feeds in requests:
        outputs = loaded.signatures[name](**{alias: tf.constant(value) for alias, value in feeds.items()})
        assert outputs, name
    return requests


# -- the protocol --------------------------------------------------------------------------------------------------


def test_a_model_without_the_protocol_is_refused_by_name(tmp_path):
    plain = keras.Sequential([keras.layers.Dense(1)])
    plain(np.zeros((1, 1), np.float32))
    with pytest.raises(TypeError, match=r"Exportable protocol .*serving_endpoints\(\), warmup_requests\(\) missing. "
                                        r"Received: model of class Sequential"):
        export_saved_model(plain, tmp_path / "m")
    with pytest.raises(TypeError, match=r"warmup_requests\(\) missing. Received: model of class NoWarmupModel"):
        export_saved_model(NoWarmupModel(), tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "requests, message",
    [
        ([], r"`warmup_requests\(\)` must return at least one request, or the version loads cold. Received: \[\]"),
        ([("predict", {"x": np.zeros((1, 1), np.float32)})],
         r"must name a signature of the model, one of \['serving_default'\]. Received: signature names \['predict'\]"),
        ([("serving_default", {"y": np.zeros((1, 1), np.float32)})],
         r"for 'serving_default' must feed exactly its inputs \['x'\]. Received: \['y'\]"),
    ],
)
def test_a_warmup_that_cannot_run_fails_the_export(tmp_path, requests, message):
    with pytest.raises(ValueError, match=message):
        export_saved_model(_affine(requests), tmp_path / "m")
    assert not [p for p in (tmp_path / "m").glob("*")]  # nothing written, not even a hidden folder


def test_a_warmup_request_of_the_wrong_dtype_fails_the_export(tmp_path):
    with pytest.raises(ValueError, match=r"The warmup request for 'serving_default' must run on its signature. "
                                         r"It fails: .*expected to be a float tensor but is a int32 tensor"):
        export_saved_model(_affine([("serving_default", {"x": np.zeros((1, 1), np.int32)})]), tmp_path / "m")
    assert not (tmp_path / "m" / "1").exists()


# -- metadata: JSON through get_config, never a repr -----------------------------------------------------------------


class _Opaque:
    pass


@pytest.mark.parametrize(
    "metadata, error, message",
    [
        ({"card": {"recipe": {"seed": _Opaque()}}}, TypeError,
         r"`metadata.card.recipe.seed` must be a JSON value .* Received: metadata.card.recipe.seed of type _Opaque"),
        ({"card": {"metrics": [1.0, np.int64(3)]}}, TypeError, r"Received: metadata.card.metrics\[1\] of type int64"),
        ({"card": {"metrics": {"loss": float("nan")}}}, ValueError,
         r"`metadata.card.metrics.loss` must be a finite number, JSON has no NaN or infinity. "
         r"Received: metadata.card.metrics.loss=nan"),
        ({"card": {1: "one"}}, TypeError, r"`metadata.card` must have string keys. Received: key 1 of type int"),
    ],
)
def test_metadata_that_is_not_json_fails_loudly_naming_its_key(tmp_path, metadata, error, message):
    with pytest.raises(error, match=message):
        export_saved_model(_affine(), tmp_path / "m", metadata=metadata)
    assert not (tmp_path / "m" / "1").exists()


def test_an_initializer_in_the_config_is_written_through_keras_serialization(tmp_path):
    model = zoo.get("adding_lstm", units=4)  # its cell_options hold a ChronoBias object
    model(np.zeros((1, 3, 2), np.float32))
    version_dir = export_saved_model(model, tmp_path / "adding_lstm", metadata={"card": {"seed": 0}})
    text = (version_dir / METADATA_FILE).read_text()
    assert not REPR.search(text)
    initializer = json.loads(text)["config"]["cell_options"]["bias_initializer"]
    assert initializer["class_name"] == "ChronoBias" and initializer["config"] == {"max_timescale": 200, "seed": 0}
    rebuilt = keras.saving.deserialize_keras_object(initializer)
    assert rebuilt.get_config() == {"max_timescale": 200, "seed": 0}


# -- every registered model exports a warm version --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list())
def test_every_registered_model_exports_a_warmup_request_per_signature(name, tmp_path):
    entry = _registry._REGISTRY[name]
    model = zoo.get(name)
    model(entry.example_input(entry.defaults))
    version_dir = export_saved_model(model, tmp_path / name)
    assert (version_dir / WARMUP_FILE).stat().st_size > 0
    requests = _run_every_warmup_request(version_dir)
    assert sorted({signature for signature, _ in requests}) == read_zoo_metadata(version_dir)["signatures"]


# -- the shipped versions ----------------------------------------------------------------------------------------------


def test_every_shipped_model_is_served_by_its_only_version():
    for name in zoo.list(pretrained=True):
        base = _registry.artifact_dir(name)
        served = json.loads((base / "card.json").read_text())["served_version"]
        assert [p.name for p in base.iterdir() if p.name.isdigit()] == [str(served)], name


@pytest.mark.parametrize("version_dir", SHIPPED_VERSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_version_describes_itself_in_plain_json(version_dir):
    text = (version_dir / METADATA_FILE).read_text()
    assert not REPR.search(text)
    metadata = json.loads(text)
    assert json.loads(json.dumps(metadata, allow_nan=False)) == metadata
    assert metadata["version"] == int(version_dir.name) and metadata["card"]["recipe"]
    assert stale_reasons(version_dir) == []


@pytest.mark.slow
@pytest.mark.parametrize("version_dir", SHIPPED_VERSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_version_warms_up_every_signature(version_dir):
    assert (version_dir / WARMUP_FILE).stat().st_size > 0
    requests = _run_every_warmup_request(version_dir)
    assert sorted({signature for signature, _ in requests}) == read_zoo_metadata(version_dir)["signatures"]


@pytest.mark.slow
def test_the_embedded_server_serves_every_shipped_model_after_replaying_its_warmup():
    from serving.repository import ModelConfig
    from serving.server import ModelServer

    names = zoo.list(pretrained=True)
    config = [ModelConfig(name, str(_registry.artifact_dir(name))) for name in names]
    with ModelServer(model_config=config, file_system_poll_wait_seconds=0) as server:
        states = {name: [(s.version, s.state, s.error_message) for s in server.repository.status(name)]
                  for name in names}
    for name in names:
        served = json.loads((_registry.artifact_dir(name) / "card.json").read_text())["served_version"]
        assert states[name] == [(served, "AVAILABLE", "")], name


# -- re-exporting a stale version ----------------------------------------------------------------------------


def _stale_copy(models_dir, name="binary_adder"):
    """A copy of shipped `name` whose served version looks as the stale ones did: an empty warmup file."""
    source = _registry.artifact_dir(name)
    target = models_dir / name
    shutil.copytree(source, target)
    served = json.loads((target / "card.json").read_text())["served_version"]
    (target / str(served) / WARMUP_FILE).write_bytes(b"")
    return target, served


def test_stale_reasons_name_what_is_wrong(tmp_path):
    (tmp_path / METADATA_FILE).parent.mkdir(parents=True)
    (tmp_path / METADATA_FILE).write_text('{"config": {"init": "<zoo.Thing object at 0x7f00>"}}')
    assert stale_reasons(tmp_path) == ["zoo.json holds a Python repr", "no warmup file"]
    (tmp_path / WARMUP_FILE).write_bytes(b"")
    (tmp_path / METADATA_FILE).write_text("{}")
    assert stale_reasons(tmp_path) == ["an empty warmup file"]
    (tmp_path / WARMUP_FILE).write_bytes(b"request")
    (tmp_path / METADATA_FILE).write_text('{"signatures": ["generate", "serving_default"]}')
    (tmp_path / "saved_model.pb").write_bytes(b"...TensorListReserve...While...")  # a sampler with one loop
    whole_kernels = "a sampler whose products take whole kernels, one core each"
    assert stale_reasons(tmp_path) == [
        "no `generate_bytes` (REST streams then carry the state as JSON numbers)",
        "a sampler that takes a NaN or infinite state unchecked",
        "a sampler that filters, takes the argmax and freezes rows at every step, needed or not",
        "a sampler that fails on a batch of no rows", whole_kernels]
    (tmp_path / METADATA_FILE).write_text('{"signatures": ["generate", "generate_bytes", "serving_default"]}')
    assert stale_reasons(tmp_path) == [
        "a sampler that takes a NaN or infinite state unchecked",
        "a sampler that filters, takes the argmax and freezes rows at every step, needed or not",
        "a sampler that fails on a batch of no rows", whole_kernels]
    (tmp_path / "saved_model.pb").write_bytes(b"...TensorListReserve...must be finite numbers...")
    assert stale_reasons(tmp_path) == [
        "a sampler that filters, takes the argmax and freezes rows at every step, needed or not",
        "a sampler that fails on a batch of no rows", whole_kernels]
    (tmp_path / "saved_model.pb").write_bytes(b"...StatelessCase...While...must be finite numbers...")  # a loop a plan
    assert stale_reasons(tmp_path) == ["a sampler that fails on a batch of no rows", whole_kernels]
    (tmp_path / "saved_model.pb").write_bytes(b"...StatelessCase...no_rows_one_column...must be finite numbers...")
    assert stale_reasons(tmp_path) == [whole_kernels]
    (tmp_path / "saved_model.pb").write_bytes(
        b"...StatelessCase...no_rows_one_column...column_blocks...must be finite numbers...")
    assert stale_reasons(tmp_path) == []
    current = b"...StatelessCase...no_rows_one_column...column_blocks...must be finite numbers...stored_column_blocks"
    (tmp_path / "saved_model.pb").write_bytes(current)
    assert stale_reasons(tmp_path) == [
        "kernels stored as column blocks without whole-kernel forms (a server on one thread then runs the blocks, "
        "slower there than whole kernels)"]
    (tmp_path / "saved_model.pb").write_bytes(current + b"...whole_kernel_forms...")
    assert stale_reasons(tmp_path) == []


def test_reexport_writes_a_new_warm_version_with_the_same_card_and_retires_the_old(tmp_path):
    base, served = _stale_copy(tmp_path)
    old_card = read_zoo_metadata(base / str(served))["card"]
    new = reexport("binary_adder", models_dir=tmp_path)
    assert new == base / str(served + 1) and not (base / str(served)).exists()
    assert json.loads((base / "card.json").read_text())["served_version"] == served + 1
    assert read_zoo_metadata(new)["card"] == old_card and stale_reasons(new) == []
    _run_every_warmup_request(new)


def test_the_command_lists_and_reexports_stale_models(tmp_path, capsys):
    base, served = _stale_copy(tmp_path)
    assert export_main(["--stale", "--dry-run", "--models-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "binary_adder: an empty warmup file\n"
    assert export_main(["--stale", "--keep-old", "--models-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"binary_adder: an empty warmup file -> {base / str(served + 1)}")
    assert (base / str(served)).exists()  # kept, as asked
    assert export_main(["--stale", "--dry-run", "--models-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


def test_the_command_refuses_names_with_stale_and_a_model_it_cannot_rebuild(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_main(["--stale", "binary_adder"])
    assert "name the models to re-export, or pass --stale (not both)" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"Model 'binary_adder' must ship binary_adder.keras and card.json"):
        reexport("binary_adder", models_dir=tmp_path)
