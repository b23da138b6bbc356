"""The REST JSON codec on its own: float writing, parsing, decoding, encoding, and fuzzing.

The fuzz tests hold the codec to one promise: a malformed request is a 400
(or 501 for a dtype JSON cannot carry), never a crash and never a 500; the
live server's whole REST path is fuzzed in `test_server_fuzz.py`.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from serving import json_codec
from serving.errors import Code, ServingError


def infos(**dtypes):
    return {name: meta_graph_pb2.TensorInfo(dtype=dtype) for name, dtype in dtypes.items()}


SINGLE = infos(x=types_pb2.DT_FLOAT)
MULTI = infos(a=types_pb2.DT_FLOAT, n=types_pb2.DT_INT32, s=types_pb2.DT_STRING)
SIGNATURES = [
    SINGLE,
    MULTI,
    infos(flag=types_pb2.DT_BOOL, u8=types_pb2.DT_UINT8, i64=types_pb2.DT_INT64, d=types_pb2.DT_DOUBLE),
    infos(h=types_pb2.DT_HALF),
]


# ------------------------------------------------------------------ floats


@pytest.mark.parametrize(
    "value, precision, text",
    [
        (0.2, np.float32, "0.2"),
        (3.0, np.float32, "3.0"),
        (-0.0, np.float32, "-0.0"),
        (1e-05, np.float32, "1e-05"),
        (9e6, np.float32, "9e+06"),
        (np.float32(1) / np.float32(3), np.float32, "0.333333343"),  # %g does not round-trip: %.9g
        (16777216.0, np.float32, "16777216.0"),
        (0.1, np.float64, "0.1"),
        (1 / 3, np.float64, "0.33333333333333331"),  # %.17g
        (123456789.0, np.float64, "123456789.0"),
        (float("nan"), np.float32, "NaN"),
        (float("inf"), np.float64, "Infinity"),
        (float("-inf"), np.float32, "-Infinity"),
    ],
)
def test_format_float(value, precision, text):
    assert json_codec.format_float(precision(value), precision) == text


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_text_round_trips(value):
    assert np.float32(json_codec.format_float(np.float32(value), np.float32)) == np.float32(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float64_text_round_trips(value):
    assert float(json_codec.format_float(value, np.float64)) == value


# ----------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"  \n", "JSON Parse error: The document is empty. at offset: 3"),
        (b'{"a": "\xff"}', "JSON Parse error: Invalid encoding in string."),
        (b"{", "JSON Parse error: Missing a name for object member."),
        (b'{"a" 1}', "Missing a colon after a name of object member."),
        (b'{"a": [1 2]}', "Missing a comma or ']' after an array element."),
        (b'{"a": 1} x', "The document root must not be followed by other values."),
        (b'{"a": "x', "Missing a closing quotation mark in string."),
        (b"tru", "JSON Parse error: Invalid value."),
        (b"1", "JSON Value: 1 Is not object"),
        (b"[" * 100_000, "JSON Parse error"),
    ],
)
def test_parse_body_errors(body, message):
    with pytest.raises(ServingError) as raised:
        json_codec.parse_body(body)
    assert raised.value.code == Code.INVALID_ARGUMENT and message in raised.value.message


def test_duplicate_keys_keep_the_first_like_rapidjson():
    doc = json_codec.parse_body(b'{"signature_name": "a", "signature_name": "b"}')
    assert json_codec.signature_name_of(doc) == "a"


def test_error_messages_print_json_like_rapidjson():
    with pytest.raises(ServingError, match=r'JSON Value: \{\n    "instances": 1\n\} Excepting'):
        json_codec.decode_inputs({"instances": 1}, SINGLE)


# ---------------------------------------------------------------- decoding


def test_columnar_scalar_is_rank_0():
    inputs, fmt = json_codec.decode_inputs({"inputs": 1.5}, SINGLE)
    assert fmt == json_codec.COLUMNAR and inputs["x"].shape == () and inputs["x"].dtype == np.float32


def test_row_strings_and_base64_batch_together():
    doc = {"instances": [{"a": 1, "n": 2, "s": "hé"}, {"a": 2.5, "n": -3, "s": {"b64": "/w=="}}]}
    inputs, fmt = json_codec.decode_inputs(doc, MULTI)
    assert fmt == json_codec.ROW
    assert inputs["a"].tolist() == [1.0, 2.5] and inputs["n"].dtype == np.int32
    assert inputs["s"].dtype == object and inputs["s"].tolist() == ["hé".encode(), b"\xff"]


def test_row_single_input_with_b64_elements_is_a_plain_list():
    inputs, _ = json_codec.decode_inputs({"instances": [{"b64": "aGk="}]}, infos(s=types_pb2.DT_STRING))
    assert inputs["s"].tolist() == [b"hi"]


def test_empty_and_nested_shapes():
    inputs, _ = json_codec.decode_inputs({"inputs": [[], []]}, SINGLE)
    assert inputs["x"].shape == (2, 0)
    inputs, _ = json_codec.decode_inputs({"instances": [[[1, 2]], [[3, 4]]]}, SINGLE)
    assert inputs["x"].shape == (2, 1, 2)


# ---------------------------------------------------------------- encoding


def test_encode_columnar_and_row():
    outputs = {"y": np.array([[0.2], [3.0]], np.float32), "n": np.array([1, 2], np.int64)}
    assert json_codec.encode_outputs(outputs, json_codec.COLUMNAR) == '{"outputs":{"n":[1,2],"y":[[0.2],[3.0]]}}'
    assert json_codec.encode_outputs(outputs, json_codec.ROW) == '{"predictions":[{"n":1,"y":[0.2]},{"n":2,"y":[3.0]}]}'
    assert json_codec.encode_outputs({"y": np.float64(2.0)}, json_codec.COLUMNAR) == '{"outputs":2.0}'


def test_encode_zero_sized_and_bool_and_strings():
    outputs = {"z": np.zeros((2, 0), np.float32)}
    assert json_codec.encode_outputs(outputs, json_codec.COLUMNAR) == '{"outputs":[[],[]]}'
    assert json_codec.encode_outputs({"b": np.array([True, False])}, json_codec.ROW) == '{"predictions":[true,false]}'
    strings = {"raw_bytes": np.array([b"\xff"], object), "text": np.array(["é".encode(), b"\xff"], object)}
    doc = json.loads(json_codec.encode_outputs(strings, json_codec.COLUMNAR))
    assert doc == {"outputs": {"raw_bytes": [{"b64": "/w=="}], "text": ["é", "\ufffd"]}}


@pytest.mark.parametrize(
    "outputs, message",
    [
        ({}, "Cannot convert empty tensor map to JSON"),
        ({"c": np.array([1j], np.complex64)}, "Failed to write JSON value for tensor type: complex64"),
    ],
)
def test_encode_errors(outputs, message):
    with pytest.raises(ServingError, match=message):
        json_codec.encode_outputs(outputs, json_codec.COLUMNAR)


@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.float16]), hnp.array_shapes(min_dims=0, max_side=4)))
def test_vectorised_float_writing_matches_format_float(array):
    precision = np.float64 if array.dtype == np.float64 else np.float32
    expected = [json_codec.format_float(v, precision) for v in array.reshape(-1).tolist()]
    assert json_codec._tokens(array, "y") == expected


def _hard_floats(precision):
    """Values where %g's round trip is decided by a hair: 6-digit decimals, their neighbours, extremes."""
    rng = np.random.default_rng(7)
    decimals = np.array([float(f"{x:.6g}") for x in rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000)])
    on = decimals.astype(precision)
    extremes = [0.0, -0.0, 1e-45, 3.4e38, 123456.5, 1234567.0, 2.5e-7, 1e-310, 1.7e308, 5e-324]
    with np.errstate(over="ignore"):
        return np.concatenate([on, np.nextafter(on, precision(np.inf)), np.array(extremes).astype(precision)])


@pytest.mark.parametrize("precision", [np.float32, np.float64])
def test_float_writing_matches_format_float_where_round_trips_are_close(precision):
    values = _hard_floats(precision)
    expected = [json_codec.format_float(v, precision) for v in values.tolist()]
    assert json_codec._float_tokens(values, precision) == expected


@given(
    st.sampled_from(
        [types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_UINT8, types_pb2.DT_BOOL]
    ),
    hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_side=3), elements=st.integers(-300, 300)),
    st.booleans(),
)
def test_fast_and_exact_decoding_agree(dtype_enum, ints, as_floats):
    value = (ints > 0).tolist() if dtype_enum == types_pb2.DT_BOOL else (ints / 4 if as_floats else ints).tolist()
    try:
        leaves, shape = json_codec._tensor_leaves(value, dtype_enum)
    except ServingError:
        assert json_codec._fast_array(value, dtype_enum) is None  # what the exact path rejects, so does the fast one
        return
    exact = json_codec._to_array(leaves, shape, dtype_enum)
    fast = json_codec._fast_array(value, dtype_enum)
    assert fast is not None and fast.dtype == exact.dtype and fast.shape == exact.shape
    assert fast.tolist() == exact.tolist()


# ------------------------------------------------------------------- fuzz

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.fixed_dictionaries({"b64": st.text(max_size=8)}),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["x", "a", "n", "s", "b64", "h"]), children, max_size=3),
    ),
    max_leaves=12,
)
request_docs = st.fixed_dictionaries(
    {},
    optional={
        "instances": json_values,
        "inputs": json_values,
        "signature_name": st.one_of(st.just(""), st.just("multi"), json_leaves),
    },
)
bodies = st.one_of(
    request_docs.map(lambda doc: json.dumps(doc).encode()),
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
)


def _decode_and_encode(body, signature):
    try:
        doc = json_codec.parse_body(body)
        json_codec.signature_name_of(doc)
        inputs, fmt = json_codec.decode_inputs(doc, signature)
        for name, array in inputs.items():
            assert array.dtype == (object if signature[name].dtype == types_pb2.DT_STRING else array.dtype)
        json_codec.encode_outputs(inputs, fmt)
    except ServingError as error:
        assert error.code in (Code.INVALID_ARGUMENT, Code.UNIMPLEMENTED), error


@settings(max_examples=200, deadline=None)
@given(body=bodies, signature=st.sampled_from(SIGNATURES))
def test_fuzz_codec_only_raises_serving_errors(body, signature):
    _decode_and_encode(body, signature)
