"""Bounded work: --max_input_elements, --max_prompt_characters and --max_generation_work, over REST and gRPC.

Each limit answers 400 / INVALID_ARGUMENT naming the limit and its flag,
before the signature runs. The model is a stand-in with the `generate`
naming convention (`prompt`, `steps`), saved once for the module.
"""

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.__main__ import build_parser
from serving.dataplane import DataPlane
from serving.errors import ServingError
from serving.limits import (
    DEFAULT_MAX_GENERATION_WORK,
    DEFAULT_MAX_INPUT_ELEMENTS,
    DEFAULT_MAX_PROMPT_CHARACTERS,
    Limits,
)
from serving.repository import ModelConfig, ModelRepository
from serving.server import ModelServer

ELEMENTS, PROMPT, WORK = 40, 10, 60


class _Generator(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, "prompt"), tf.TensorSpec([None], tf.int32, "steps")])
    def generate(self, prompt, steps):
        return {"length": tf.strings.length(prompt, unit="UTF8_CHAR") + steps}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, "x")])
    def total(self, x):
        return {"sum": tf.reduce_sum(x, axis=1)}


@pytest.fixture(scope="module")
def generator_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("generator")
    module = _Generator()
    signatures = {"serving_default": module.total, "generate": module.generate}
    tf.saved_model.save(module, str(base / "1"), signatures=signatures)
    return base


@pytest.fixture(scope="module")
def limited(generator_base):
    with ModelServer(
        "g",
        str(generator_base),
        file_system_poll_wait_seconds=0,
        max_input_elements=ELEMENTS,
        max_prompt_characters=PROMPT,
        max_generation_work=WORK,
    ) as server:
        channel = grpc.insecure_channel(server.grpc_target)
        yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel)
        channel.close()


def _both(limited, signature, inputs):
    """(REST status, REST error or outputs, gRPC code, gRPC details or outputs) for one request."""
    server, stub = limited
    json_value = {k: [x.decode() if isinstance(x, bytes) else x for x in v.tolist()] for k, v in inputs.items()}
    body = {"signature_name": signature, "inputs": json_value}
    reply = requests.post(server.rest_target + "/v1/models/g:predict", json=body, timeout=30)
    rest = reply.json().get("error", reply.json().get("outputs"))
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "g", signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    try:
        response = stub.Predict(request, timeout=30)
        return reply.status_code, rest, grpc.StatusCode.OK, dict(response.outputs)
    except grpc.RpcError as error:
        return reply.status_code, rest, error.code(), error.details()


def _generate(prompts, steps):
    return {"prompt": np.array([p.encode() for p in prompts], object), "steps": np.array(steps, np.int32)}


OVER = [
    (
        "serving_default",
        {"x": np.ones((5, 9), np.float32)},
        "The request's inputs hold 45 elements, over the server's limit of 40 elements per request "
        "(--max_input_elements).",
    ),
    (
        "generate",
        _generate(["ab", "é" * 11], [0, 0]),
        "`prompt` holds a prompt of 11 characters, over the server's limit of 10 characters per prompt "
        "(--max_prompt_characters).",
    ),
    (
        "generate",
        _generate(["abc"] * 4, [1, 2, 3, 13]),
        "The request asks for 4 rows x (3 prompt characters + 13 steps) = 64 model steps, over the server's limit "
        "of 60 (--max_generation_work).",
    ),
]


@pytest.mark.parametrize("signature, inputs, message", OVER, ids=["elements", "prompt", "work"])
def test_a_request_over_a_limit_is_invalid_argument_naming_the_limit_and_flag(limited, signature, inputs, message):
    status, error, code, details = _both(limited, signature, inputs)
    assert (status, error) == (400, message)
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, message)


AT_THE_LIMIT = [
    ("serving_default", {"x": np.ones((5, 8), np.float32)}),
    ("generate", _generate(["ab", "é" * 10], [0, 0])),  # 10 characters in 20 bytes
    ("generate", _generate(["abc"] * 4, [1, 2, 3, 12])),  # 4 x (3 + 12) = 60
]


@pytest.mark.parametrize("signature, inputs", AT_THE_LIMIT, ids=["elements", "prompt", "work"])
def test_a_request_at_a_limit_runs(limited, signature, inputs):
    status, _, code, _ = _both(limited, signature, inputs)
    assert (status, code) == (200, grpc.StatusCode.OK)


def test_grpc_counts_elements_from_the_declared_shape_before_building_arrays(limited):
    _, stub = limited
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "g"
    proto = request.inputs["x"]
    proto.dtype = tf.float32.as_datatype_enum
    for size in (10**6, 10**6):  # declares 10^12 elements and carries none: never decoded
        proto.tensor_shape.dim.add(size=size)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("The request's inputs hold 1000000000000 elements")


def test_limits_are_decided_before_the_signature_runs(generator_base, monkeypatch):
    repository = ModelRepository([ModelConfig("g", str(generator_base))])
    repository.poll()
    servable = repository.resolve("g")
    calls = []
    monkeypatch.setattr(servable, "run", lambda *args: calls.append(args) or {"length": np.zeros(1, np.int32)})
    dataplane = DataPlane(repository, Limits(max_generation_work=WORK))
    with pytest.raises(ServingError, match=r"--max_generation_work"):
        dataplane.predict(servable, "generate", _generate(["a"] * 10, [6] * 10))
    assert calls == []


def test_zero_turns_each_limit_off():
    unlimited = Limits(max_generation_work=0, max_prompt_characters=0, max_input_elements=0)
    unlimited.check_inputs(_generate(["x" * 100_000] * 50, [4096] * 50))


def test_the_defaults_bound_what_the_issue_measured():
    limits = Limits()
    with pytest.raises(ServingError, match=r"10000 rows x \(5 prompt characters \+ 4096 steps\)"):
        limits.check_inputs(_generate(["ROMEO"] * 10_000, [4096] * 10_000))
    with pytest.raises(ServingError, match=r"a prompt of 50000000 characters"):
        limits.check_inputs({"prompt": np.array([b"a" * 50_000_000], object), "steps": np.array([1], np.int32)})
    limits.check_inputs(_generate(["ROMEO."] * 64, [500] * 64))  # 64 streams of 500 characters in one batch
    limits.check_inputs({"state": np.zeros((64, 1024), np.float32)})


def test_the_flags_and_the_server_share_the_defaults():
    args = build_parser().parse_args([])
    assert (args.max_generation_work, args.max_prompt_characters, args.max_input_elements) == (
        DEFAULT_MAX_GENERATION_WORK,
        DEFAULT_MAX_PROMPT_CHARACTERS,
        DEFAULT_MAX_INPUT_ELEMENTS,
    )
    assert ModelServer("m", "/nowhere").limits == Limits()
    flags = ["--max_generation_work=7", "--max_prompt_characters=8", "--max_input_elements=9"]
    args = build_parser().parse_args(flags)
    assert (args.max_generation_work, args.max_prompt_characters, args.max_input_elements) == (7, 8, 9)


@pytest.mark.parametrize("name", ["max_generation_work", "max_prompt_characters", "max_input_elements"])
def test_limits_reject_negative_values(name):
    with pytest.raises(ValueError, match=rf"`{name}` must be a non-negative integer\. Received: {name}=-1"):
        Limits(**{name: -1})
