"""TensorProto <-> NumPy without TensorFlow's converters, checked against them."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.tensor_protos import array_from_tensor_proto, fill_packed_tensor_proto, tensor_proto_from_array

ARRAYS = [
    np.array([[0.5, -1.0], [np.nan, np.inf]], np.float32), np.arange(6, dtype=">i4").reshape(2, 3)[:, ::2],
    np.array(2**62 + 1, np.int64), np.array([True, False]), np.array([0, 255], np.uint8),
    np.array([1 / 3], np.float64), np.zeros((0, 3), np.float16), np.array([b"a\x00", "é".encode()], object),
    np.array([1 + 2j], np.complex64), np.array([[-7, 3]], np.int8), np.array([2**64 - 1], np.uint64),
]
IDS = [f"{a.dtype}{list(a.shape)}" for a in ARRAYS]


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype == object:
        assert a.tolist() == b.tolist()
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("array", ARRAYS, ids=IDS)
def test_a_packed_request_tensor_is_what_tensorflow_writes(array):
    proto = tensor_pb2.TensorProto()
    fill_packed_tensor_proto(proto, array)
    expected = tf.make_tensor_proto(array)
    assert (proto.dtype, proto.tensor_shape) == (expected.dtype, expected.tensor_shape)
    # The numbers themselves, also of a big-endian array (which TensorFlow packs unswapped).
    _same(tf.make_ndarray(proto), np.asarray(array, array.dtype.newbyteorder("=")))


@pytest.mark.parametrize("array", ARRAYS, ids=IDS)
def test_every_layout_reads_back_as_make_ndarray_reads_it(array):
    ours = tensor_pb2.TensorProto()
    fill_packed_tensor_proto(ours, array)
    for proto in (tf.make_tensor_proto(array), ours, tensor_proto_from_array(array)):
        read = array_from_tensor_proto(proto)
        _same(read, tf.make_ndarray(proto))  # even a big-endian array TensorFlow packed without swapping
        if read.size:
            read.reshape(-1)[0] = read.reshape(-1)[-1]  # writable, like make_ndarray's copy
    for proto in (ours, tensor_proto_from_array(array)):
        _same(array_from_tensor_proto(proto), np.asarray(array, array.dtype.newbyteorder("=")))


def test_answers_use_the_typed_fields_as_tf_servings_as_proto_field_does():
    proto = tensor_proto_from_array(np.array([[1.5, 2.0]], np.float32))
    assert proto.dtype == types_pb2.DT_FLOAT and list(proto.float_val) == [1.5, 2.0] and not proto.tensor_content
    assert [d.size for d in proto.tensor_shape.dim] == [1, 2]
    assert list(tensor_proto_from_array(np.array([b"x"], object)).string_val) == [b"x"]


def test_short_typed_fields_repeat_their_last_value_as_tensorflow_reads_them():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in (2, 3):
        proto.tensor_shape.dim.add().size = size
    proto.float_val.extend([1.0, 2.0])
    np.testing.assert_array_equal(array_from_tensor_proto(proto), [[1.0, 2.0, 2.0], [2.0, 2.0, 2.0]])


def test_a_shape_no_array_can_have_gets_tensorflows_error():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add().size = -1
    with pytest.raises(ValueError):
        array_from_tensor_proto(proto)
