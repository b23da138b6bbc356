"""A recurrent state as bytes: `generate_bytes`, the REST form of `generate`.

On REST a `generate` call carries its state as JSON numbers both ways, S of
them per row (2,048 for char_lstm): writing and reading them took most of the
CPU of a streamed call, in the server and in a Python client. TF Serving's
JSON has one binary form, base64 for string tensors (`{"b64": ...}` in, and
out for an output alias ending in `_bytes`), so the zoo exports a twin,
`generate_bytes`, whose `state_bytes` holds each row's S float32 numbers as
one string of 4 S bytes, little-endian, back to back: the same bits as
`generate`'s state. Stock TF Serving runs its graph (`zoo.sampling`); this
server runs a `generate_bytes` request through its twin's generation lane, so
REST and gRPC streams share one lane, and packs the state in Python.
"""

import numpy as np

from serving.generation import GENERATE_INPUTS, GENERATE_OUTPUTS, has_contract, is_generate_contract

__all__ = ["STATE_BYTES", "pack", "unpack", "float_twin"]

STATE_BYTES = "state_bytes"
_SUFFIX = "_bytes"
_BYTE_ORDER = np.dtype("<f4")
_DT_STRING = 7


def _bytes_contract(contract):
    return {(STATE_BYTES if alias == "state" else alias): (_DT_STRING if alias == "state" else dtype)
            for alias, dtype in contract.items()}


_INPUTS, _OUTPUTS = _bytes_contract(GENERATE_INPUTS), _bytes_contract(GENERATE_OUTPUTS)


def pack(state):
    """(B, S) numbers -> (B,) object array of each row's little-endian float32 bytes."""
    rows = np.ascontiguousarray(state, _BYTE_ORDER)
    rows = rows.reshape(len(rows), int(np.prod(rows.shape[1:])))  # not -1: a batch of no rows has a width too
    packed = np.empty(len(rows), dtype=object)
    packed[:] = [row.tobytes() for row in rows]
    return packed


def unpack(values, width):
    """(B,) byte strings -> (B, width) float32, or None when a string is not 4 `width` bytes long or holds a NaN
    or an infinity (what `generate_bytes`' graph refuses, naming it)."""
    rows = np.asarray(values, dtype=object).reshape(-1).tolist()
    if any(not isinstance(row, bytes) or len(row) != 4 * width for row in rows):
        return None
    state = np.frombuffer(b"".join(rows), _BYTE_ORDER).reshape(len(rows), width).astype(np.float32)
    return state if np.isfinite(state).all() else None


def float_twin(signatures, name):
    """(twin's name, state width) when signature `name` is `generate_bytes` to a `generate` signature served
    beside it (the name without `_bytes`, with `generate`'s inputs and outputs); None otherwise."""
    twin = name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else None
    if twin not in signatures or not has_contract(signatures[name], _INPUTS, _OUTPUTS):
        return None
    if not is_generate_contract(signatures[twin]):
        return None
    dims = signatures[twin].inputs["state"].tensor_shape.dim
    return (twin, dims[-1].size) if dims and dims[-1].size > 0 else None
