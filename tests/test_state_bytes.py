"""`serving.state_bytes`: the state as bytes, and which signature is `generate_bytes` to which `generate`."""

import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2

from serving import state_bytes
from serving.generation import GENERATE_INPUTS, GENERATE_OUTPUTS

WIDTH = 6


def _signature(inputs, outputs, width=WIDTH):
    signature = meta_graph_pb2.SignatureDef()
    for tensors, spec in ((signature.inputs, inputs), (signature.outputs, outputs)):
        for alias, dtype in spec.items():
            tensors[alias].dtype = dtype
            if alias == "state":
                tensors[alias].tensor_shape.dim.add().size = -1
                tensors[alias].tensor_shape.dim.add().size = width
    return signature


def _as_bytes(contract):
    return {("state_bytes" if alias == "state" else alias): (7 if alias == "state" else dtype)
            for alias, dtype in contract.items()}


def _zoo_signatures(width=WIDTH):
    return {"generate": _signature(GENERATE_INPUTS, GENERATE_OUTPUTS, width),
            "generate_bytes": _signature(_as_bytes(GENERATE_INPUTS), _as_bytes(GENERATE_OUTPUTS))}


def test_pack_writes_each_rows_little_endian_float32_and_unpack_reads_them_back_bit_for_bit():
    state = np.array([[-0.0, 1e-45, -3e38, 1.5, 2.0, -7.25], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]], np.float32)
    packed = state_bytes.pack(state)
    assert packed.dtype == object and packed.shape == (2,)
    assert packed[0] == state[0].astype("<f4").tobytes() and len(packed[1]) == 4 * WIDTH
    np.testing.assert_array_equal(state_bytes.unpack(packed, WIDTH).view(np.uint32), state.view(np.uint32))
    assert state_bytes.unpack(state_bytes.pack(np.zeros((0, WIDTH))), WIDTH).shape == (0, WIDTH)


def test_unpack_refuses_what_the_graph_refuses():
    good = state_bytes.pack(np.ones((1, WIDTH), np.float32))[0]
    assert state_bytes.unpack(np.array([good, good[:-1]], object), WIDTH) is None  # a row one byte short
    assert state_bytes.unpack(np.array(["text"], object), WIDTH) is None  # not bytes
    for bad in (np.nan, np.inf):
        row = np.ones(WIDTH, np.float32)
        row[3] = bad
        assert state_bytes.unpack(state_bytes.pack(row[None]), WIDTH) is None


def test_the_twin_is_the_name_without_bytes_with_generates_contract_and_its_width():
    assert state_bytes.float_twin(_zoo_signatures(), "generate_bytes") == ("generate", WIDTH)
    assert state_bytes.float_twin(_zoo_signatures(), "generate") is None
    alone = {"generate_bytes": _zoo_signatures()["generate_bytes"]}
    assert state_bytes.float_twin(alone, "generate_bytes") is None  # nothing to share a lane with
    other = _zoo_signatures()
    other["generate"] = _signature({"x": 1}, {"y": 1})
    assert state_bytes.float_twin(other, "generate_bytes") is None  # not generate's contract
    unknown_width = _zoo_signatures(width=-1)
    assert state_bytes.float_twin(unknown_width, "generate_bytes") is None
