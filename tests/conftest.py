"""Serving fixtures: a tiny non-zoo SavedModel in two versions and a server on free ports.

The model is a bare `tf.Module`, so the serving tests exercise "any
SavedModel", not only the zoo's exports:

| signature | inputs | outputs |
|---|---|---|
| serving_default | x float32 (B, 1) | y = a*x + b: v1 a=0.5 b=2, v2 a=2 b=1 |
| multi | a float32 (B,), n int32 (B,), s string (B,) | sum = a + n, n2 = 2n, upper(s), echo_bytes = s, d = float64(a) |
| types | flag bool, i64 int64, d float64, u8 uint8 (all (B,)) | the same values back (`*_out`) |
| half | h float16 (B,) | out float32 |
| scalar_out | x float32 (B, 1) | total (scalar), y |
| short_batch | x float32 (B, 1) | first = x[:1], y |
| reshape3 | x float32 (B,) | x reshaped to (-1, 3): fails at run time unless B % 3 == 0 |
| classify (method classify) | inputs: tf.Example (B,), float feature x | classes ["low", "high"], scores [y, 1 - y] |
| regress (method regress) | inputs: serialized tf.Example (B,), float feature x | outputs = y (B, 1) |
| spin | n int32 (B,) | count: n[0] iterations of a graph loop (busy work for deadlines and drains) |
| generate | steps int32 (B,), temperature float32 (B,) | the same values back: the server's generation limits apply |
"""

import pytest


@pytest.fixture(scope="session")
def tiny_versions(tmp_path_factory):
    """Folder holding `1/` and `2/` of the tiny model, saved once per session."""
    from tests.serving_models import VERSION_WEIGHTS, save_tiny

    root = tmp_path_factory.mktemp("tiny_versions")
    for version in VERSION_WEIGHTS:
        save_tiny(root / str(version), version)
    return root


@pytest.fixture
def make_base(tmp_path, tiny_versions):
    """Builds a fresh base path holding copies of the given versions: make_base(1, 2)."""

    from tests.serving_models import add_version

    def make(*versions, name="model"):
        base = tmp_path / name
        base.mkdir()
        for version in versions:
            add_version(base, tiny_versions, version)
        return base

    return make


def _write_config(path, models):
    entries = []
    for name, base, extra in models:
        entries.append(f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" {extra} }}')
    path.write_text("model_config_list {\n" + "\n".join(entries) + "\n}\n")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_versions):
    """A `ModelServer` on free ports, polling off, serving:

    - "tiny": versions 1 and 2 (policy all), labels stable -> 1, canary -> 2;
    - "newest": the same folder with the default policy (only version 2);
    - "broken": one version whose saved_model.pb is garbage.
    """
    from serving.server import ModelServer

    root = tmp_path_factory.mktemp("served")
    broken = root / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    labels = 'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 }'
    config = _write_config(
        root / "models.config",
        [
            ("tiny", tiny_versions, "model_version_policy { all {} } " + labels),
            ("newest", tiny_versions, ""),
            ("broken", root / "broken", ""),
        ],
    )
    # No load retries: "broken" fails for good at once (END), as after TF Serving's last retry.
    with ModelServer(model_config_file=str(config), file_system_poll_wait_seconds=0, max_num_load_retries=0) as running:
        yield running


@pytest.fixture(scope="module")
def rest_url(server):
    """Base URL of the module's REST server."""
    return server.rest_target


@pytest.fixture(scope="module")
def grpc_stubs(server):
    """(PredictionServiceStub, ModelServiceStub) on the module's gRPC server."""
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_target)
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()
