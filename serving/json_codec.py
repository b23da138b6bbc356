"""REST JSON <-> NumPy, with TF Serving's rules and error texts (util/json_tensor.cc).

Request side: `parse_body` (the document must be a JSON object), then
`signature_name_of`, then, once the signature is known, `decode_inputs` turns
the row (`"instances"`) or columnar (`"inputs"`) form into one array per input,
typed by the signature. Every malformed request is a `ServingError`
(INVALID_ARGUMENT, or UNIMPLEMENTED for an input dtype JSON cannot carry),
never an uncaught exception. Regular, well-typed tensors take a vectorised
path; anything else is walked element by element, which finds the first fault
in TF Serving's order and words it as TF Serving does.

Classify and regress requests (`{"signature_name", "context", "examples"}`)
become serialized tf.Examples through `decode_examples`, with TF Serving's
feature rules: strings and `{"b64"}` are bytes, JSON integers and booleans
int64, other numbers float, one kind per feature; `encode_classify` and
`encode_regress` write the `{"results": ...}` answers.

Response side: `encode_outputs` writes `{"predictions": ...}` or
`{"outputs": ...}` by hand, because floats are written as TF Serving writes
them: printf `%g` when that round-trips in the tensor's own precision, else
`%.9g` (float32) / `%.17g` (float64); `.0` appended to whole numbers; bare
`NaN`, `Infinity`, `-Infinity`. So float32 0.2 reads back as 0.2, not
0.20000000298023224.
"""

import base64
import binascii
import functools
import itertools
import json
import math

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2

from serving.errors import Code, ServingError, invalid_argument
from serving.servable import dtype_name, numpy_dtype

__all__ = [
    "ROW",
    "COLUMNAR",
    "parse_body",
    "signature_name_of",
    "decode_inputs",
    "encode_outputs",
    "decode_examples",
    "encode_classify",
    "encode_regress",
    "format_float",
    "json_value_to_string",
]

ROW, COLUMNAR = "row", "columnar"

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT64_MAX = float(np.finfo(np.float64).max)
_INT64_MIN, _UINT64_END = -(2**63), 2**64


def _bounded_nesting(function):
    """Turns Python's recursion limit, hit by absurdly nested JSON, into a 400."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except RecursionError:
            raise invalid_argument("JSON Parse error: the document is nested too deeply") from None

    return wrapper


# ------------------------------------------------------------------ floats


def format_float(value, precision=np.float32):
    """One float as TF Serving's `WriteDecimal` writes it.

    Args:
        value: the number.
        precision: `np.float32` or `np.float64`, the tensor's own precision
            (round-tripping is checked in it).
    """
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "-Infinity" if v < 0 else "Infinity"
    text = "%g" % v
    if precision(text) != precision(v):
        text = ("%.9g" if precision is np.float32 else "%.17g") % v
    if "." not in text and "e" not in text:
        text += ".0"
    return text


# ------------------------------------------------- JSON values in messages


def _json_type(val):
    if val is None:
        return "Null"
    if val is True:
        return "True"
    if val is False:
        return "False"
    if isinstance(val, dict):
        return "Object"
    if isinstance(val, list):
        return "Array"
    if isinstance(val, str):
        return "String"
    return "Number"


def _pretty(val, depth):
    """rapidjson's PrettyWriter layout (4-space indent), for error messages."""
    if isinstance(val, (dict, list)):
        if not val:
            return "{}" if isinstance(val, dict) else "[]"
        pad, inner = "    " * depth, "    " * (depth + 1)
        if isinstance(val, dict):
            items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, depth + 1)}" for k, v in val.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        return "[\n" + ",\n".join(inner + _pretty(v, depth + 1) for v in val) + "\n" + pad + "]"
    if val is None or isinstance(val, bool):
        return json.dumps(val)
    if isinstance(val, str):
        return json.dumps(val, ensure_ascii=False)
    if isinstance(val, float):
        return format_float(val, np.float64) if not math.isfinite(val) else repr(val)
    return str(val)


def json_value_to_string(val):
    """A JSON value as TF Serving prints it in error messages."""
    if isinstance(val, float) and not isinstance(val, bool):
        # rapidjson's IsFloat(): a double within float range prints as a float.
        in_float_range = math.isfinite(val) and abs(val) <= _FLOAT32_MAX
        return format_float(val, np.float32 if in_float_range else np.float64)
    return _pretty(val, 0)


def _type_error(val, dtype_enum):
    return invalid_argument(
        f"JSON Value: {json_value_to_string(val)} Type: {_json_type(val)} "
        f"is not of expected type: {dtype_name(dtype_enum)}"
    )


def _format_error(doc, message):
    return invalid_argument(f"JSON Value: {json_value_to_string(doc)} {message}")


# --------------------------------------------------------- request parsing

_RAPIDJSON_MESSAGES = (  # Python's json wording -> rapidjson's, for the same fault
    ("Extra data", "The document root must not be followed by other values."),
    ("Expecting property name", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid \\uXXXX escape", "Incorrect hex digit after \\u escape in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid control character", "Invalid encoding in string."),
)


def _rapidjson_message(error):
    for python_words, rapidjson_words in _RAPIDJSON_MESSAGES:
        if error.msg.startswith(python_words):
            return rapidjson_words
    if error.msg.startswith("Expecting ',' delimiter"):
        before = error.doc[: error.pos]
        if before.rfind("[") > before.rfind("{"):
            return "Missing a comma or ']' after an array element."
        return "Missing a comma or '}' after an object member."
    return "Invalid value."


def _first_key_wins(pairs):
    # rapidjson's FindMember returns the first of duplicate keys; Python keeps the last.
    doc = {}
    for key, value in pairs:
        doc.setdefault(key, value)
    return doc


@_bounded_nesting
def parse_body(body):
    """The request body (bytes) as a JSON object (dict).

    Raises:
        ServingError: INVALID_ARGUMENT `JSON Parse error: ...` for an empty or
            malformed body, `... Is not object` for a non-object document.
    """
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else str(body)
    except UnicodeDecodeError as error:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: {error.start}") from error
    if not text.strip(" \t\n\r"):
        raise invalid_argument(f"JSON Parse error: The document is empty. at offset: {len(text)}")
    try:
        doc = json.loads(text, object_pairs_hook=_first_key_wins)
    except json.JSONDecodeError as error:
        raise invalid_argument(f"JSON Parse error: {_rapidjson_message(error)} at offset: {error.pos}") from error
    except ValueError as error:  # integers past Python's digit limit
        raise invalid_argument(f"JSON Parse error: {error}") from error
    if not isinstance(doc, dict):
        raise _format_error(doc, "Is not object")
    return doc


def signature_name_of(doc):
    """The optional `signature_name` (empty = serving_default).

    Raises:
        ServingError: INVALID_ARGUMENT when it is not a string.
    """
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise _format_error(doc, "not formatted correctly. 'signature_name' key must be a string value.")
    return name


# ------------------------------------------------------------ JSON values


def _lossy(val, target):
    return invalid_argument(
        f"Cannot convert JSON value: {json_value_to_string(val)} to {target} without loss of precision."
    )


def _float_converter(dtype_enum, digits, max_value, target):
    max_int = 2**digits - 1  # the largest integer the float type holds with every lower one

    def convert(val):
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise _type_error(val, dtype_enum)
        if isinstance(val, int):
            if _INT64_MIN <= val < _UINT64_END:  # rapidjson keeps it an integer
                if abs(val) > max_int:
                    raise _lossy(val, target)
                return val
            try:
                val = float(val)  # past 64 bits rapidjson reads a double
            except OverflowError:
                raise _lossy(val, target) from None
        if math.isfinite(val) and abs(val) > max_value:
            raise _lossy(val, target)
        return val

    return convert


def _int_converter(dtype_enum, low, high):
    def convert(val):
        if type(val) is not int or not low <= val < high:
            raise _type_error(val, dtype_enum)
        return val

    return convert


def _bool_converter(val):
    if not isinstance(val, bool):
        raise _type_error(val, types_pb2.DT_BOOL)
    return val


def _string_converter(val):
    if not isinstance(val, str):
        raise _type_error(val, types_pb2.DT_STRING)
    return val.encode("utf-8", "surrogatepass")


_CONVERTERS = {
    types_pb2.DT_FLOAT: _float_converter(types_pb2.DT_FLOAT, 24, _FLOAT32_MAX, "float"),
    types_pb2.DT_DOUBLE: _float_converter(types_pb2.DT_DOUBLE, 53, _FLOAT64_MAX, "double"),
    types_pb2.DT_INT32: _int_converter(types_pb2.DT_INT32, -(2**31), 2**31),
    types_pb2.DT_INT16: _int_converter(types_pb2.DT_INT16, -(2**31), 2**31),
    types_pb2.DT_INT8: _int_converter(types_pb2.DT_INT8, -(2**31), 2**31),
    types_pb2.DT_UINT8: _int_converter(types_pb2.DT_UINT8, -(2**31), 2**31),
    types_pb2.DT_INT64: _int_converter(types_pb2.DT_INT64, _INT64_MIN, 2**63),
    types_pb2.DT_UINT32: _int_converter(types_pb2.DT_UINT32, 0, 2**32),
    types_pb2.DT_UINT64: _int_converter(types_pb2.DT_UINT64, 0, _UINT64_END),
    types_pb2.DT_BOOL: _bool_converter,
    types_pb2.DT_STRING: _string_converter,
}


def _unsupported_converter(dtype_enum):
    def convert(val):
        raise ServingError(
            Code.UNIMPLEMENTED,
            f"Conversion of JSON Value: {json_value_to_string(val)} to type: {dtype_name(dtype_enum)}",
        )

    return convert


def _is_b64_object(val):
    return isinstance(val, dict) and len(val) == 1 and isinstance(val.get("b64"), str)


def _decode_b64(val):
    if not _is_b64_object(val):
        raise invalid_argument(f"JSON Value: {json_value_to_string(val)} not formatted correctly for base64 data")
    text = val["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


# ---------------------------------------------------------------- tensors


def _dense_shape(val):
    """The shape a JSON value implies, following first elements (GetDenseTensorShape)."""
    shape = []
    while isinstance(val, list):
        shape.append(len(val))
        if not val:
            break
        val = val[0]
    return shape


def _fill(val, level, shape, dtype_enum, convert, leaves):
    """Appends the leaves of `val` to `leaves`, checking it is dense of `shape`."""
    rank = len(shape)
    if not isinstance(val, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {json_value_to_string(val)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        if isinstance(val, dict):
            if dtype_enum != types_pb2.DT_STRING:
                raise _type_error(val, dtype_enum)
            leaves.append(_decode_b64(val))
        else:
            leaves.append(convert(val))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(val) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(val)} at level: {level} expected size: {shape[level]}"
        )
    if level == rank - 1:  # innermost level: the hot loop stays flat
        for item in val:
            if isinstance(item, (list, dict)):
                _fill(item, level + 1, shape, dtype_enum, convert, leaves)
            else:
                leaves.append(convert(item))
        return
    for item in val:
        _fill(item, level + 1, shape, dtype_enum, convert, leaves)


def _to_array(leaves, shape, dtype_enum):
    dtype = numpy_dtype(dtype_enum)
    if dtype.kind == "O":
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
    elif dtype.kind in "iu" and dtype.itemsize < 4:
        array = np.array(leaves, dtype=np.int64).astype(dtype)  # TF narrows int_val the C way
    else:
        array = np.array(leaves, dtype=dtype)
    return array.reshape(shape)


_FAST_FLOATS = {  # dtype -> (NumPy type, largest exact integer, largest finite value)
    types_pb2.DT_FLOAT: (np.float32, 2**24 - 1, _FLOAT32_MAX),
    types_pb2.DT_DOUBLE: (np.float64, 2**53 - 1, _FLOAT64_MAX),
}
_FAST_INTS = {  # dtype -> (NumPy type, JSON range accepted); narrower types wrap like TF's int_val
    types_pb2.DT_INT32: (np.int32, -(2**31), 2**31),
    types_pb2.DT_INT16: (np.int16, -(2**31), 2**31),
    types_pb2.DT_INT8: (np.int8, -(2**31), 2**31),
    types_pb2.DT_UINT8: (np.uint8, -(2**31), 2**31),
    types_pb2.DT_INT64: (np.int64, _INT64_MIN, 2**63),
    types_pb2.DT_UINT32: (np.uint32, 0, 2**32),
    types_pb2.DT_UINT64: (np.uint64, 0, _UINT64_END),
}


def _fast_leaves(val, shape):
    """The leaves of `val` if it is a dense nested list of `shape` with scalar leaves, else None."""
    nodes = [val]
    for size in shape:
        if not all(type(node) is list and len(node) == size for node in nodes):
            return None
        nodes = list(itertools.chain.from_iterable(nodes))
    return nodes


def _fast_numbers(leaves, leaf_types, dtype_enum):
    if dtype_enum in _FAST_FLOATS:
        np_type, max_int, max_value = _FAST_FLOATS[dtype_enum]
        if not leaf_types <= {float, int}:
            return None
        if int in leaf_types and any(abs(v) > max_int for v in leaves if type(v) is int):
            return None
        values = np.array(leaves, dtype=np.float64)
        finite = values[np.isfinite(values)]
        return None if finite.size and np.abs(finite).max() > max_value else values.astype(np_type)
    np_type, low, high = _FAST_INTS[dtype_enum]
    if not leaf_types <= {int} or (leaves and not low <= min(leaves) <= max(leaves) < high):
        return None
    return np.array(leaves, dtype=np.uint64 if low == 0 else np.int64).astype(np_type)


def _fast_array(val, dtype_enum):
    """`val` as a tensor in one vectorised pass when it is regular and well typed, else None.

    None sends the value down the element-by-element path (`_fill`), which
    finds the first fault in TF Serving's order and words it as TF Serving does.
    """
    shape = _dense_shape(val)
    leaves = _fast_leaves(val, shape)
    if leaves is None:
        return None
    leaf_types = set(map(type, leaves))
    if dtype_enum in _FAST_FLOATS or dtype_enum in _FAST_INTS:
        array = _fast_numbers(leaves, leaf_types, dtype_enum)
    elif dtype_enum == types_pb2.DT_BOOL and leaf_types <= {bool}:
        array = np.array(leaves, dtype=bool)
    elif dtype_enum == types_pb2.DT_STRING and leaf_types <= {str}:
        array = np.empty(len(leaves), dtype=object)
        array[:] = [v.encode("utf-8", "surrogatepass") for v in leaves]
    else:
        return None
    return None if array is None else array.reshape(shape)


def _tensor_array(val, dtype_enum):
    """One JSON value read as a dense tensor of `dtype_enum`."""
    array = _fast_array(val, dtype_enum)
    if array is None:
        leaves, shape = _tensor_leaves(val, dtype_enum)
        array = _to_array(leaves, shape, dtype_enum)
    return array


def _tensor_leaves(val, dtype_enum):
    """(leaves, shape) of one JSON value read as a dense tensor."""
    convert = _CONVERTERS.get(dtype_enum) or _unsupported_converter(dtype_enum)
    shape = _dense_shape(val)
    leaves = []
    _fill(val, 0, shape, dtype_enum, convert, leaves)
    return leaves, shape


def _decode_columnar(val, infos):
    names = sorted(infos)
    if not isinstance(val, dict) or _is_b64_object(val):
        if len(names) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        values = {names[0]: val}
    else:
        values = {}
        for name in names:
            if name not in val:
                raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
            values[name] = val[name]
    return {name: _tensor_array(value, infos[name].dtype) for name, value in values.items()}


class _RowBatch:
    """Accumulates the `instances` of one input, checking they all share a shape."""

    def __init__(self, dtype_enum):
        self.dtype_enum = dtype_enum
        self.leaves = []
        self.shape = None

    def add(self, item):
        leaves, shape = _tensor_leaves(item, self.dtype_enum)
        if self.shape is None:
            self.shape = shape
        elif len(leaves) != _size(self.shape):
            raise invalid_argument(f"Expecting tensor size: {_size(self.shape)} but got: {len(leaves)}")
        elif shape != self.shape:
            raise invalid_argument(f"Expecting shape {_shape_text(self.shape)} but got: {_shape_text(shape)}")
        self.leaves.extend(leaves)


def _size(shape):
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _shape_text(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _error_text(error):
    return f"{error.code.name}: {error.message}"


def _add_object_element(index, elem, infos, batches):
    for key, value in elem.items():
        try:
            if key not in infos:
                raise invalid_argument(f"JSON object: does not have named input: {key}")
            batches.setdefault(key, _RowBatch(infos[key].dtype)).add(value)
        except ServingError as error:
            raise invalid_argument(
                f"Failed to process element: {index} key: {key} of 'instances' list. Error: {_error_text(error)}"
            ) from None
    if set(elem) != set(infos):
        raise invalid_argument(
            f"Failed to process element: {index} of 'instances' list. JSON object: "
            f"{json_value_to_string(elem)} keys must be equal to: {','.join(sorted(infos))}"
        )


def _decode_row(instances, infos):
    names = sorted(infos)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    objects = isinstance(instances[0], dict) and not _is_b64_object(instances[0])
    if not objects:
        # A regular list of same-shaped plain values is exactly the batch tensor.
        array = _fast_array(instances, infos[names[0]].dtype)
        if array is not None:
            return {names[0]: array}
    batches = {}
    for index, elem in enumerate(instances):
        is_object = isinstance(elem, dict) and not _is_b64_object(elem)
        if objects:
            if not is_object:
                raise invalid_argument(f"Expecting object but got list at item {index} of input list")
            _add_object_element(index, elem, infos, batches)
            continue
        if is_object:
            raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
        try:
            batches.setdefault(names[0], _RowBatch(infos[names[0]].dtype)).add(elem)
        except ServingError as error:
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. Error: {_error_text(error)}"
            ) from None
    return {
        name: _to_array(batch.leaves, [len(instances)] + batch.shape, batch.dtype_enum)
        for name, batch in batches.items()
    }


@_bounded_nesting
def decode_inputs(doc, infos, signature_name=""):
    """The input tensors of a predict request.

    Args:
        doc: the parsed request object.
        infos: input alias -> `TensorInfo` of the signature (dtype used).
        signature_name: for the error on a signature without inputs.

    Returns:
        (alias -> NumPy array, `ROW` or `COLUMNAR`).

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's text for every
            malformed request; UNIMPLEMENTED for an input dtype JSON cannot carry.
    """
    if not infos:
        raise invalid_argument(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    if "instances" in doc:
        if "inputs" in doc:
            raise _format_error(
                doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
            )
        instances = doc["instances"]
        if not isinstance(instances, list):
            # "Excepting" is TF Serving's own spelling (json_tensor.cc).
            raise _format_error(doc, "Excepting 'instances' to be an list/array")
        if not instances:
            raise _format_error(doc, "No values in 'instances' array")
        return _decode_row(instances, infos), ROW
    if "inputs" in doc:
        return _decode_columnar(doc["inputs"], infos), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ----------------------------------------------- classify / regress input

_FEATURE_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "UNKNOWN"}
_UINT64_START = 2**63


def _unexpected_feature_type(name, val):
    return invalid_argument(f"Feature: {name} has element with unexpected JSON type: {_json_type(val)}")


def _feature_kind_and_value(val, name):
    """(Feature list field, value) for one JSON value of a feature (AddValueToFeature)."""
    if val is None or isinstance(val, list) or (isinstance(val, dict) and not _is_b64_object(val)):
        raise _unexpected_feature_type(name, val)
    if isinstance(val, bool):
        return "int64_list", int(val)
    if isinstance(val, dict):
        return "bytes_list", _decode_b64(val)
    if isinstance(val, str):
        return "bytes_list", val.encode("utf-8", "surrogatepass")
    if isinstance(val, int) and val < _UINT64_END:  # past 64 bits rapidjson reads a double
        if val >= _UINT64_START:
            raise invalid_argument(f"Feature: {name} has uint64 element. Only int64 is supported.")
        if val >= _INT64_MIN:
            return "int64_list", val
    try:
        number = float(val)
    except OverflowError:
        raise _lossy(val, "float") from None
    if math.isfinite(number) and abs(number) > _FLOAT32_MAX:
        raise _lossy(val, "float")
    return "float_list", number


def _feature_of(name, content):
    feature = feature_pb2.Feature()
    for val in content if isinstance(content, list) else [content]:
        kind, value = _feature_kind_and_value(val, name)
        current = feature.WhichOneof("kind")
        if current not in (None, kind):
            raise invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: {_FEATURE_KIND_NAMES[current]}"
            )
        getattr(feature, kind).value.append(value)
    return feature


def _example_of(val):
    if not isinstance(val, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {_json_type(val)}")
    example = example_pb2.Example()
    for name, content in val.items():
        example.features.feature[name].CopyFrom(_feature_of(name, content))
    return example


@_bounded_nesting
def decode_examples(doc):
    """The serialized tf.Examples of a classify/regress request (context merged into each).

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's text for a missing,
            non-list or empty `examples`, a non-object example or a feature
            value of the wrong JSON type or of mixed kinds.
    """
    context = _example_of(doc["context"]).SerializeToString() if "context" in doc else b""
    if "examples" not in doc:
        raise _format_error(doc, "When method is classify, key 'examples' is expected and was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise _format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(doc, "'examples' value is an empty array")
    return [context + _example_of(example).SerializeToString() for example in examples]


def encode_classify(labels, scores):
    """`{"results": [[[label, score], ...] per example]}`; label "" / score 0.0 where the signature lacks one.

    Args:
        labels: (B, C) bytes labels or None; scores: (B, C) float32 scores or None.
    """
    shape = (labels if labels is not None else scores).shape
    label_texts = (
        [_string_token(v, False) for v in labels.reshape(-1).tolist()]
        if labels is not None
        else ['""'] * (shape[0] * shape[1])
    )
    score_texts = _float_tokens(scores.reshape(-1), np.float32) if scores is not None else ["0.0"] * len(label_texts)
    pairs = [f"[{label},{score}]" for label, score in zip(label_texts, score_texts, strict=True)]
    rows = ["[" + ",".join(pairs[i * shape[1] : (i + 1) * shape[1]]) + "]" for i in range(shape[0])]
    return '{"results":[' + ",".join(rows) + "]}"


def encode_regress(values):
    """`{"results": [value, ...]}` from the (B,) float32 regression values."""
    return '{"results":[' + ",".join(_float_tokens(np.asarray(values).reshape(-1), np.float32)) + "]}"


# ------------------------------------------------------- response writing


def _float_tokens(flat, precision):
    """`format_float` over a whole array: %g where it round-trips, the wide form elsewhere.

    %g keeps 6 significant digits, so it round-trips only a value within half
    an ulp (of its own precision) of its 6-digit rounding. That rounding, done
    in float64 arithmetic (off by a few float64 ulps), finds the candidates
    with a margin; only those are formatted with %g and read back, and every
    element is formatted once in its final form. About 1% of a random float32
    state vector are candidates.
    """
    exact = flat.astype(precision)
    wide64 = exact.astype(np.float64)
    finite = np.isfinite(wide64)
    magnitude = np.abs(np.where(finite & (wide64 != 0), wide64, 1.0))
    with np.errstate(all="ignore"):
        scale = 10.0 ** (5 - np.floor(np.log10(magnitude)))
        rounded = np.round(wide64 * scale) / scale
        margin = 0.5 * np.abs(np.spacing(exact)).astype(np.float64) + 16 * np.abs(np.spacing(wide64))
        candidate = ~(np.abs(rounded - wide64) > margin)  # NaN (scale out of range) stays a candidate
    values = wide64.tolist()
    wide = "%.9g" if precision is np.float32 else "%.17g"
    texts = [
        "%g" % v if near and precision("%g" % v) == precision(v) else wide % v
        for v, near in zip(values, (candidate & finite).tolist())
    ]
    for i in np.flatnonzero(~finite).tolist():
        texts[i] = format_float(values[i], precision)  # NaN, Infinity, -Infinity
    # Whole numbers get ".0"; NaN and Infinity carry "N" / "I" and stay bare.
    return [t if "." in t or "e" in t or "N" in t or "I" in t else t + ".0" for t in texts]


def _tokens(array, name):
    """Every element of `array` as JSON text, in C order."""
    flat = array.reshape(-1)
    kind = array.dtype.kind
    if kind == "f" and array.dtype.itemsize <= 4:
        return _float_tokens(flat, np.float32)
    if kind == "f" and array.dtype.itemsize == 8:
        return _float_tokens(flat, np.float64)
    if kind in "iu":
        return [str(v) for v in flat.tolist()]
    if kind == "b":
        return ["true" if v else "false" for v in flat.tolist()]
    if kind in "OSU":
        as_b64 = name.endswith("_bytes")  # CMLE's convention, kept by TF Serving
        return [_string_token(v, as_b64) for v in flat.tolist()]
    raise invalid_argument(f"Failed to write JSON value for tensor type: {_array_dtype_name(array)}")


def _array_dtype_name(array):
    try:
        import tensorflow as tf  # only for the error's wording

        return dtype_name(tf.dtypes.as_dtype(array.dtype).as_datatype_enum)
    except TypeError:
        return str(array.dtype)


def _string_token(value, as_b64):
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if as_b64:
        return '{"b64":"' + base64.b64encode(data).decode("ascii") + '"}'
    return json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)


def _nest(tokens, shape, stop=0):
    """Groups flat element texts into nested JSON lists for dims `shape[stop:]`.

    Returns one text per index of the first `stop` dims (one text if stop=0).
    """
    items = tokens
    for level in range(len(shape) - 1, stop - 1, -1):
        size, groups = shape[level], _size(shape[:level])
        items = ["[" + ",".join(items[g * size : (g + 1) * size]) + "]" for g in range(groups)]
    return items


def encode_outputs(outputs, fmt):
    """The JSON text answering a predict request.

    Args:
        outputs: output alias -> NumPy array.
        fmt: `ROW` -> `{"predictions": [...]}` (one entry per batch item; an
            object per item when there are several outputs), `COLUMNAR` ->
            `{"outputs": ...}` (an object when there are several outputs).

    Raises:
        ServingError: INVALID_ARGUMENT when row outputs disagree on the batch
            size or have no batch dimension, or a dtype JSON cannot carry.
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {name: np.asarray(outputs[name]) for name in names}
    if fmt == COLUMNAR:
        texts = {name: _nest(_tokens(a, name), list(a.shape))[0] for name, a in arrays.items()}
        if len(names) == 1:
            return '{"outputs":' + texts[names[0]] + "}"
        return '{"outputs":{' + ",".join(f"{json.dumps(n)}:{texts[n]}" for n in names) + "}}"
    batch = -1
    for name in names:
        shape = arrays[name].shape
        if not shape:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and shape[0] != batch:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}")
        batch = shape[0]
    rows = {name: _nest(_tokens(a, name), list(a.shape), stop=1) for name, a in arrays.items()}
    if len(names) == 1:
        items = rows[names[0]]
    else:
        items = ["{" + ",".join(f"{json.dumps(n)}:{rows[n][i]}" for n in names) + "}" for i in range(batch)]
    return '{"predictions":[' + ",".join(items) + "]}"
