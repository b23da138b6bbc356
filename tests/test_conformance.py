"""TF Serving conformance: one table of cases, each run over REST (plain `requests`) and gRPC (official stubs).

Every row of `docs/tf-serving-protocol.md`'s error table and routing
rules that both protocols share is one `Case` here, with the HTTP status and
gRPC code TF Serving gives and the message substring each protocol words it
with (they differ where TF Serving's REST and gRPC paths differ, e.g. an
unknown predict signature). JSON-only faults (bad JSON, ragged rows, b64,
dtype of JSON values) live in `test_server_rest.py`'s `PREDICT_ERRORS` table,
tensor-proto-only faults in `test_server_grpc.py`'s.

Fixtures (conftest): "tiny" serves versions 1 (y = 0.5x + 2) and 2
(y = 2x + 1) with labels stable -> 1 and canary -> 2; "newest" only version
2; "broken" one version that fails to load. The classify and regress
signatures read float feature x from tf.Examples.
"""

import dataclasses
import json
import math

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    regression_pb2,
)

from tests.serving_models import METHOD_NAMES, example_bytes
from tests.test_server_grpc import predict_request
from tests.test_server_grpc import spec as _spec

INVALID, NOT_FOUND, PRECONDITION, UNIMPLEMENTED = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
)
X = np.array([[1.0], [2.0]], np.float32)


# ------------------------------------------------------ request builders


def _add_examples(request, xs, context=None):
    if xs is None:
        return request
    target = request.input.example_list_with_context if context else request.input.example_list
    if context:
        target.context.ParseFromString(example_bytes(**context))
    for x in xs:
        target.examples.add().ParseFromString(example_bytes(x=x))
    return request


def _with_empty_example(request):
    request.input.example_list.examples.add()
    return request


def classify_request(xs=(1.0,), context=None, signature="classify", **model_spec):
    return _add_examples(
        _spec(classification_pb2.ClassificationRequest(), signature=signature, **model_spec), xs, context
    )


def regress_request(xs=(1.0,), context=None, signature="regress", **model_spec):
    return _add_examples(_spec(regression_pb2.RegressionRequest(), signature=signature, **model_spec), xs, context)


def multi_request(tasks, xs=(1.0,), name="tiny"):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method, *other in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name = other[0] if other else name
        task.model_spec.signature_name = signature
    return _add_examples(request, xs)


def status_request(**model_spec):
    return _spec(get_model_status_pb2.GetModelStatusRequest(), **model_spec)


def metadata_request(**model_spec):
    return _spec(get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"]), **model_spec)


# ------------------------------------------------------------ transports


def rest_call(rest_url, method, path, body=None):
    """(status, parsed JSON, raw text); every answer under /v1/ must be application/json."""
    data = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
    reply = requests.request(method, rest_url + path, data=data, timeout=30)
    assert reply.headers.get("content-type") == "application/json", reply.headers
    return reply.status_code, json.loads(reply.content), reply.text


def grpc_call(grpc_stubs, rpc, request):
    """(status code, details, response) of one RPC through the official stubs."""
    prediction, model = grpc_stubs
    stub = model if rpc in ("GetModelStatus", "HandleReloadConfigRequest") else prediction
    try:
        return grpc.StatusCode.OK, "", getattr(stub, rpc)(request, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details(), None


# ------------------------------------------------------------- the cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One fault, as TF Serving answers it over each protocol.

    rest: (method, path, body) or None; grpc: (rpc name, request) or None;
    grpc_message: the gRPC wording where it differs from the REST one.
    """

    name: str
    rest: tuple
    grpc: tuple
    http: int
    code: grpc.StatusCode
    message: str
    grpc_message: str = None


def _predict(path="/v1/models/tiny:predict", body=None):
    return ("POST", path, {"instances": [[1.0]]} if body is None else body)


CLASSIFY_BODY = {"signature_name": "classify", "examples": [{"x": 1.0}]}
REGRESS_BODY = {"signature_name": "regress", "examples": [{"x": 1.0}]}
MULTI_COLUMNS = {"a": np.array([1.0], np.float32), "n": np.array([1], np.int32)}
CLASSIFY_METHOD, REGRESS_METHOD = METHOD_NAMES["classify"], METHOD_NAMES["regress"]

ERROR_CASES = [
    # ----- routing: model, version, label
    Case(
        "unknown model",
        _predict("/v1/models/nope:predict"),
        ("Predict", predict_request({"x": X}, name="nope")),
        404,
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    Case(
        "unknown version",
        _predict("/v1/models/tiny/versions/9:predict"),
        ("Predict", predict_request({"x": X}, version=9)),
        404,
        NOT_FOUND,
        "Servable not found for request: Specific(tiny, 9)",
    ),
    Case(
        "unknown label",
        _predict("/v1/models/tiny/labels/nope:predict"),
        ("Predict", predict_request({"x": X}, label="nope")),
        400,
        INVALID,
        "Unrecognized servable version label: nope",
    ),
    Case(
        "model whose only version failed to load",
        _predict("/v1/models/broken:predict"),
        ("Predict", predict_request({"x": X}, name="broken")),
        404,
        NOT_FOUND,
        "Servable not found for request: Latest(broken)",
    ),
    Case(
        "unknown signature",
        _predict(body={"signature_name": "nope", "instances": [[1.0]]}),
        ("Predict", predict_request({"x": X}, signature="nope")),
        400,
        PRECONDITION,
        'Serving signature name: "nope" not found in signature def',
        grpc_message='Serving signature key "nope" not found.',
    ),
    Case(
        "status of an unknown model",
        ("GET", "/v1/models/nope", None),
        ("GetModelStatus", status_request(name="nope")),
        404,
        NOT_FOUND,
        "Could not find any versions of model nope",
    ),
    Case(
        "status of an unknown version",
        ("GET", "/v1/models/tiny/versions/7", None),
        ("GetModelStatus", status_request(version=7)),
        404,
        NOT_FOUND,
        "Could not find version 7 of model tiny",
    ),
    Case(
        "metadata of an unknown model",
        ("GET", "/v1/models/nope/metadata", None),
        ("GetModelMetadata", metadata_request(name="nope")),
        404,
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    Case(
        "metadata of an unknown label",
        ("GET", "/v1/models/tiny/labels/nope/metadata", None),
        ("GetModelMetadata", metadata_request(label="nope")),
        400,
        INVALID,
        "Unrecognized servable version label: nope",
    ),
    # ----- inputs
    Case(
        "wrong input name",
        _predict(body={"instances": [{"z": [1.0]}]}),
        ("Predict", predict_request({"z": X})),
        400,
        INVALID,
        "does not have named input: z",
        grpc_message="input tensor alias not found in signature: z",
    ),
    Case(
        "missing input",
        _predict(body={"signature_name": "multi", "inputs": {"a": [1.0], "n": [1]}}),
        ("Predict", predict_request(MULTI_COLUMNS, signature="multi")),
        400,
        INVALID,
        "Missing named input: s in 'inputs' object.",
        grpc_message="input size does not match signature",
    ),
    Case(
        "wrong dtype",
        _predict(body={"instances": [["a"]]}),
        ("Predict", predict_request({"x": np.array([[b"a"]], object)})),
        400,
        INVALID,
        "is not of expected type: float",
        grpc_message="Expects arg[0] to be float but string is provided",
    ),
    Case(
        "shape against the signature",
        _predict(body={"instances": [[1.0, 2.0]]}),
        ("Predict", predict_request({"x": np.ones((1, 2), np.float32)})),
        400,
        INVALID,
        "incompatible shape",
    ),
    Case(
        "run-time op error keeps TensorFlow's words",
        _predict(body={"signature_name": "reshape3", "inputs": [1.0, 2.0]}),
        ("Predict", predict_request({"x": np.ones(2, np.float32)}, signature="reshape3")),
        400,
        INVALID,
        "Input to reshape is a tensor with 2 values",
    ),
    # ----- classify / regress / MultiInference
    Case(
        "classify: unknown model",
        ("POST", "/v1/models/nope:classify", CLASSIFY_BODY),
        ("Classify", classify_request(name="nope")),
        404,
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    Case(
        "classify: unknown label",
        ("POST", "/v1/models/tiny/labels/nope:classify", CLASSIFY_BODY),
        ("Classify", classify_request(label="nope")),
        400,
        INVALID,
        "Unrecognized servable version label: nope",
    ),
    Case(
        "classify: unknown signature",
        ("POST", "/v1/models/tiny:classify", {**CLASSIFY_BODY, "signature_name": "nope"}),
        ("Classify", classify_request(signature="nope")),
        400,
        INVALID,
        "No signature was found with the name: nope",
    ),
    Case(
        "classify: a predict signature",
        ("POST", "/v1/models/tiny:classify", {"examples": [{"x": 1.0}]}),
        ("Classify", classify_request(signature="")),
        400,
        INVALID,
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict",
    ),
    Case(
        "classify: no examples",
        ("POST", "/v1/models/tiny:classify", {**CLASSIFY_BODY, "examples": []}),
        ("Classify", classify_request(xs=None)),
        400,
        INVALID,
        "'examples' value is an empty array",
        grpc_message="Input is empty.",
    ),
    Case(
        "classify: example without the feature",
        ("POST", "/v1/models/tiny:classify", {**CLASSIFY_BODY, "examples": [{"y": 1.0}]}),
        ("Classify", _with_empty_example(classify_request(xs=None))),
        400,
        INVALID,
        "Feature: x (data type: float) is required but could not be found",
    ),
    Case(
        "regress: a classify signature",
        ("POST", "/v1/models/tiny:regress", {**REGRESS_BODY, "signature_name": "classify"}),
        ("Regress", regress_request(signature="classify")),
        400,
        INVALID,
        "Expected regression signature method_name to be tensorflow/serving/regress. "
        "Was: tensorflow/serving/classify",
    ),
    Case(
        "regress: unknown version",
        ("POST", "/v1/models/tiny/versions/9:regress", REGRESS_BODY),
        ("Regress", regress_request(version=9)),
        404,
        NOT_FOUND,
        "Servable not found for request: Specific(tiny, 9)",
    ),
]

GRPC_ONLY_CASES = [
    ("classify: no model spec", "Classify", classification_pb2.ClassificationRequest(), INVALID, "Missing ModelSpec"),
    ("regress: no model spec", "Regress", regression_pb2.RegressionRequest(), INVALID, "Missing ModelSpec"),
    (
        "multi: signatures reading different inputs",
        "MultiInference",
        multi_request([("classify", CLASSIFY_METHOD), ("regress", REGRESS_METHOD)]),
        INVALID,
        "Input tensor must be the same for all Signatures.",
    ),
    (
        "multi: a signature twice",
        "MultiInference",
        multi_request([("regress", REGRESS_METHOD), ("regress", REGRESS_METHOD)]),
        INVALID,
        "Duplicate evaluation of signature: regress",
    ),
    (
        "multi: unknown signature",
        "MultiInference",
        multi_request([("nope", REGRESS_METHOD)]),
        INVALID,
        "Requested signature not found in model graph: nope",
    ),
    (
        "multi: predict method",
        "MultiInference",
        multi_request([("serving_default", "tensorflow/serving/predict")]),
        UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict",
    ),
    (
        "multi: two models",
        "MultiInference",
        multi_request([("regress", REGRESS_METHOD), ("classify", CLASSIFY_METHOD, "newest")]),
        INVALID,
        "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
    ),
    ("multi: no tasks", "MultiInference", multi_request([]), INVALID, "at least one task"),
    (
        "multi: no examples",
        "MultiInference",
        multi_request([("regress", REGRESS_METHOD)], xs=None),
        INVALID,
        "Input is empty.",
    ),
]


def _ids(cases):
    return [case.name for case in cases]


@pytest.mark.parametrize("case", [c for c in ERROR_CASES if c.rest], ids=_ids([c for c in ERROR_CASES if c.rest]))
def test_error_over_rest(rest_url, case):
    status, doc, _ = rest_call(rest_url, *case.rest)
    assert status == case.http, doc
    assert set(doc) == {"error"} and case.message in doc["error"]


@pytest.mark.parametrize("case", [c for c in ERROR_CASES if c.grpc], ids=_ids([c for c in ERROR_CASES if c.grpc]))
def test_error_over_grpc(grpc_stubs, case):
    code, details, _ = grpc_call(grpc_stubs, *case.grpc)
    assert code == case.code, details
    assert (case.grpc_message or case.message) in details


@pytest.mark.parametrize(
    "rpc, request_, code, message", [c[1:] for c in GRPC_ONLY_CASES], ids=[c[0] for c in GRPC_ONLY_CASES]
)
def test_grpc_only_errors(grpc_stubs, rpc, request_, code, message):
    got, details, _ = grpc_call(grpc_stubs, rpc, request_)
    assert got == code and message in details, details


# -------------------------------------------------------- the answers


def _floats(tensor):
    assert not tensor.tensor_content  # typed *_val fields, as TF Serving's AsProtoField writes
    return tf.make_ndarray(tensor).tolist()


@pytest.mark.parametrize(
    "path, model_spec, version, expected",
    [
        ("/v1/models/tiny", {}, 2, [[3.0], [5.0]]),  # latest = 2: y = 2x + 1
        ("/v1/models/tiny/versions/1", {"version": 1}, 1, [[2.5], [3.0]]),  # y = 0.5x + 2
        ("/v1/models/tiny/labels/stable", {"label": "stable"}, 1, [[2.5], [3.0]]),
        ("/v1/models/tiny/labels/canary", {"label": "canary"}, 2, [[3.0], [5.0]]),
        ("/v1/models/newest", {"name": "newest"}, 2, [[3.0], [5.0]]),  # policy latest {1}
        ("/V1/Models/tiny/Versions/1", {"version": 1}, 1, [[2.5], [3.0]]),  # REST prefix is case-insensitive
    ],
)
def test_predict_routing(rest_url, grpc_stubs, path, model_spec, version, expected):
    status, doc, _ = rest_call(rest_url, "POST", path + ":predict", {"instances": X.tolist()})
    assert (status, doc) == (200, {"predictions": expected})
    code, details, response = grpc_call(grpc_stubs, "Predict", predict_request({"x": X}, **model_spec))
    assert code == grpc.StatusCode.OK, details
    assert response.model_spec.name == model_spec.get("name", "tiny") and response.model_spec.version.value == version
    assert response.model_spec.signature_name == "serving_default"  # filled in when left empty
    assert response.outputs["y"].dtype == types_pb2.DT_FLOAT and _floats(response.outputs["y"]) == expected


def test_non_finite_floats(rest_url, grpc_stubs):
    body = '{"instances": [[NaN], [Infinity], [-Infinity]]}'
    status, _, text = rest_call(rest_url, "POST", "/v1/models/tiny:predict", body)
    assert (status, text) == (200, '{"predictions":[[NaN],[Infinity],[-Infinity]]}')
    x = np.array([[np.nan], [np.inf], [-np.inf]], np.float32)
    _, _, response = grpc_call(grpc_stubs, "Predict", predict_request({"x": x}))
    y = _floats(response.outputs["y"])
    assert math.isnan(y[0][0]) and y[1:] == [[math.inf], [-math.inf]]


def test_strings_and_b64(rest_url, grpc_stubs):
    body = {"signature_name": "multi", "instances": [{"a": 0.5, "n": 2, "s": {"b64": "aGk="}}]}
    status, doc, _ = rest_call(rest_url, "POST", "/v1/models/tiny:predict", body)
    assert status == 200
    assert doc["predictions"][0]["upper"] == "HI" and doc["predictions"][0]["echo_bytes"] == {"b64": "aGk="}
    inputs = {**MULTI_COLUMNS, "s": np.array([b"hi"], object)}
    _, _, response = grpc_call(grpc_stubs, "Predict", predict_request(inputs, signature="multi"))
    assert list(response.outputs["upper"].string_val) == [b"HI"]


@pytest.mark.parametrize(
    "prefix, model_spec, a, b",
    [("/v1/models/tiny", {}, 2.0, 1.0), ("/v1/models/tiny/labels/stable", {"label": "stable"}, 0.5, 2.0)],
)
def test_classify(rest_url, grpc_stubs, prefix, model_spec, a, b):
    xs = [1.0, 0.1]
    ys = [np.float32(a) * np.float32(x) + np.float32(b) for x in xs]
    body = {**CLASSIFY_BODY, "examples": [{"x": x} for x in xs]}
    status, doc, _ = rest_call(rest_url, "POST", prefix + ":classify", body)
    assert status == 200
    # Scores are float32 written in their own precision: read back as float32 they are exact.
    got = [[(label, np.float32(score)) for label, score in item] for item in doc["results"]]
    assert got == [[("low", y), ("high", np.float32(1) - y)] for y in ys]
    assert doc["results"][1][0][1] == (1.2 if a == 2.0 else 2.05)  # shortest text, not 1.2000000476837158
    _, details, response = grpc_call(grpc_stubs, "Classify", classify_request(xs, **model_spec))
    assert response is not None, details
    got = [[(c.label, c.score) for c in item.classes] for item in response.result.classifications]
    assert got == [[("low", y), ("high", np.float32(1) - y)] for y in ys]
    assert response.model_spec.signature_name == "classify"


def test_regress_with_context(rest_url, grpc_stubs):
    # The context's features join every example; the example's own x wins over the context's.
    body = {"signature_name": "regress", "context": {"x": 5.0}, "examples": [{}, {"x": 2.0}]}
    status, doc, text = rest_call(rest_url, "POST", "/v1/models/tiny/versions/1:regress", body)
    assert (status, doc, text) == (200, {"results": [4.5, 3.0]}, '{"results":[4.5,3.0]}')
    request = regress_request(xs=[2.0], context={"x": 5.0}, version=1)
    request.input.example_list_with_context.examples.add()  # an example with no features: the context's x
    _, details, response = grpc_call(grpc_stubs, "Regress", request)
    assert [r.value for r in response.result.regressions] == [3.0, 4.5], details
    assert (response.model_spec.version.value, response.model_spec.signature_name) == (1, "regress")


def test_multi_inference(grpc_stubs):
    request = multi_request([("regress", REGRESS_METHOD)], xs=[1.0, 2.0])
    _, details, response = grpc_call(grpc_stubs, "MultiInference", request)
    (result,) = response.results
    assert [r.value for r in result.regression_result.regressions] == [3.0, 5.0], details
    assert (result.model_spec.name, result.model_spec.version.value) == ("tiny", 2)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"signature_name": "classify"}, "When method is classify, key 'examples' is expected and was not found"),
        ({"signature_name": "classify", "examples": {}}, "Expecting 'examples' value to be an list/array"),
        ({"signature_name": "classify", "examples": [1]}, "Example must be JSON object but got JSON Number"),
        (
            {"signature_name": "classify", "examples": [{"x": [1.0, "a"]}]},
            "Unexpected element type in feature: x expecting type: float",
        ),
        (
            {"signature_name": "classify", "examples": [{"x": None}]},
            "Feature: x has element with unexpected JSON type: Null",
        ),
        (
            {"signature_name": "classify", "examples": [{"x": [[1.0]]}]},
            "Feature: x has element with unexpected JSON type: Array",
        ),
        (
            {"signature_name": "classify", "examples": [{"x": 2**63}]},
            "Feature: x has uint64 element. Only int64 is supported.",
        ),
        ({"signature_name": "classify", "examples": [{"x": 1e300}]}, "without loss of precision"),
        ({"signature_name": "classify", "examples": [{"x": {"b64": "!!"}}]}, "Unable to base64 decode"),
        ({"signature_name": 3, "examples": [{"x": 1.0}]}, "'signature_name' key must be a string value."),
        ("", "JSON Parse error: The document is empty"),
    ],
)
def test_classify_json_errors(rest_url, body, message):
    # Parsed before the model is resolved, as in TF Serving: an unknown model still gets the 400.
    for path in ("/v1/models/tiny:classify", "/v1/models/nope:regress"):
        status, doc, _ = rest_call(rest_url, "POST", path, body)
        assert status == 400 and message in doc["error"], doc
