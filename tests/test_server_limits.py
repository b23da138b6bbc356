"""Request limits (body size, generation steps, temperature) and per-request deadlines."""

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.dataplane import DataPlane
from serving.errors import Code, ServingError
from serving.grpc_service import _rpc
from serving.limits import Limits
from serving.repository import ModelConfig, ModelRepository
from serving.server import ModelServer

BODY_LIMIT, STEPS_LIMIT = 2000, 100


@pytest.fixture(scope="module")
def limited(tiny_versions):
    with ModelServer(
        "m",
        str(tiny_versions),
        file_system_poll_wait_seconds=0,
        max_request_size_bytes=BODY_LIMIT,
        max_generation_steps=STEPS_LIMIT,
    ) as server:
        channel = grpc.insecure_channel(server.grpc_target)
        yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel)
        channel.close()


def _rest(server, body, signature=""):
    data = body if isinstance(body, (bytes, str)) else None
    json_body = None if data is not None else {"signature_name": signature, "inputs": body}
    return requests.post(server.rest_target + "/v1/models/m:predict", data=data, json=json_body, timeout=30)


def _grpc_request(signature="", **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


# -------------------------------------------------------------- body size


def test_body_over_the_limit_is_a_400_naming_the_limit(limited):
    server, _ = limited
    big = b'{"instances": [' + b"1.0," * 1000 + b"1.0]}"
    reply = _rest(server, big)
    assert reply.status_code == 400 and reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "error": f"Request body of {len(big)} bytes exceeds the server's limit of {BODY_LIMIT} bytes "
        "(--max_request_size_bytes)."
    }
    assert _rest(server, {"x": [[1.0]]}).json() == {"outputs": [[3.0]]}  # still serving


def test_chunked_body_over_the_limit_is_refused_while_it_streams(limited):
    server, _ = limited
    chunks = (b" " * 500 for _ in range(10))  # no Content-Length: chunked transfer
    reply = requests.post(server.rest_target + "/v1/models/m:predict", data=chunks, timeout=30)
    assert reply.status_code == 400 and "exceeds the server's limit of 2000 bytes" in reply.json()["error"]


def test_grpc_request_over_the_limit_is_resource_exhausted(limited):
    _, stub = limited
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(_grpc_request(x=np.ones((1000, 1), np.float32)), timeout=30)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.Predict(_grpc_request(x=np.ones((1, 1), np.float32)), timeout=30).outputs["y"].float_val == [3.0]


# ------------------------------------------------------ generation limits

GENERATION_ERRORS = [
    ([STEPS_LIMIT + 1], [1.0], f"`steps` must be an integer between 0 and {STEPS_LIMIT}", "steps=[101]"),
    ([-1], [1.0], "`steps` must be an integer between 0 and", "steps=[-1]"),
    ([1, 2**30], [1.0, 1.0], "(the server's --max_generation_steps)", "steps=[         1,1073741824]"),
    ([1], [float("nan")], "`temperature` must be a finite number >= 0", "temperature=[nan]"),
    ([1], [float("inf")], "`temperature` must be a finite number >= 0", "temperature=[inf]"),
    ([1], [-0.5], "`temperature` must be a finite number >= 0", "temperature=[-0.5]"),
]


@pytest.mark.parametrize("steps, temperature, message, received", GENERATION_ERRORS)
def test_generation_limits_over_rest_and_grpc(limited, steps, temperature, message, received):
    server, stub = limited
    body = '{"signature_name": "generate", "inputs": {"steps": %s, "temperature": %s}}' % (
        steps,
        str(temperature).replace("nan", "NaN").replace("inf", "Infinity"),
    )
    reply = _rest(server, body)
    error = reply.json()["error"]
    assert reply.status_code == 400 and message in error and f"Received: {received}" in error
    request = _grpc_request("generate", steps=np.array(steps, np.int32), temperature=np.array(temperature, np.float32))
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in raised.value.details()


def test_steps_at_the_limit_run(limited):
    server, _ = limited
    reply = _rest(server, {"steps": [0, STEPS_LIMIT], "temperature": [0.0, 2.0]}, signature="generate")
    assert reply.json() == {"outputs": {"steps_out": [0, STEPS_LIMIT], "temperature_out": [0.0, 2.0]}}


def test_limits_are_checked_before_the_signature_runs(tiny_versions, monkeypatch):
    repository = ModelRepository([ModelConfig("m", str(tiny_versions))])
    repository.poll()
    servable = repository.resolve("m")
    calls = []
    monkeypatch.setattr(servable, "run", lambda *args: calls.append(args) or {"steps_out": 0, "temperature_out": 0})
    dataplane = DataPlane(repository, Limits(max_generation_steps=5))
    feeds = {"steps": np.array([6], np.int32), "temperature": np.array([1.0], np.float32)}
    with pytest.raises(ServingError, match="`steps` must be an integer between 0 and 5"):
        dataplane.predict(servable, "generate", feeds)
    assert calls == []
    dataplane.predict(servable, "generate", {**feeds, "steps": np.array([5], np.int32)})
    assert len(calls) == 1


def test_zero_means_no_step_limit():
    # 10^9 steps is also over the default --max_generation_work, turned off here to see the step limit alone.
    Limits(max_generation_steps=0, max_generation_work=0).check_inputs({"steps": np.array([10**9], np.int64)})
    with pytest.raises(ServingError, match=r"`steps` must be an integer >= 0\. Received: steps=\[-1\]"):
        Limits(max_generation_steps=0).check_inputs({"steps": np.array([-1], np.int64)})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_request_size_bytes": -1}, r"`max_request_size_bytes` must be a non-negative integer\. "
            r"Received: max_request_size_bytes=-1"),
        ({"max_generation_steps": 1.5}, r"Received: max_generation_steps=1.5"),
        ({"max_generation_steps": True}, r"Received: max_generation_steps=True"),
    ],
)
def test_limits_reject_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Limits(**kwargs)


# ---------------------------------------------------------------- deadlines


def test_grpc_deadline_is_deadline_exceeded_and_the_server_keeps_serving(limited):
    _, stub = limited
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(_grpc_request("spin", n=np.array([10**6], np.int32)), timeout=0.2)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert stub.Predict(_grpc_request(x=np.ones((1, 1), np.float32)), timeout=30).outputs["y"].float_val == [3.0]


class _ExpiredContext:
    def time_remaining(self):
        return -0.001

    def abort(self, code, details):
        raise _Aborted(code, details)


class _Aborted(Exception):
    pass


def test_a_call_past_its_deadline_is_not_run():
    calls = []
    wrapped = _rpc(lambda self, request, context: calls.append(request))
    with pytest.raises(_Aborted) as raised:
        wrapped(None, "request", _ExpiredContext())
    assert raised.value.args == (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") and calls == []
    assert ServingError(Code.DEADLINE_EXCEEDED, "").http_status == 504
