"""The one error table: canonical code -> HTTP status and gRPC code, as TF Serving maps them."""

import grpc
import pytest
import tensorflow as tf

from serving import errors
from serving.errors import Code, ServingError

# TF Serving's table, as docs/tf-serving-protocol.md records it.
HTTP = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INTERNAL: 500,
    Code.DATA_LOSS: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.OUT_OF_RANGE: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.UNAUTHENTICATED: 401,
}


@pytest.mark.parametrize("code", list(Code))
def test_every_code_maps_to_the_spec_http_status_and_its_grpc_namesake(code):
    error = ServingError(code, "m")
    assert error.http_status == HTTP[code]
    assert error.grpc_status == getattr(grpc.StatusCode, code.name)


def test_grpc_messages_are_cut_at_1024_characters():
    assert errors.truncate_for_grpc("x" * 1024) == "x" * 1024
    assert errors.truncate_for_grpc("x" * 1025) == "x" * 1024 + "...TRUNCATED"


def test_tensorflow_errors_keep_their_code_and_message():
    error = errors.from_exception(tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [2] vs. [3]"))
    assert (error.code, error.message, error.http_status) == (
        Code.INVALID_ARGUMENT,
        "Incompatible shapes: [2] vs. [3]",
        400,
    )
    assert errors.from_exception(KeyError("k")).code == Code.INTERNAL


def test_client_side_reconstruction():
    rest = errors.from_http_status(404, "Servable not found for request: Latest(m)")
    assert (rest.code, rest.http_status) == (Code.NOT_FOUND, 404)
    assert errors.from_http_status(418, "teapot").code == Code.UNKNOWN
    assert str(rest) == "NOT_FOUND: Servable not found for request: Latest(m)"


_GRAPH_ERRORS = [
    # What TensorFlow's Python runtime makes of a graph's error: with Python frames ...
    (
        'Graph execution error:\n\nDetected at node Reshape defined at (most recent call last):\n  File "m.py", '
        "line 10, in <module>\n    f(x)\n\n  File \"m.py\", line 8, in f\n\nInput to reshape is a tensor with 2 "
        "values, but the requested shape requires a multiple of 3\n\t [[{{node Reshape}}]] [Op:__inference_f_27]",
        "Input to reshape is a tensor with 2 values, but the requested shape requires a multiple of 3\n\t "
        "[[{{node Reshape}}]]",
    ),
    # ... without them (a loaded SavedModel), and for several nodes.
    (
        "Graph execution error:\n\nDetected at node A defined at (most recent call last):\n<stack traces "
        "unavailable>\nDetected at node B defined at (most recent call last):\n<stack traces unavailable>\n"
        "assertion failed: [`steps` must be an integer >= 0. Received: steps=] [-1]\n\t [[{{node B}}]] "
        "[Op:__inference_signature_wrapper_9]",
        "assertion failed: [`steps` must be an integer >= 0. Received: steps=] [-1]\n\t [[{{node B}}]]",
    ),
    ("a message of its own", "a message of its own"),
]


@pytest.mark.parametrize("raw, graph", _GRAPH_ERRORS, ids=["frames", "no-frames", "plain"])
def test_op_errors_keep_the_graphs_message_without_the_executor_preamble(raw, graph):
    error = tf.errors.InvalidArgumentError(None, None, raw)
    assert errors.from_exception(error).message == graph


@tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
def _reshape3(x):
    return tf.reshape(x, [-1, 3])


def test_a_real_graph_error_reaches_the_client_in_the_graphs_words():
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        _reshape3(tf.constant([1.0, 2.0]))
    assert raised.value.message.startswith("Graph execution error:")  # what TensorFlow's runtime raises
    message = errors.from_exception(raised.value).message
    assert message.startswith("Input to reshape is a tensor with 2 values, but the requested shape requires")
    assert "Detected at node" not in message and "[Op:" not in message


def test_a_graph_error_answers_rest_and_grpc_without_the_preamble(rest_url, grpc_stubs):
    import numpy as np
    import requests
    from tensorflow_serving.apis import predict_pb2

    body = {"signature_name": "reshape3", "inputs": [1.0, 2.0]}
    rest = requests.post(rest_url + "/v1/models/tiny:predict", json=body, timeout=30).json()["error"]
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "tiny", "reshape3"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones(2, np.float32)))
    with pytest.raises(grpc.RpcError) as raised:
        grpc_stubs[0].Predict(request, timeout=30)
    for message in (rest, raised.value.details()):
        assert message.startswith("Input to reshape is a tensor with 2 values"), message
        assert "Graph execution error" not in message and "[Op:" not in message
