"""Streaming through the server: the same text as sampling in-process, chunked, pinned and resumable."""

import base64
import concurrent.futures
import io
import json
import pathlib
import re
import shutil
import threading

import numpy as np
import pytest
import requests

import zoo
from serving.batching import BatchingOptions
from serving.client import Client
from serving.demo import main as demo_main
from serving.demo import shipped_models
from serving.errors import Code, ServingError
from serving.generation import GenerationEngine
from serving.server import ModelServer
from serving.streaming import FIRST_CHUNK, MAX_CHUNK, StreamCheckpoint, TextStream, chunk_sizes
from tests.reference import randomize_weights
from zoo import sampling
from zoo.export import export_saved_model

VOCAB = "\n abcdefghij"
PROTOCOLS = ["rest", "grpc"]


def _random_char_model(seed):
    model = zoo.get("char_lstm", vocabulary=VOCAB, units=12, embedding_dim=6)
    model(np.zeros((1, 1), np.int32))
    return randomize_weights(model, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def models():
    """Versions 1 and 2 of a tiny character model: different weights, same vocabulary."""
    return {1: _random_char_model(0), 2: _random_char_model(1)}


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    """Folder with each version exported once; tests copy what they serve."""
    root = tmp_path_factory.mktemp("exported")
    for version, model in models.items():
        export_saved_model(model, root, version=version)
    return root


def _serve(exported, tmp_path, versions=(1,), **options):
    base = tmp_path / "chars"
    base.mkdir(exist_ok=True)
    for version in versions:
        shutil.copytree(exported / str(version), base / str(version))
    return ModelServer("chars", base, file_system_poll_wait_seconds=0, **options), base


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    running, _ = _serve(exported, tmp_path_factory.mktemp("served"))
    with running:
        yield running


def _client(server, protocol, **kwargs):
    target = server.grpc_target if protocol == "grpc" else server.rest_target
    return Client(target, protocol=protocol, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("chunk_size", [1, 7, 32])
def test_served_stream_equals_in_process_sampling(server, models, protocol, chunk_size):
    expected = sampling.sample(models[1], "abc", 40, temperature=0.9, top_k=5, seed=3)
    with _client(server, protocol) as client:
        pieces = list(client.stream("chars", "abc", 40, temperature=0.9, top_k=5, seed=3, chunk_size=chunk_size))
    assert "".join(pieces) == expected
    assert [len(p) for p in pieces] == [min(chunk_size, 40 - i) for i in range(0, 40, chunk_size)]


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_default_pieces_grow_and_the_text_is_unchanged(server, models, protocol):
    expected = sampling.sample(models[1], "abc", 300, temperature=0.9, seed=5)
    with _client(server, protocol) as client:
        stream = client.stream("chars", "abc", 300, temperature=0.9, seed=5)
        pieces = [next(stream), next(stream)]
        resumed = client.resume(stream.checkpoint.to_dict())  # mid-growth, through the JSON-ready form
        pieces += list(resumed)
    assert [len(p) for p in pieces] == [16, 32, 64, 128, 60] == chunk_sizes(300)
    assert "".join(pieces) == expected


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stream_costs_one_metadata_call_and_a_predict_per_piece(server, models, protocol):
    calls = []
    with _client(server, protocol) as client:
        transport = client._transport
        for name in ("signature_defs", "status", "predict"):
            method = getattr(transport, name)
            setattr(transport, name, lambda *args, name=name, method=method: calls.append(name) or method(*args))
        text = "".join(client.stream("chars", "abc", 50, temperature=0.9, seed=5))
    assert text == sampling.sample(models[1], "abc", 50, temperature=0.9, seed=5)
    assert calls == ["signature_defs", "predict", "predict"]  # pieces of 16 and 34: no status call, no 2-char tail


def _signatures_called(client):
    """The signature of every predict call `client` makes from now on."""
    called, predict = [], client._transport.predict

    def spy(model, arrays, signature_name, *rest):
        called.append(signature_name)
        return predict(model, arrays, signature_name, *rest)

    client._transport.predict = spy
    return called


@pytest.mark.slow
@pytest.mark.parametrize("protocol, signature", [("rest", "generate_bytes"), ("grpc", "generate")])
def test_rest_streams_carry_the_state_as_bytes_and_grpc_ones_as_numbers(server, models, protocol, signature):
    # JSON numbers for the state took most of a REST call's CPU; gRPC tensors are binary already.
    with _client(server, protocol) as client:
        called = _signatures_called(client)
        text = "".join(client.stream("chars", "abc", 40, temperature=0.9, seed=8, chunk_size=16))
    assert text == sampling.sample(models[1], "abc", 40, temperature=0.9, seed=8)
    assert called == [signature] * 3


@pytest.mark.slow
def test_a_rest_stream_from_a_version_without_generate_bytes_sends_numbers(models, tmp_path, monkeypatch):
    model = models[1]
    endpoints, requests_ = model.serving_endpoints(), model.warmup_requests()
    older = {name: endpoint for name, endpoint in endpoints.items() if name != "generate_bytes"}
    monkeypatch.setattr(model, "serving_endpoints", lambda: older)
    monkeypatch.setattr(model, "warmup_requests", lambda: [r for r in requests_ if r[0] != "generate_bytes"])
    export_saved_model(model, tmp_path / "chars", version=1)  # as versions exported before generate_bytes were
    with ModelServer("chars", tmp_path / "chars", file_system_poll_wait_seconds=0) as running:
        with _client(running, "rest") as client:
            called = _signatures_called(client)
            text = "".join(client.stream("chars", "abc", 20, seed=8, chunk_size=10))
    assert text == sampling.sample(model, "abc", 20, seed=8) and called == ["generate", "generate"]


@pytest.mark.slow
def test_bytes_and_number_streams_share_one_lane_and_each_gets_its_own_text(exported, models, tmp_path, monkeypatch):
    lanes = []
    submit = GenerationEngine._submit

    def recording(engine, key, *rest):
        lanes.append(key)
        return submit(engine, key, *rest)

    monkeypatch.setattr(GenerationEngine, "_submit", recording)
    running, _ = _serve(exported, tmp_path, batching=BatchingOptions(max_batch_size=8, num_batch_threads=2))
    jobs = [("rest", 3, 40), ("grpc", 4, 25), ("rest", 5, 33), ("grpc", 6, 40)]

    def stream(job):
        protocol, seed, tokens = job
        with _client(running, protocol) as client:
            return "".join(client.stream("chars", "ab", tokens, temperature=0.9, seed=seed, chunk_size=8))

    with running, concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        texts = list(pool.map(stream, jobs))
    for (_, seed, tokens), text in zip(jobs, texts):
        assert text == sampling.sample(models[1], "ab", tokens, temperature=0.9, seed=seed)
    assert len(set(lanes)) == 1 and lanes[0][1] == "generate"  # rows of both kinds in the one lane


def _no_state_inputs():
    return {"prompt": np.array([b"a"], object), "steps": np.array([3], np.int32),
            "temperature": np.array([1.0], np.float32), "top_k": np.array([0], np.int32),
            "seed": np.array([1], np.int64), "position": np.array([0], np.int64)}


@pytest.mark.slow
@pytest.mark.parametrize("batching", [None, BatchingOptions(max_batch_size=8, num_batch_threads=1)])
def test_a_bad_state_gets_the_graphs_own_error_and_the_server_goes_on(
        exported, models, tmp_path, batching):
    width = sum(models[1].state_sizes)
    running, _ = _serve(exported, tmp_path, batching=batching)
    inputs = {"prompt": ["a"], "steps": [3], "temperature": [1.0], "top_k": [0], "seed": [1], "position": [0]}
    replies = []
    with running:
        for state in (bytes(10), b"\xff" * 4 * width):  # too short; the right length, all NaN
            body = {"signature_name": "generate_bytes",
                    "inputs": {**inputs, "state_bytes": [{"b64": base64.b64encode(state).decode()}]}}
            replies.append(requests.post(f"{running.rest_target}/v1/models/chars:predict", json=body, timeout=30))
        with _client(running, "rest") as client:
            text = "".join(client.stream("chars", "ab", 12, seed=2))
            no_rows = client.predict("chars", {**{k: np.zeros(0, v.dtype) for k, v in _no_state_inputs().items()},
                                               "state_bytes": np.zeros(0, object)}, "generate_bytes")
    assert no_rows["state_bytes"].shape == (0,) and no_rows["text"].shape == (0,)
    reply, nan = replies
    assert reply.status_code == nan.status_code == 400
    assert re.search(r"^assertion failed: \[`state_bytes` must be finite numbers.*\] \[0\]", nan.json()["error"])
    message = rf"^assertion failed: \[`state_bytes` must hold {4 * width} bytes per row \({width} little-endian float32"
    assert re.search(message + r".*\] \[10\]", reply.json()["error"]), reply.json()["error"]
    assert text == sampling.sample(models[1], "ab", 12, seed=2)


def test_a_growing_checkpoint_doubles_up_to_its_cap_and_a_fixed_one_stays():
    growing = StreamCheckpoint("m", 1, "a", (0.0,), 0, 1000, 1.0, 0, 0, FIRST_CHUNK, MAX_CHUNK)
    sizes = []
    for _ in range(5):
        sizes.append(growing.chunk_size)
        growing = growing.after("b", (1.0,), growing.chunk_size)
    assert sizes == [16, 32, 64, 128, 128] and growing.position == 368
    fixed = StreamCheckpoint("m", 1, "a", (0.0,), 0, 1000, 1.0, 0, 0, 7)  # a checkpoint saved before pieces grew
    assert fixed.after("b", (1.0,), 7).after("c", (1.0,), 7).chunk_size == 7
    assert chunk_sizes(20, chunk_size=7) == [7, 7, 6] and chunk_sizes(500) == [16, 32, 64, 128, 128, 132]


def test_a_growing_stream_takes_a_tail_shorter_than_its_first_piece_into_its_last_call():
    assert chunk_sizes(20) == [20] and chunk_sizes(16) == [16] and chunk_sizes(5) == [5]
    assert chunk_sizes(16 + 32 + 15) == [16, 47] and chunk_sizes(16 + 32 + 16) == [16, 32, 16]
    assert chunk_sizes(0) == []


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_argmax_and_empty_prompt(server, models, protocol):
    with _client(server, protocol) as client:
        greedy = "".join(client.stream("chars", "", 25, temperature=0.0, chunk_size=10))
    assert greedy == sampling.sample(models[1], "", 25, temperature=0.0)


@pytest.mark.slow
def test_a_stream_stays_on_its_version_through_a_hot_swap(exported, models, tmp_path):
    running, base = _serve(exported, tmp_path)
    with running, _client(running, "grpc") as client:
        stream = client.stream("chars", "ab", 30, seed=9, chunk_size=10)
        first = next(stream)
        shutil.copytree(exported / "2", base / ".staging")
        (base / ".staging").rename(base / "2")
        running.repository.poll()  # version 2 loads, version 1 unloads
        assert [(s["version"], s["state"]) for s in client.status("chars")] == [(2, "AVAILABLE"), (1, "END")]
        with pytest.raises(ServingError, match="pinned to version 1, which the server no longer serves") as gone:
            next(stream)
        assert gone.value.code == Code.NOT_FOUND
        assert stream.checkpoint.position == 10  # nothing lost: resumable where version 1 is served again
        fresh = "".join(client.stream("chars", "ab", 30, seed=9, chunk_size=10))
    assert first == sampling.sample(models[1], "ab", 10, seed=9)
    assert fresh == sampling.sample(models[2], "ab", 30, seed=9)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_text(server, models, protocol):
    with _client(server, protocol) as client:
        stream = client.stream("chars", "j", 45, temperature=1.2, seed=21, chunk_size=8)
        head = next(stream) + next(stream)
        saved = json.loads(json.dumps(stream.checkpoint.to_dict()))
    assert saved["position"] == 16 and saved["version"] == 1
    with _client(server, protocol) as other:
        tail = "".join(other.resume(saved))
    assert head + tail == sampling.sample(models[1], "j", 45, temperature=1.2, seed=21)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stream_survives_a_server_restart(exported, models, tmp_path, protocol):
    running, base = _serve(exported, tmp_path)
    running.start()
    ports = {"port": running.grpc_port, "rest_api_port": running.rest_port}
    restarted = ModelServer("chars", base, file_system_poll_wait_seconds=0, **ports)
    try:
        # Retries enough to cover a slow restart on a loaded machine (~40 s); it usually takes ~1 s.
        with _client(running, protocol, retries=50, backoff=0.05, max_backoff=1.0) as client:
            stream = client.stream("chars", "ha", 36, seed=4, chunk_size=12)
            pieces = [next(stream)]
            running.stop(grace=0)
            timer = threading.Timer(0.3, restarted.start)  # down for a moment, then back on the same ports
            timer.start()
            pieces += list(stream)
            timer.join()
    finally:
        restarted.stop(grace=0)
    assert "".join(pieces) == sampling.sample(models[1], "ha", 36, seed=4)


@pytest.mark.slow
def test_without_retries_a_dropped_server_fails_fast(exported, tmp_path):
    running, _ = _serve(exported, tmp_path)
    running.start()
    with _client(running, "rest", retries=0, timeout=5) as client:
        stream = client.stream("chars", "a", 20, chunk_size=5)
        next(stream)
        running.stop(grace=0)
        with pytest.raises(Exception, match="UNAVAILABLE"):
            next(stream)


@pytest.mark.slow
def test_stream_argument_errors(server):
    with _client(server, "rest") as client:
        with pytest.raises(ValueError, match="`chunk_size` must be a positive integer. Received: chunk_size=0"):
            client.stream("chars", "a", 5, chunk_size=0)
        with pytest.raises(ValueError, match="`max_tokens` must be a non-negative integer. Received: max_tokens=-1"):
            client.stream("chars", "a", -1)
        assert list(client.stream("chars", "a", 0)) == []
        with pytest.raises(ValueError, match="retries must be an int >= 0"):
            Client(server.rest_target, retries=-1)


def test_a_model_without_generate_cannot_stream(tmp_path):
    import tensorflow as tf

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": 2 * x}

    module = Doubler()
    tf.saved_model.save(module, str(tmp_path / "doubler" / "1"), signatures={"serving_default": module.serve})
    with ModelServer("doubler", tmp_path / "doubler", file_system_poll_wait_seconds=0) as running:
        with _client(running, "grpc") as client, pytest.raises(ValueError, match="no `generate` signature"):
            client.stream("doubler", "a", 5)


def test_a_state_answered_in_other_bytes_stops_the_stream_saying_so():
    class ShortStateServer:  # a server whose generate_bytes answers 7 bytes for a 3-float state
        protocol = "rest"

        def predict(self, model, inputs, signature_name, version):
            assert signature_name == "generate_bytes" and len(inputs["state_bytes"][0]) == 12
            return {"text": np.array([b"ab"], object), "state_bytes": np.array([bytes(7)], object)}

    checkpoint = StreamCheckpoint("chars", 1, "a", (0.0, 0.0, 0.0), 0, 4, 1.0, 0, 0, 2)
    stream = TextStream(ShortStateServer(), checkpoint, "generate_bytes")
    with pytest.raises(ServingError, match=r"`state_bytes` must hold 12 bytes per row, the model's 3 finite") as bad:
        next(stream)
    assert bad.value.code == Code.INTERNAL and stream.checkpoint == checkpoint  # nothing half-applied


def test_checkpoint_is_complete():
    fields = {"model", "version", "prompt", "state", "position", "max_tokens", "temperature", "top_k", "seed",
              "chunk_size", "max_chunk_size"}
    assert {f for f in StreamCheckpoint.__dataclass_fields__} == fields


@pytest.mark.slow
def test_the_shipped_char_lstm_streams_what_it_samples_in_process():
    shipped = zoo.get("char_lstm", weights="default")
    expected = sampling.sample(shipped, "ROMEO.", 48, temperature=0.7, seed=2)
    with ModelServer("char_lstm", zoo._registry.artifact_dir("char_lstm"), file_system_poll_wait_seconds=0) as running:
        with _client(running, "grpc") as client:
            assert "".join(client.stream("char_lstm", "ROMEO.", 48, temperature=0.7, seed=2, chunk_size=16)) == expected


@pytest.mark.slow
def test_demo_serves_the_shipped_models_and_streams():
    out = io.StringIO()
    assert demo_main(["--tokens", "32", "--protocol", "rest", "--chunk-size", "8"], out=out) == 0
    printed = out.getvalue()
    assert "Streaming 32 characters from char_lstm version" in printed
    assert "32 characters in" in printed and "Server stopped." in printed
    assert "Model browser: http://127.0.0.1:" in printed
    shipped = zoo.get("char_lstm", weights="default")
    assert "ROMEO." + sampling.sample(shipped, "ROMEO.", 32, temperature=0.7, seed=2) in printed


def test_demo_refuses_bad_arguments_before_loading_anything(capsys):
    with pytest.raises(SystemExit) as exited:
        demo_main(["--tokens", "-3"])
    assert exited.value.code == 2
    assert "--tokens must be >= 0 and --chunk-size >= 1. Received: --tokens=-3" in capsys.readouterr().err


class _ReadTheBrowserThenStop:
    """A stop event for `--keep-serving` that, while the demo waits on it, reads the model list at the address
    the demo printed."""

    def __init__(self, out):
        self.out, self.models = out, None

    def wait(self, timeout=None):
        address = self.out.getvalue().split("Serving until Ctrl-C. Model browser: ")[1].split()[0]
        self.models = [entry["name"] for entry in requests.get(address + "api/models", timeout=30).json()["models"]]
        return True


@pytest.mark.slow
def test_demo_with_zero_tokens_keeps_serving_the_model_browser_until_told_to_stop():
    out = io.StringIO()
    stop = _ReadTheBrowserThenStop(out)
    assert demo_main(["--tokens", "0", "--keep-serving"], out=out, stop=stop) == 0
    shipped = shipped_models(pathlib.Path(__file__).resolve().parents[1] / "saved_models")
    assert stop.models == [config.name for config in shipped]
    printed = out.getvalue()
    assert "0 characters in" in printed and "nothing asked for.\n\nServing until Ctrl-C." in printed
    assert printed.endswith("Server stopped.\n")
