"""Hot reload under load: a new char-model version dropped in while 8 clients (4 REST, 4 gRPC) stream.

A stream pins the newest version when it starts and sends every chunk to it,
so the version it began on must stay loaded until it ends. TF Serving's way to
give that is the version policy: with `latest { num_versions: 2 }` the previous
version stays AVAILABLE after the new one loads (serving/deploy/models.config
uses it); new streams pin the new version at once.
"""

import shutil
import threading
import time

import numpy as np
import pytest

from serving.client import Client
from serving.repository import ModelConfig, VersionPolicy
from serving.server import ModelServer
from serving.streaming import pin_version, stream_text
from zoo.export import export_saved_model

CLIENTS, TOKENS, CHUNK = 8, 12, 4


def _tiny_char_lm(seed):
    import zoo

    model = zoo.get("char_lstm", units=8, num_layers=1, embedding_dim=4, vocabulary="abc\n ")
    model(np.zeros((1, 1), np.int32))  # build, so export sees every variable
    rng = np.random.default_rng(seed)  # two versions, different weights: their texts differ
    for weight in model.weights:
        weight.assign(rng.normal(scale=0.8, size=weight.shape))
    return model


@pytest.fixture(scope="module")
def char_versions(tmp_path_factory):
    """A base path holding versions 1 and 2 of the tiny char model, exported once."""
    staged = tmp_path_factory.mktemp("char_versions")
    for seed in (1, 2):
        export_saved_model(_tiny_char_lm(seed), staged)
    return staged


def _drop_in(staged, base, version):
    """Copies a version in the way export_saved_model writes one: a hidden folder, then a rename."""
    hidden = base / f".incoming-{version}"
    shutil.copytree(staged / str(version), hidden)
    hidden.rename(base / str(version))


def _stream_until(stop, client, results, errors):
    while not stop.is_set():
        try:
            before = pin_version(client, "char")
            text = "".join(stream_text(client, "char", "ab", TOKENS, seed=7, chunk_size=CHUNK))
            # stream_text pinned the newest version in between; versions only grow,
            # so equal ends name it (None: the swap fell between them).
            results.append((before if pin_version(client, "char") == before else None, text))
        except Exception as error:  # every failure is a test failure, reported with its text
            errors.append(repr(error))


@pytest.mark.slow
def test_new_version_under_streaming_load(tmp_path, char_versions):
    base = tmp_path / "char"
    base.mkdir()
    _drop_in(char_versions, base, 1)
    config = [ModelConfig("char", str(base), VersionPolicy("latest", num_versions=2))]
    with ModelServer(model_config=config, file_system_poll_wait_seconds=0.05) as server:
        # Half the streams over REST, half over gRPC.
        clients = [Client(server.rest_target) for _ in range(CLIENTS // 2)]
        clients += [Client(server.grpc_target, protocol="grpc") for _ in range(CLIENTS - CLIENTS // 2)]
        stop, results, errors = threading.Event(), [], []
        threads = [threading.Thread(target=_stream_until, args=(stop, c, results, errors)) for c in clients]
        for thread in threads:
            thread.start()
        try:
            _wait_for(lambda: len(results) >= CLIENTS, "streams on version 1")
            _drop_in(char_versions, base, 2)
            swapped = len(results)
            _wait_for(lambda: any(v == 2 for v, _ in results[swapped:]), "a stream on version 2")
            after = len(results)
            _wait_for(lambda: len(results) >= after + CLIENTS, "more streams after the swap")
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
            for client in clients:
                client.close()
    assert errors == []
    texts = {version: {text for v, text in results if v == version} for version in (1, 2)}
    assert {text for v, text in results if v is None} <= texts[1] | texts[2]
    # Same seed, same version -> same text: no stream mixed the two models.
    assert len(texts[1]) == 1 and len(texts[2]) == 1 and texts[1] != texts[2]
    # Once version 2 served a stream, every stream that started later pinned it.
    first_v2 = next(i for i, (v, _) in enumerate(results) if v == 2)
    assert {text for _, text in results[first_v2 + CLIENTS :]} == texts[2]


def _wait_for(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
