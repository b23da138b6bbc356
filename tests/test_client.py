"""`serving.client.Client` over REST and gRPC: the same NumPy answers and the same errors."""

import socket

import numpy as np
import pytest

from serving.client import Client
from serving.errors import Code, ServingError

PROTOCOLS = ["rest", "grpc"]


@pytest.fixture(scope="module")
def clients(server):
    """{"rest": Client, "grpc": Client} on the module's server."""
    made = {"rest": Client(server.rest_target), "grpc": Client(server.grpc_target, protocol="grpc")}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(params=PROTOCOLS)
def client(request, clients):
    return clients[request.param]


@pytest.fixture(params=PROTOCOLS)
def protocol_client(request, server):
    """A fresh client of its own (its signature cache starts empty)."""
    target = server.rest_target if request.param == "rest" else server.grpc_target
    with Client(target, protocol=request.param) as made:
        yield made


def assert_same_outputs(left, right):
    assert sorted(left) == sorted(right)
    for name in left:
        a, b = np.asarray(left[name]), np.asarray(right[name])
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b)  # NaN equals NaN here
        else:
            assert a.tolist() == b.tolist(), name


CALLS = [
    # (id, model, inputs, keyword arguments)
    ("default", "tiny", {"x": [[1.0], [2.0]]}, {}),
    ("version 1", "tiny", {"x": [[1.0], [2.0]]}, {"version": 1}),
    ("label", "tiny", {"x": np.array([[1.0]])}, {"label": "stable"}),
    ("non-finite", "tiny", {"x": [[float("nan")], [float("inf")], [-0.0]]}, {}),
    (
        "several inputs, strings",
        "tiny",
        {"a": [0.2, 3.0], "n": [1, -2], "s": ["héllo", b"caf\xc3\xa9\x00"]},
        {"signature_name": "multi"},
    ),
    (
        "dtypes",
        "tiny",
        {"flag": [True, False], "i64": [2**62 + 1, -1], "d": [0.1, 1 / 3], "u8": np.array([0, 255], np.uint8)},
        {"signature_name": "types"},
    ),
    ("scalar output (columnar only)", "tiny", {"x": [[1.0], [2.5]]}, {"signature_name": "scalar_out"}),
    ("another model", "newest", {"x": np.ones((3, 1), np.float32)}, {}),
]


@pytest.mark.parametrize("model, inputs, kwargs", [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_rest_and_grpc_give_identical_numpy_results(clients, model, inputs, kwargs):
    rest = clients["rest"].predict(model, inputs, **kwargs)
    grpc = clients["grpc"].predict(model, inputs, **kwargs)
    assert_same_outputs(rest, grpc)


def test_predict_values(client):
    assert client.predict("tiny", {"x": [[1.0], [2.0]]})["y"].tolist() == [[3.0], [5.0]]
    assert client.predict("tiny", {"x": [[1.0]]}, version=1)["y"].tolist() == [[2.5]]
    outputs = client.predict("tiny", {"a": [0.2], "n": [1], "s": ["hi"]}, signature_name="multi")
    assert outputs["sum"].dtype == np.float32 and outputs["sum"].tolist() == [np.float32(1.2)]
    assert outputs["upper"].tolist() == [b"HI"] and outputs["echo_bytes"].tolist() == [b"hi"]
    assert outputs["n2"].dtype == np.int32 and outputs["d"].dtype == np.float64


def test_binary_strings_survive_rest_only_in_bytes_outputs(clients):
    # TF Serving's JSON carries binary only as {"b64": ...}, which it writes for
    # outputs named *_bytes; other string outputs must be UTF-8 (ours replaces
    # what is not, where TF Serving would write invalid JSON).
    inputs = {"a": [1.0], "n": [1], "s": [b"\xff\x00"]}
    rest = clients["rest"].predict("tiny", inputs, signature_name="multi")
    grpc = clients["grpc"].predict("tiny", inputs, signature_name="multi")
    assert rest["echo_bytes"].tolist() == grpc["echo_bytes"].tolist() == [b"\xff\x00"]
    assert grpc["upper"].tolist() == [b"\xff\x00"] and rest["upper"].tolist() == ["\ufffd\x00".encode()]


def test_metadata(client):
    signatures = client.metadata("tiny")
    x = signatures["serving_default"]["inputs"]["x"]
    assert x["dtype"] == np.float32 and x["tf_dtype"] == "DT_FLOAT" and x["shape"] == [-1, 1]
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert signatures["multi"]["inputs"]["s"]["dtype"] == np.dtype(object)
    assert set(signatures["multi"]["outputs"]) == {"sum", "n2", "upper", "echo_bytes", "d"}
    assert client.metadata("tiny", label="stable").keys() == signatures.keys()


def test_pin_names_the_served_version_and_spares_its_calls_a_metadata_call(server, protocol_client):
    client = protocol_client
    asked = []
    fetch = client._transport.signature_defs
    client._transport.signature_defs = lambda *key: asked.append(key) or fetch(*key)
    version, signatures = client.pin("tiny")
    assert version == 2 and signatures == client.metadata("tiny", version=2)
    assert client.pin("tiny", label="stable")[0] == 1
    asked.clear()
    assert client.predict("tiny", {"x": [[1.0]]}, version=2)["y"].tolist() == [[3.0]]
    assert client.predict("tiny", {"x": [[1.0]]}, version=1)["y"].tolist() == [[2.5]]
    assert asked == []  # both versions' signatures came with the pins


def test_pin_falls_back_to_the_newest_available_version_when_metadata_names_none(server, protocol_client):
    fetch = protocol_client._transport.signature_defs
    protocol_client._transport.signature_defs = lambda *key: (None, fetch(*key)[1])
    assert protocol_client.pin("tiny")[0] == 2
    with pytest.raises(ServingError, match="metadata names none"):
        protocol_client.pin("tiny", label="stable")  # a label's version cannot be told from status


def test_status(client):
    assert client.status("tiny") == [
        {"version": 2, "state": "AVAILABLE", "error_code": "OK", "error_message": ""},
        {"version": 1, "state": "AVAILABLE", "error_code": "OK", "error_message": ""},
    ]
    assert [s["version"] for s in client.status("tiny", version=1)] == [1]
    (broken,) = client.status("broken")
    assert broken["state"] == "END" and broken["error_code"] != "OK" and broken["error_message"]


ERRORS = [
    # (id, call, {protocol: code}, message substring)
    (
        "unknown model",
        lambda c: c.predict("nope", {"x": [[1.0]]}),
        Code.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    ("unknown version", lambda c: c.predict("tiny", {"x": [[1.0]]}, version=9), Code.NOT_FOUND, "Specific(tiny, 9)"),
    (
        "unknown label",
        lambda c: c.predict("tiny", {"x": [[1.0]]}, label="nope"),
        Code.INVALID_ARGUMENT,
        "Unrecognized servable version label: nope",
    ),
    (
        "unknown signature",
        lambda c: c.predict("tiny", {"x": [[1.0]]}, signature_name="nope"),
        {"rest": Code.INVALID_ARGUMENT, "grpc": Code.FAILED_PRECONDITION},  # as in TF Serving
        '"nope" not found',
    ),
    (
        "float for an int input",
        lambda c: c.predict("tiny", {"a": [1.0], "n": [1.5], "s": ["x"]}, signature_name="multi"),
        Code.INVALID_ARGUMENT,
        "int32",
    ),
    (
        "run-time op error",
        lambda c: c.predict("tiny", {"x": [1.0, 2.0]}, signature_name="reshape3"),
        Code.INVALID_ARGUMENT,
        "Input to reshape",
    ),
    (
        "status of an unknown model",
        lambda c: c.status("nope"),
        Code.NOT_FOUND,
        "Could not find any versions of model nope",
    ),
    ("metadata of an unknown version", lambda c: c.metadata("tiny", version=9), Code.NOT_FOUND, "Specific(tiny, 9)"),
]


@pytest.mark.parametrize("call, code, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_carry_code_and_message(client, call, code, message):
    with pytest.raises(ServingError) as raised:
        call(client)
    expected = code[client.protocol] if isinstance(code, dict) else code
    assert raised.value.code == expected and message in raised.value.message


def test_rest_errors_keep_the_http_status(clients):
    with pytest.raises(ServingError) as raised:
        clients["rest"].predict("nope", {"x": [[1.0]]})
    assert raised.value.http_status == 404


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unreachable_server_is_unavailable(protocol):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Client(f"127.0.0.1:{port}", protocol=protocol, timeout=5) as client, pytest.raises(ServingError) as raised:
        client.status("tiny")
    assert raised.value.code == Code.UNAVAILABLE


def test_argument_errors():
    with pytest.raises(ValueError, match="`protocol` must be one of 'rest' or 'grpc'. Received: protocol='http'"):
        Client("localhost:8501", protocol="http")
    with pytest.raises(ValueError, match="Give a version or a label, not both"):
        Client("localhost:8501").predict("m", {}, version=1, label="x")


@pytest.mark.parametrize(
    "array",
    [
        np.tanh(np.random.default_rng(0).standard_normal((2, 512))).astype(np.float32),
        np.array([16777218.0, -0.0, 3.0, 1e20, 1e-38, 1.4e-45, 3.4028235e38], np.float32),
        np.random.default_rng(1).standard_normal((3, 4, 5)) * 10.0 ** np.arange(-30, 30).reshape(3, 4, 5),
        np.array(0.1, np.float32), np.zeros((2, 0, 3), np.float32), np.array([[np.nan, -np.inf, 1.0]]),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_rest_request_floats_are_short_and_read_back_exactly(array):
    import json

    from serving.client import _array_json_text

    text = _array_json_text(array)
    back = np.array(json.loads(text), dtype=array.dtype)
    np.testing.assert_array_equal(back.reshape(array.shape), array)
    assert np.array(json.loads(text)).shape == array.shape or not array.size  # JSON has no (2, 0, 3)
    if array.dtype == np.float32 and array.size > 100:
        assert len(text) < 0.7 * len(json.dumps(array.tolist()))  # 9 digits, not float64's 17
    assert "16777218," not in text  # a whole number keeps ".0": TF Serving refuses a JSON integer past 2^24
