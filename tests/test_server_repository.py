"""Model repository: version discovery, policies, config, hot swaps, failed loads; server lifecycle."""

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import requests
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

from serving.client import Client
from serving.dataplane import DataPlane
from serving.errors import Code, ServingError
from serving.repository import (
    ModelConfig,
    ModelRepository,
    VersionPolicy,
    parse_model_config,
    scan_versions,
)
from serving.server import ModelServer
from tests.serving_models import add_version

X = np.array([[1.0]], np.float32)
Y = {1: 2.5, 2: 3.0}  # y(1.0) for version 1 (0.5x + 2) and version 2 (2x + 1)


def y_of(dataplane, servable):
    return float(dataplane.predict(servable, "", {"x": X}).outputs["y"][0, 0])


# --------------------------------------------------------------- discovery


def test_scan_versions_keeps_integer_folders_holding_a_saved_model(tmp_path):
    for name in ("1", "00000123", "7", "abc", ".export-9-x", "-3"):
        (tmp_path / name).mkdir()
    for name in ("1", "00000123", "abc", ".export-9-x", "-3"):
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (tmp_path / "42").write_text("a file, not a folder")
    assert scan_versions(tmp_path) == {1: str(tmp_path / "1"), 123: str(tmp_path / "00000123")}
    assert scan_versions(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    "policy, expected",
    [
        (VersionPolicy(), {5}),
        (VersionPolicy("latest", num_versions=2), {3, 5}),
        (VersionPolicy("all"), {1, 3, 5}),
        (VersionPolicy("specific", versions=(1, 4)), {1}),
    ],
)
def test_version_policies(policy, expected):
    assert policy.select([3, 1, 5]) == expected


def test_version_policy_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Received: kind='newest'"):
        VersionPolicy("newest")
    with pytest.raises(ValueError, match=r"num_versions \} must be >= 1"):
        VersionPolicy("latest", num_versions=0)


def test_parse_model_config_text():
    models = parse_model_config(
        """model_config_list {
             config { name: "a" base_path: "/m/a" model_platform: "tensorflow"
                      model_version_policy { latest { num_versions: 2 } } }
             config { name: "b" base_path: "/m/b"
                      model_version_policy { specific { versions: 1 versions: 3 } }
                      version_labels { key: "stable" value: 1 } }
           }"""
    )
    assert models == [
        ModelConfig("a", "/m/a", VersionPolicy("latest", num_versions=2)),
        ModelConfig("b", "/m/b", VersionPolicy("specific", versions=(1, 3)), labels=(("stable", 1),)),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_config_list { config { nme: 1 } }", "Invalid model config text proto"),
        ('model_config_list { config { name: "a" base_path: "/a" model_platform: "onnx" } }', "model_platform"),
        ('model_config_list { config { name: "a" base_path: "/a" } config { name: "a" base_path: "/b" } }', "unique"),
        ('model_config_list { config { name: "a" } }', "needs a base_path"),
    ],
)
def test_parse_model_config_errors(text, message):
    with pytest.raises(ServingError, match=message) as raised:
        parse_model_config(text)
    assert raised.value.code == Code.INVALID_ARGUMENT


# ---------------------------------------------------------------- hot swap


def test_poll_loads_the_new_version_then_unloads_the_old(make_base, tiny_versions):
    base = make_base(1)
    repository = ModelRepository([ModelConfig("m", str(base))])
    dataplane = DataPlane(repository)
    repository.poll()
    old = repository.resolve("m")
    assert old.version == 1

    add_version(base, tiny_versions, 2)
    repository.poll()
    assert [(s.version, s.state) for s in repository.status("m")] == [(2, "AVAILABLE"), (1, "END")]
    assert y_of(dataplane, repository.resolve("m")) == Y[2]
    # A request that resolved version 1 before the swap finishes on it.
    assert y_of(dataplane, old) == Y[1]
    with pytest.raises(ServingError, match=r"Specific\(m, 1\)"):
        repository.resolve("m", version=1)


def test_a_version_that_fails_to_load_is_reported_and_the_old_one_keeps_serving(make_base):
    base = make_base(2)
    repository = ModelRepository([ModelConfig("m", str(base))], max_num_load_retries=0)
    repository.poll()
    (base / "3").mkdir()
    (base / "3" / "saved_model.pb").write_bytes(b"garbage")
    repository.poll()
    newest, serving = repository.status("m")
    assert (newest.version, newest.state) == (3, "END") and newest.error_code != Code.OK and newest.error_message
    assert (serving.version, serving.state) == (2, "AVAILABLE")
    assert repository.resolve("m").version == 2
    repository.poll()  # a failed version is not retried once its retries are spent (tests/test_server_load_retries.py)
    assert repository.status("m", 3)[0].state == "END"


@pytest.mark.slow
def test_removed_versions_are_unloaded(make_base):
    base = make_base(1, 2)
    repository = ModelRepository([ModelConfig("m", str(base), VersionPolicy("all"))])
    repository.poll()
    assert [s.version for s in repository.status("m")] == [2, 1]
    shutil.rmtree(base / "2")
    repository.poll()
    assert [(s.version, s.state) for s in repository.status("m")] == [(2, "END"), (1, "AVAILABLE")]


def test_no_request_fails_during_a_hot_swap(make_base, tiny_versions):
    base = make_base(1)
    with ModelServer("m", str(base), file_system_poll_wait_seconds=0) as server:
        session, answers, stop = requests.Session(), [], threading.Event()

        def hammer():
            while not stop.is_set():
                reply = session.post(server.rest_target + "/v1/models/m:predict", json={"instances": [[1.0]]})
                answers.append((reply.status_code, reply.json()))

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            add_version(base, tiny_versions, 2)
            server.repository.poll()
            time.sleep(0.1)
        finally:
            stop.set()
            worker.join()
    assert answers and all(status == 200 for status, _ in answers), answers
    assert {doc["predictions"][0][0] for _, doc in answers} <= {Y[1], Y[2]}
    assert answers[-1][1]["predictions"][0][0] == Y[2]


def test_background_poller_picks_up_new_versions(make_base, tiny_versions):
    base = make_base(1)
    with ModelServer("m", str(base), file_system_poll_wait_seconds=0.05) as server:
        client = Client(server.grpc_target, protocol="grpc")
        add_version(base, tiny_versions, 2)
        deadline = time.monotonic() + 20
        while client.status("m")[0]["version"] != 2 or not _available(client, "m"):
            assert time.monotonic() < deadline, client.status("m")
            time.sleep(0.05)
        assert client.predict("m", {"x": X})["y"].tolist() == [[Y[2]]]


# ------------------------------------------------------- labels and config


def test_a_label_on_a_version_that_did_not_load_stops_the_server_starting(make_base):
    labels = 'version_labels { key: "x" value: 5 }'
    config = f'model_config_list {{ config {{ name: "m" base_path: "{make_base(1)}" {labels} }} }}'
    with pytest.raises(ServingError, match="assign label to version 5 of model m") as raised:
        ModelServer(model_config=config, file_system_poll_wait_seconds=0).start()
    assert raised.value.code == Code.FAILED_PRECONDITION


@pytest.mark.slow
def test_reload_config_over_grpc(make_base):
    first, second = make_base(1, name="first"), make_base(2, name="second")
    with ModelServer("a", str(first), file_system_poll_wait_seconds=0) as server:
        request = model_management_pb2.ReloadConfigRequest()
        entry = request.config.model_config_list.config.add(name="b", base_path=str(second))
        entry.version_labels["stable"] = 2
        with grpc.insecure_channel(server.grpc_target) as channel:
            response = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=60)
        assert response.status.error_code == 0
        client = Client(server.rest_target)
        assert client.status("b") == [{"version": 2, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}]
        assert client.predict("b", {"x": X}, label="stable")["y"].tolist() == [[Y[2]]]
        with pytest.raises(ServingError, match=r"Latest\(a\)"):
            client.predict("a", {"x": X})


def _available(client, model):
    try:
        return client.status(model)[0]["state"] == "AVAILABLE"
    except ServingError:  # not known yet
        return False


def test_config_file_is_re_read_when_polled(make_base, tmp_path):
    first, second = make_base(1, name="first"), make_base(2, name="second")
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "a" base_path: "{first}" }} }}')
    with ModelServer(
        model_config_file=str(config), file_system_poll_wait_seconds=0, model_config_file_poll_wait_seconds=0.05
    ) as server:
        client = Client(server.grpc_target, protocol="grpc")
        staging = tmp_path / "models.config.new"
        staging.write_text(f'model_config_list {{ config {{ name: "b" base_path: "{second}" }} }}')
        staging.replace(config)  # atomic, so the poller never reads half a file
        deadline = time.monotonic() + 20
        while not _available(client, "b"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.predict("b", {"x": X})["y"].tolist() == [[Y[2]]]
        assert client.status("a")[0]["state"] == "END"


# ---------------------------------------------------------- server details


def test_rest_deadline_answers_504(make_base, monkeypatch):
    with ModelServer("m", str(make_base(1)), file_system_poll_wait_seconds=0, rest_api_timeout_in_ms=200) as server:
        resolve = server.dataplane.resolve

        def slow_resolve(*args, **kwargs):
            time.sleep(1.0)
            return resolve(*args, **kwargs)

        monkeypatch.setattr(server.dataplane, "resolve", slow_resolve)
        start = time.monotonic()
        reply = requests.post(server.rest_target + "/v1/models/m:predict", json={"instances": [[1.0]]}, timeout=10)
        assert reply.status_code == 504 and reply.json() == {"error": "Deadline Exceeded"}
        assert time.monotonic() - start < 0.9


def test_server_ports_and_stop(make_base):
    server = ModelServer("m", str(make_base(1)), file_system_poll_wait_seconds=0).start()
    assert server.grpc_port > 0 and server.rest_port > 0 and server.rest_port != server.grpc_port
    assert requests.get(server.rest_target + "/v1/models/m", timeout=10).status_code == 200
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.rest_target + "/v1/models/m", timeout=2)


def test_model_server_needs_exactly_one_model_source(tmp_path):
    with pytest.raises(ValueError, match="exactly one of model_base_path, model_config_file or model_config"):
        ModelServer("m", str(tmp_path), model_config_file=str(tmp_path / "c"))


@pytest.mark.slow
def test_command_line_server_drains_in_flight_requests_on_sigterm(make_base):
    command = [sys.executable, "-m", "serving", "--port=0", "--rest_api_port=0", "--model_name=m"]
    command += [f"--model_base_path={make_base(1)}", "--enable_batching"]  # batching on: drains too
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("Serving gRPC on"), line
        rest_target = line.split(" and REST on ")[1].strip()
        assert (
            requests.get(rest_target + "/v1/models/m", timeout=10).json()["model_version_status"][0]["state"]
            == "AVAILABLE"
        )
        # A request busy for about a second when SIGTERM arrives must still get its answer.
        spin = {"signature_name": "spin", "inputs": {"n": [400_000]}}
        in_flight = concurrent.futures.ThreadPoolExecutor(1).submit(
            requests.post, rest_target + "/v1/models/m:predict", json=spin, timeout=60
        )
        time.sleep(0.3)
        assert not in_flight.done()
        process.send_signal(signal.SIGTERM)
        reply = in_flight.result()
        assert (reply.status_code, reply.json()) == (200, {"outputs": [400000.0]})
        assert process.wait(timeout=30) == 0
        with pytest.raises(requests.ConnectionError):  # no longer accepting
            requests.get(rest_target + "/v1/models/m", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
