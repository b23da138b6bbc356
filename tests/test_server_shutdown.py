"""`python -m serving` drains and exits 0 on SIGTERM and SIGINT, even while an abandoned computation runs.

Each test starts the server as a subprocess on the tiny model, leaves it a
long `spin` computation (a REST request past its deadline, or a gRPC call
whose client gave up), sends a signal and expects exit status 0 within the
grace period plus a margin. Before the fix the process died with SIGSEGV:
TensorFlow still ran in a worker thread while the interpreter finalized.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

GRACE_S = 2
EXIT_BOUND_S = 45  # the drain (at most 20 s below), the REST thread's join, and the exit on a loaded machine
SPIN = 2_000_000_000  # graph-loop iterations: minutes of CPU, never finished within a test


def _start_server(base_path, *flags, name="m"):
    command = [
        sys.executable, "-m", "serving", f"--model_name={name}", f"--model_base_path={base_path}", "--port=0",
        "--rest_api_port=0", "--file_system_poll_wait_seconds=0", f"--shutdown_grace_seconds={GRACE_S}", *flags,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Serving gRPC on "):
            grpc_target, rest_target = line.split()[3], line.split()[-1]
            return process, grpc_target, rest_target, lines
    process.wait()
    raise AssertionError("the server did not start:\n" + "".join(lines))


def _stop(process, signum, lines):
    process.send_signal(signum)
    started = time.monotonic()
    try:
        out, _ = process.communicate(timeout=EXIT_BOUND_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError("no exit within the bound:\n" + "".join(lines) + out) from None
    return process.returncode, time.monotonic() - started, "".join(lines) + out


def _spin_body():
    return {"signature_name": "spin", "inputs": {"n": [SPIN]}}


def _abandon_rest(rest_target):
    reply = requests.post(rest_target + "/v1/models/m:predict", json=_spin_body(), timeout=60)
    assert reply.status_code == 504 and reply.json() == {"error": "Deadline Exceeded"}


def _abandon_grpc(grpc_target):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "m", "spin"
    request.inputs["n"].CopyFrom(tf.make_tensor_proto(np.array([SPIN], np.int32)))
    with grpc.insecure_channel(grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=1.0)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("abandon", [_abandon_rest, _abandon_grpc], ids=["rest", "grpc"])
def test_a_signal_drains_and_exits_0_while_an_abandoned_computation_runs(tiny_versions, signum, abandon):
    process, grpc_target, rest_target, lines = _start_server(tiny_versions, "--rest_api_timeout_in_ms=1000")
    try:
        abandon(grpc_target if abandon is _abandon_grpc else rest_target)
        time.sleep(0.5)  # the computation is under way with nothing waiting for it
    finally:
        status, seconds, output = _stop(process, signum, lines)
    assert status == 0, output
    assert seconds < 2 * GRACE_S + 15  # gRPC's grace, then REST's, its thread's join and the exit, with margin
    assert "Stopping: letting requests in flight finish" in output


@pytest.mark.slow
def test_a_request_in_flight_at_the_signal_finishes_within_the_grace_period(tiny_versions):
    # A grace period far above the request's ~1 s of spinning, so a loaded machine does not cancel it.
    process, _, rest_target, lines = _start_server(tiny_versions, "--shutdown_grace_seconds=20")
    replies = []
    body = {"signature_name": "spin", "inputs": {"n": [300_000]}}
    thread = threading.Thread(
        target=lambda: replies.append(requests.post(rest_target + "/v1/models/m:predict", json=body, timeout=60))
    )
    try:
        thread.start()
        time.sleep(0.5)  # the request is in, and spinning
    finally:
        status, _, output = _stop(process, signal.SIGTERM, lines)
    thread.join(30)
    assert status == 0, output
    assert [(reply.status_code, reply.json()) for reply in replies] == [(200, {"outputs": [300000.0]})], output


@pytest.mark.slow
def test_an_idle_server_exits_0_on_sigterm(tiny_versions):
    process, _, _, lines = _start_server(tiny_versions)
    status, seconds, output = _stop(process, signal.SIGTERM, lines)
    assert status == 0 and seconds < EXIT_BOUND_S, output


@pytest.mark.slow
def test_sigterm_while_an_abandoned_char_lstm_sample_runs_exits_0():
    # The case: the shipped model sampling a large batch, abandoned at a short REST deadline.
    # Before the fix this process died with SIGSEGV (1 of 2 runs here, 3 of 3 in the issue).
    import zoo

    base = zoo._registry.artifact_dir("char_lstm")
    process, _, rest_target, lines = _start_server(base, "--rest_api_timeout_in_ms=2000", name="char_lstm")
    rows = 60  # 60 x (6 + 4,096) model steps: under the default --max_generation_work
    inputs = {"prompt": ["ROMEO."] * rows, "steps": [4096] * rows, "temperature": [1.0] * rows,
              "top_k": [0] * rows, "seed": list(range(rows))}
    try:
        reply = requests.post(rest_target + "/v1/models/char_lstm:predict",
                              json={"signature_name": "sample", "inputs": inputs}, timeout=60)
        assert reply.status_code == 504
        time.sleep(0.5)
    finally:
        status, seconds, output = _stop(process, signal.SIGTERM, lines)
    assert status == 0, output
    assert seconds < 2 * GRACE_S + 15
