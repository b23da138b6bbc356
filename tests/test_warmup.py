"""TF Serving's warmup file: written at export, replayed at load, in TF Serving's own format."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving.warmup import MAX_WARMUP_RECORDS, WARMUP_FILE, read_warmup_requests, warm_up
from zoo.export import write_warmup_requests

REQUESTS = [
    ("serving_default", {"x": np.array([[1.0], [2.0]], np.float32)}),
    ("generate", {"prompt": np.array([b"ab"], dtype=object), "steps": np.array([3], np.int32)}),
]


def test_written_requests_read_back_exactly(tmp_path):
    path = write_warmup_requests(tmp_path, "tiny", REQUESTS)
    assert path == tmp_path / WARMUP_FILE
    again = read_warmup_requests(tmp_path)
    assert [name for name, _ in again] == ["serving_default", "generate"]
    np.testing.assert_array_equal(again[0][1]["x"], REQUESTS[0][1]["x"])
    assert again[0][1]["x"].dtype == np.float32
    assert again[1][1]["prompt"].tolist() == [b"ab"] and again[1][1]["steps"].dtype == np.int32


def test_records_are_prediction_logs_that_tf_serving_reads(tmp_path):
    write_warmup_requests(tmp_path, "tiny", REQUESTS[:1])
    (raw,) = list(tf.data.TFRecordDataset(str(tmp_path / WARMUP_FILE)).as_numpy_iterator())
    record = prediction_log_pb2.PredictionLog.FromString(raw)
    assert record.predict_log.request.model_spec.name == "tiny"
    assert record.predict_log.request.model_spec.signature_name == "serving_default"
    assert list(record.predict_log.request.inputs) == ["x"]


def test_warm_up_replays_every_request_each_iteration(tmp_path):
    write_warmup_requests(tmp_path, "tiny", REQUESTS)
    calls = []
    assert warm_up(lambda name, feeds: calls.append((name, sorted(feeds))), tmp_path, iterations=2) == 4
    assert calls == [("serving_default", ["x"]), ("generate", ["prompt", "steps"])] * 2


def test_no_file_means_nothing_to_replay(tmp_path):
    assert read_warmup_requests(tmp_path) == []
    assert warm_up(lambda *_: pytest.fail("nothing to run"), tmp_path) == 0


def test_a_failing_warmup_request_propagates(tmp_path):
    write_warmup_requests(tmp_path, "tiny", REQUESTS[:1])

    def broken(name, feeds):
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        warm_up(broken, tmp_path)


def test_too_many_requests_are_refused_as_tf_serving_does(tmp_path):
    too_many = [REQUESTS[0]] * (MAX_WARMUP_RECORDS + 1)
    with pytest.raises(ValueError, match="at most 1000 warmup requests. Received: 1001 requests"):
        write_warmup_requests(tmp_path, "tiny", too_many)


def _export_tiny_char_model(base, version=1):
    import zoo
    from zoo.export import export_saved_model

    model = zoo.get("char_lstm", vocabulary="\n ab", units=4, embedding_dim=2, num_layers=1)
    model(np.zeros((1, 1), np.int32))
    return model, export_saved_model(model, base, version=version)


@pytest.mark.slow
def test_a_char_model_export_ships_a_request_for_every_signature(tmp_path):
    _, version_dir = _export_tiny_char_model(tmp_path / "chars")
    names = sorted(name for name, _ in read_warmup_requests(version_dir))
    assert names == ["generate", "generate_bytes", "sample", "serving_default"]
    loaded = tf.saved_model.load(str(version_dir))
    for name, feeds in read_warmup_requests(version_dir):  # each one runs as shipped
        loaded.signatures[name](**{k: tf.constant(v) for k, v in feeds.items()})


@pytest.mark.slow
def test_the_server_replays_warmup_and_a_failing_warmup_fails_the_load(tmp_path):
    from serving.repository import ModelConfig, VersionPolicy
    from serving.server import ModelServer

    _, good = _export_tiny_char_model(tmp_path / "chars", version=1)
    _, bad = _export_tiny_char_model(tmp_path / "chars", version=2)
    write_warmup_requests(bad, "chars", [("serving_default", {"token_ids": np.zeros((2,), np.int32)})])  # rank 1
    config = [ModelConfig("chars", str(tmp_path / "chars"), policy=VersionPolicy("all"))]
    # No load retries: the failed warmup fails the load for good at once (with retries it stays LOADING a while).
    with ModelServer(model_config=config, file_system_poll_wait_seconds=0, max_num_load_retries=0) as server:
        states = {s.version: s for s in server.repository.status("chars")}
    assert states[1].state == "AVAILABLE"
    assert states[2].state == "END" and states[2].error_message
