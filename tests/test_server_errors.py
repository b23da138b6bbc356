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
