"""`TensorProto` <-> NumPy, for the gRPC server and client.

TensorFlow's own converters (`tf.make_ndarray`, `tf.make_tensor_proto`) handle
every dtype and layout, at tens of microseconds a tensor in dtype and shape
objects; a stream piece moves ten tensors each way. The common cases (numbers
packed in `tensor_content` or listed in a typed field, strings) are done here
directly; everything else goes to TensorFlow's converters, whose rules these
follow.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

__all__ = ["NUMPY_TO_DT", "array_from_tensor_proto", "fill_packed_tensor_proto", "tensor_proto_from_array"]

NUMPY_TO_DT = {np.dtype(dtype): enum for dtype, enum in (
    (np.float32, types_pb2.DT_FLOAT), (np.float64, types_pb2.DT_DOUBLE), (np.float16, types_pb2.DT_HALF),
    (np.int8, types_pb2.DT_INT8), (np.int16, types_pb2.DT_INT16), (np.int32, types_pb2.DT_INT32),
    (np.int64, types_pb2.DT_INT64), (np.uint8, types_pb2.DT_UINT8), (np.uint16, types_pb2.DT_UINT16),
    (np.uint32, types_pb2.DT_UINT32), (np.uint64, types_pb2.DT_UINT64), (np.bool_, types_pb2.DT_BOOL),
)}
_DT_TO_NUMPY = {enum: dtype for dtype, enum in NUMPY_TO_DT.items() if enum != types_pb2.DT_HALF}

# dtype -> the typed repeated field TF's Tensor::AsProtoField fills.
_TYPED_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
}


def _fill_shape(proto, shape):
    for size in shape:
        proto.tensor_shape.dim.add().size = size


def fill_packed_tensor_proto(proto, array):
    """Writes `array` into `proto` as `tf.make_tensor_proto` would: numbers packed in `tensor_content`, strings
    (elements already bytes) in `string_val`."""
    if array.dtype.byteorder == ">":  # TensorFlow would pack its bytes unswapped, and read back other numbers
        array = array.astype(array.dtype.newbyteorder("="))
    enum = NUMPY_TO_DT.get(array.dtype)
    if enum is None and array.dtype != object:
        proto.CopyFrom(tf.make_tensor_proto(array))  # complex, bfloat16, ...: TensorFlow's own rules
        return
    _fill_shape(proto, array.shape)
    if enum is None:
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(array.reshape(-1).tolist())
    else:
        proto.dtype = enum
        proto.tensor_content = np.ascontiguousarray(array).tobytes()


def tensor_proto_from_array(array):
    """A `TensorProto` holding `array` in its typed `*_val` field (like `AsProtoField`)."""
    array = np.asarray(array)
    enum = NUMPY_TO_DT.get(array.dtype)
    if enum is None:
        enum = tf.dtypes.as_dtype(array.dtype).as_datatype_enum  # strings, complex, ...
    proto = tensor_pb2.TensorProto(dtype=enum)
    _fill_shape(proto, array.shape)
    flat = array.reshape(-1)
    if enum == types_pb2.DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat.tolist())
    elif enum in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        proto.half_val.extend(flat.view(np.uint16).tolist())  # raw 16-bit patterns, as TF stores them
    elif enum == types_pb2.DT_COMPLEX64:
        proto.scomplex_val.extend(flat.view(np.float32).tolist())
    elif enum == types_pb2.DT_COMPLEX128:
        proto.dcomplex_val.extend(flat.view(np.float64).tolist())
    elif enum in _TYPED_FIELD:
        getattr(proto, _TYPED_FIELD[enum]).extend(flat.tolist())
    else:
        return tf.make_tensor_proto(array)  # no typed field: packed tensor_content
    return proto


def array_from_tensor_proto(proto):
    """A NumPy array from a `TensorProto`, typed fields or `tensor_content` alike (`tf.make_ndarray`'s result)."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if proto.tensor_shape.unknown_rank or any(size < 0 for size in shape):
        return tf.make_ndarray(proto)  # its error for a shape no array can have
    count = int(np.prod(shape, dtype=np.int64))
    dtype = _DT_TO_NUMPY.get(proto.dtype)  # each of these has a typed field
    if dtype is not None and proto.tensor_content:
        values = np.frombuffer(proto.tensor_content, dtype.newbyteorder("<"))
        if values.size == count:
            return values.astype(dtype).reshape(shape)  # a writable copy, in native byte order
    elif dtype is not None:
        values = getattr(proto, _TYPED_FIELD[proto.dtype])
        if len(values) == count:
            return np.array(values, dtype).reshape(shape)
    elif proto.dtype == types_pb2.DT_STRING and len(proto.string_val) == count:
        return np.array(list(proto.string_val), dtype=object).reshape(shape)
    return tf.make_ndarray(proto)  # repeated last values, empty tensors, other dtypes: TensorFlow's rules
