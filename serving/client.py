"""A Python client for TF Serving's REST and gRPC APIs (this server's or the real one).

    client = Client("localhost:8501")                    # REST
    client = Client("localhost:8500", protocol="grpc")   # gRPC
    client.status("tiny")          # [{"version": 2, "state": "AVAILABLE", ...}]
    client.metadata("tiny")        # {"serving_default": {"inputs": {...}, "outputs": {...}}}
    client.pin("tiny")             # (2, the metadata of version 2): the version served now
    client.predict("tiny", {"x": [[1.0], [2.0]]})        # {"y": array([[2.5], [3.0]], dtype=float32)}

Both protocols give the same NumPy results. The client uses only calls real
TF Serving has: REST predict in the columnar `inputs` form (any number of
inputs, any shapes), status and metadata; gRPC Predict, GetModelMetadata and
GetModelStatus. Inputs are cast to the signature's dtypes where that loses
nothing of kind (float64 -> float32, int64 -> int32), and REST outputs are
read back in the signature's dtypes, so the signatures are fetched from
metadata and cached (for a pinned version, for good; otherwise for a second;
an unpinned answer fills its version's entry too, from its `model_spec`).
Every failure raises `serving.errors.ServingError` with a canonical `code`
and TF Serving's `message`, whichever the protocol; a server that cannot be
reached is UNAVAILABLE and a timeout DEADLINE_EXCEEDED. UNAVAILABLE is retried
with exponential backoff first (every call here is a read, so a retry is safe):
a restarting server or a dropped connection costs a pause, not the request.
"""

import base64
import json
import os
import random
import time
import urllib.parse

import grpc
import numpy as np
import requests
import tensorflow as tf
import urllib3
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.errors import Code, ServingError, from_grpc_error, from_http_status
from serving.streaming import TextStream
from serving.tensor_protos import array_from_tensor_proto, fill_packed_tensor_proto
from zoo._checks import check_one_of

__all__ = ["Client", "ServingError"]

_POOL_SIZE = 10  # connections kept open per REST client (requests' default); more threads open more, not kept

# Raise grpcio's 4 MB receive default to TF Serving's 2 GiB message limit.
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2**31 - 1),
    # grpc-core waits 1 s, then up to 120 s, before redialling a lost server;
    # the client's own retries pace themselves, so redial promptly.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
_UNPINNED_SIGNATURE_TTL_S = 1.0  # "latest" and labels can move; re-read them soon


def _numpy_dtype(dtype_enum):
    try:
        return np.dtype(tf.dtypes.as_dtype(dtype_enum).as_numpy_dtype)
    except TypeError:  # DT_INVALID and the like (e.g. __saved_model_init_op)
        return None


def _describe_tensor(info):
    shape = None if info.tensor_shape.unknown_rank else [int(d.size) for d in info.tensor_shape.dim]
    return {
        "dtype": _numpy_dtype(info.dtype),
        "tf_dtype": types_pb2.DataType.Name(info.dtype),
        "shape": shape,
        "name": info.name,
    }


def _describe_signatures(signatures):
    return {
        name: {
            "inputs": {alias: _describe_tensor(info) for alias, info in sorted(signature.inputs.items())},
            "outputs": {alias: _describe_tensor(info) for alias, info in sorted(signature.outputs.items())},
            "method_name": signature.method_name,
        }
        for name, signature in sorted(signatures.items())
    }


def _as_bytes(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _as_input_array(value, info):
    """`value` as an array in the dtype the server expects (strings: object array of bytes)."""
    wants_strings = info is not None and info.dtype == types_pb2.DT_STRING
    try:
        array = np.asarray(value, dtype=object if wants_strings else None)
    except (UnicodeDecodeError, ValueError):  # e.g. str and non-ASCII bytes mixed in one list
        array = np.asarray(value, dtype=object)
    if array.dtype.kind in "SU" and not isinstance(value, np.ndarray):
        array = np.asarray(value, dtype=object)  # NumPy's "S" arrays drop trailing NUL bytes
    if array.dtype.kind in "USO":
        strings = np.empty(array.shape, dtype=object)
        strings.reshape(-1)[:] = [_as_bytes(v) for v in array.reshape(-1).tolist()]
        return strings
    target = _numpy_dtype(info.dtype) if info is not None else None
    # Only casts within a kind (float64 -> float32): a float for an int input
    # is left for the server to refuse, as TF Serving would.
    castable = target is not None and target.kind != "O" and np.can_cast(array.dtype, target, casting="same_kind")
    return array.astype(target) if castable and array.dtype != target else array


# --------------------------------------------------------------------- REST


def _string_to_json(value):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode("ascii")}


# Digits that carry every float of the dtype through decimal text and back unchanged.
_ROUND_TRIP_FORMAT = {np.dtype(np.float32): "%.9g", np.dtype(np.float64): "%.17g"}


def _array_json_text(array):
    """`array` as JSON text, as TF Serving reads it back into the same values.

    Floats are written with the digits their own precision needs (9 for
    float32), not the 17 of the float64 they become in Python: a stream's
    state (1,536 floats for char_lstm) is 40% shorter, and faster to write and to parse. A
    whole number keeps its ".0" (a JSON integer above 2^24 is refused for a
    float32 input as TF Serving would, even where the float holds it).
    """
    digits = _ROUND_TRIP_FORMAT.get(array.dtype)
    if digits is None or not array.size or not np.isfinite(array).all():  # NaN, Infinity: json's own spellings
        return json.dumps(_array_to_json(array), allow_nan=True)
    flat = array.reshape(-1)
    formats = np.where(np.floor(flat) == flat, "%.1f", digits).tolist()
    return _nested((",".join(formats) % tuple(flat.tolist())).split(","), array.shape)


def _b64_json_text(array):
    """A string tensor as nested lists of `{"b64": ...}`: for an input whose alias ends in `_bytes` (binary, like
    `generate_bytes`' state), which TF Serving's convention writes that way on the way out."""
    if not array.size:
        return json.dumps(array.tolist())
    values = array.reshape(-1).tolist()
    return _nested([f'{{"b64":"{base64.b64encode(_as_bytes(v)).decode("ascii")}"}}' for v in values], array.shape)


def _nested(items, shape):
    """JSON lists of `shape` around the texts of its elements, in C order (at least one element)."""
    for size in reversed(shape):  # innermost dimension first
        items = ["[" + ",".join(items[i : i + size]) + "]" for i in range(0, len(items), size)]
    return items[0]


def predict_body(arrays, signature_name=""):
    """The REST predict request's JSON text: the columnar `inputs` form, floats as `_array_json_text` writes them,
    strings of `_bytes` inputs as base64."""

    def text(name, array):
        return _b64_json_text(array) if array.dtype == object and name.endswith("_bytes") else _array_json_text(array)

    inputs = ",".join(f"{json.dumps(name)}:{text(name, array)}" for name, array in arrays.items())
    named = f',"signature_name":{json.dumps(signature_name)}' if signature_name else ""
    return '{"inputs":{' + inputs + "}" + named + "}"


def _array_to_json(array):
    if array.dtype == object:
        flat = np.empty(array.size, dtype=object)
        flat[:] = [_string_to_json(v) for v in array.reshape(-1).tolist()]
        return flat.reshape(array.shape).tolist()
    return array.tolist()


def _json_string_leaf(value):
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    return _as_bytes(value)


def _map_leaves(value, leaf):
    if isinstance(value, list):
        return [_map_leaves(v, leaf) for v in value]
    return leaf(value)


def _array_from_json(value, dtype):
    if (dtype is not None and dtype.kind == "O") or (dtype is None and _first_leaf_is_string(value)):
        return np.array(_map_leaves(value, _json_string_leaf), dtype=object)
    return np.array(value, dtype=dtype)


def _first_leaf_is_string(value):
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, (str, dict))


class _RestTransport:
    """REST calls over one urllib3 connection pool (keep-alive, thread-safe).

    urllib3 directly, not through requests: requests prepares every call anew (hooks, cookies, header merging, its
    adapter), the largest single piece of a REST stream's client CPU once the state travelled as bytes
    (`benchmarks/serving_load.py` runs all-REST streams both ways: `batching_on_rest_only` and
    `batching_on_rest_client_requests`). What requests would read from the environment (proxy, CA bundle, client
    certificate, netrc credentials) is read once here, by requests' own functions, and applied to every call.
    """

    def __init__(self, target, timeout):
        base = target if "://" in target else f"http://{target}"
        self.base = base.rstrip("/")
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        with requests.Session() as session:
            settings = session.merge_environment_settings(self.base, {}, None, None, None)
        proxy = requests.utils.select_proxy(self.base, settings["proxies"])
        tls = _tls_options(settings) if self.base.startswith("https:") else {}
        if proxy:  # a proxy is asked for the whole URL
            self.pool = urllib3.ProxyManager(proxy, maxsize=_POOL_SIZE, block=False, **tls)
            self.prefix = self.base
        else:
            self.pool = urllib3.connection_from_url(self.base, maxsize=_POOL_SIZE, block=False, **tls)
            self.prefix = urllib.parse.urlsplit(self.base).path
        self.headers = {}
        credentials = requests.utils.get_netrc_auth(self.base)
        if credentials:
            self.headers.update(urllib3.util.make_headers(basic_auth=":".join(credentials)))

    @staticmethod
    def _model_path(model, version=None, label=None):
        path = "/v1/models/" + urllib.parse.quote(model, safe="")
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label is not None:
            path += "/labels/" + urllib.parse.quote(label, safe="")
        return path

    def _call(self, method, path, body=None):
        headers = {**self.headers, "Content-Type": "application/json"} if body is not None else self.headers
        url = self.prefix + path
        try:
            reply = self.pool.urlopen(
                method, url, body=body, headers=headers, timeout=self.timeout, retries=False, redirect=False
            )
        except urllib3.exceptions.NewConnectionError as error:  # a subclass of the connect timeout, checked first
            raise ServingError(Code.UNAVAILABLE, f"Cannot reach {self.base}: {error}") from None
        except urllib3.exceptions.TimeoutError as error:
            raise ServingError(Code.DEADLINE_EXCEEDED, f"{method} {self.base}{path} timed out: {error}") from None
        except urllib3.exceptions.HTTPError as error:  # refused, reset or closed mid-answer
            raise ServingError(Code.UNAVAILABLE, f"Cannot reach {self.base}: {error}") from None
        if reply.status != 200:
            try:
                message = json.loads(reply.data)["error"]
            except (ValueError, KeyError, TypeError):
                message = reply.data.decode("utf-8", "replace")
            raise from_http_status(reply.status, message)
        return json.loads(reply.data)

    def predict(self, model, arrays, signature_name, version, label, signature):
        path = self._model_path(model, version, label) + ":predict"
        outputs = self._call("POST", path, predict_body(arrays, signature_name))["outputs"]
        infos = dict(signature.outputs) if signature is not None else {}
        if len(infos) == 1:  # one output: the value comes bare
            outputs = {next(iter(infos)): outputs}
        elif not isinstance(outputs, dict):
            outputs = {"outputs": outputs}  # no signature to name it by
        return {
            name: _array_from_json(value, _numpy_dtype(infos[name].dtype) if name in infos else None)
            for name, value in outputs.items()
        }

    def signature_defs(self, model, version, label):
        """(the version the server resolved the request to, {name: SignatureDef})."""
        doc = self._call("GET", self._model_path(model, version, label) + "/metadata")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        json_format.ParseDict(doc["metadata"]["signature_def"], signature_map, ignore_unknown_fields=True)
        version = doc.get("model_spec", {}).get("version")
        return (int(version) if version is not None else None), dict(signature_map.signature_def)

    def status(self, model, version):
        doc = self._call("GET", self._model_path(model, version))
        return [
            {
                "version": int(entry["version"]),
                "state": entry.get("state", "UNKNOWN"),
                "error_code": entry.get("status", {}).get("error_code", "OK"),
                "error_message": entry.get("status", {}).get("error_message", ""),
            }
            for entry in doc.get("model_version_status", [])
        ]

    def close(self):
        if isinstance(self.pool, urllib3.PoolManager):  # the proxy's
            self.pool.clear()
        else:
            self.pool.close()


def _tls_options(settings):
    """urllib3's TLS arguments from requests' `verify` (True, False or a CA bundle path) and `cert` settings."""
    verify, cert = settings["verify"], settings["cert"]
    options = {"cert_reqs": "CERT_REQUIRED" if verify else "CERT_NONE"}
    if verify:
        bundle = verify if isinstance(verify, str) else requests.certs.where()
        options["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
    if cert:
        options["cert_file"], options["key_file"] = (cert, None) if isinstance(cert, str) else cert
    return options


# --------------------------------------------------------------------- gRPC


def _fill_model_spec(spec, model, version=None, label=None, signature_name=""):
    spec.name = model
    if version is not None:
        spec.version.value = int(version)
    elif label is not None:
        spec.version_label = label
    if signature_name:
        spec.signature_name = signature_name


class _GrpcTransport:
    def __init__(self, target, timeout):
        target = target.split("://", 1)[1] if "://" in target else target
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise from_grpc_error(error) from None

    def predict(self, model, arrays, signature_name, version, label, signature):
        del signature  # the protos carry dtypes and shapes
        request = predict_pb2.PredictRequest()
        _fill_model_spec(request.model_spec, model, version, label, signature_name)
        for name, array in arrays.items():
            fill_packed_tensor_proto(request.inputs[name], array)
        response = self._call(self.prediction.Predict, request)
        return {name: array_from_tensor_proto(proto) for name, proto in response.outputs.items()}

    def signature_defs(self, model, version, label):
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        _fill_model_spec(request.model_spec, model, version, label)
        response = self._call(self.prediction.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        spec = response.model_spec
        return (spec.version.value if spec.HasField("version") else None), dict(signature_map.signature_def)

    def status(self, model, version):
        request = get_model_status_pb2.GetModelStatusRequest()
        _fill_model_spec(request.model_spec, model, version)
        response = self._call(self.models.GetModelStatus, request)
        state_names = get_model_status_pb2.ModelVersionStatus.State
        return [
            {
                "version": int(entry.version),
                "state": state_names.Name(entry.state),
                "error_code": _enum_name(entry.status, "error_code"),
                "error_message": entry.status.error_message,
            }
            for entry in response.model_version_status
        ]

    def close(self):
        self.channel.close()


def _enum_name(message, field):
    value = getattr(message, field)
    names = message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number
    return names[value].name if value in names else str(value)


# ------------------------------------------------------------------- client


class Client:
    """Talks to a TF Serving-compatible server over REST or gRPC.

    Args:
        target: "host:port" (REST also takes "http://host:port").
        protocol: "rest" (default; TF Serving's port 8501) or "grpc" (port 8500).
        timeout: seconds per call.
        retries: how many times a call that found the server UNAVAILABLE is
            tried again (0 = never).
        backoff: seconds before the first retry; each later wait doubles, up
            to `max_backoff`, with jitter so many clients do not retry in step.
        max_backoff: the longest wait between two tries, in seconds.

    Raises (from every call):
        ServingError: with the server's code and message; UNAVAILABLE when the
            server cannot be reached (after the retries), DEADLINE_EXCEEDED
            past `timeout`.
    """

    def __init__(self, target, protocol="rest", timeout=30.0, retries=4, backoff=0.1, max_backoff=2.0):
        check_one_of("protocol", protocol, ("rest", "grpc"))
        if not (isinstance(retries, int) and retries >= 0) or not backoff >= 0 or not max_backoff >= backoff:
            raise ValueError(
                "retries must be an int >= 0 and 0 <= backoff <= max_backoff. "
                f"Received: retries={retries!r}, backoff={backoff!r}, max_backoff={max_backoff!r}"
            )
        self.target = target
        self.protocol = protocol
        self.timeout = timeout
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        transport = _RestTransport if protocol == "rest" else _GrpcTransport
        self._transport = transport(target, timeout)
        self._signature_cache = {}  # (model, version, label) -> (fetched_at, {name: SignatureDef})

    def __repr__(self):
        return f"Client({self.target!r}, protocol={self.protocol!r})"

    def predict(self, model, inputs, signature_name="", version=None, label=None):
        """Runs a signature.

        Args:
            model: model name.
            inputs: input name -> array-like (strings as str or bytes).
            signature_name: empty for `serving_default`.
            version: a version number, or None for the latest.
            label: a version label (instead of `version`).

        Returns:
            Output name -> NumPy array (strings as object arrays of bytes).
        """
        _check_version_choice(version, label)
        signatures = self._cached_signatures(model, version, label)
        signature = signatures.get(signature_name or "serving_default") if signatures else None
        infos = signature.inputs if signature is not None else {}
        arrays = {name: _as_input_array(value, infos.get(name)) for name, value in inputs.items()}
        return self._retrying(self._transport.predict, model, arrays, signature_name, version, label, signature)

    def metadata(self, model, version=None, label=None):
        """Signature name -> {"inputs"/"outputs": {name: {"dtype", "tf_dtype", "shape", "name"}}, "method_name"}.

        `dtype` is a NumPy dtype (object for strings; None where NumPy has
        none), `shape` a list with -1 for unknown sizes (None: unknown rank).
        """
        _check_version_choice(version, label)
        return _describe_signatures(self._fetch_signatures(model, version, label)[1])

    def pin(self, model, label=None):
        """The version the server answers calls to `model` (or its `label`) with now, and that version's
        signatures (as `metadata` describes them), from one metadata call.

        Calls then made with `version=` that number need no further metadata call.
        """
        _check_version_choice(None, label)
        version, signatures = self._fetch_signatures(model, None, label)
        if version is None:  # TF Serving names it; a server that does not: its newest available version
            available = [s["version"] for s in self.status(model) if s["state"] == "AVAILABLE"]
            if label is not None or not available:
                raise ServingError(Code.UNKNOWN, f"Cannot tell which version of {model!r} the server serves: its "
                                   "metadata names none" + (" and no version is AVAILABLE" if not available else ""))
            version = max(available)
            self._signature_cache[(model, version, None)] = self._signature_cache[(model, None, None)]
        return version, _describe_signatures(signatures)

    def status(self, model, version=None):
        """[{"version": int, "state": "AVAILABLE"|..., "error_code": "OK"|..., "error_message": str}], newest first."""
        return self._retrying(self._transport.status, model, version)

    def stream(self, model, prompt, max_tokens, temperature=1.0, top_k=0, seed=0, chunk_size=None):
        """Yields generated text piece by piece from the model's `generate` signature.

        Each piece is one `generate` call of `chunk_size` characters; the state
        is carried by the client and the version pinned for the whole stream,
        so the text equals `zoo.sampling.sample(model, prompt, max_tokens,
        temperature, top_k, seed)` in-process, whatever the chunk size.

        Args:
            model: served model name.
            prompt: text to condition on (empty: start a new line).
            max_tokens: characters to generate in all.
            temperature: 0 = argmax; higher = more varied.
            top_k: sample among the k likeliest characters (0 = all).
            seed: same seed, same text.
            chunk_size: characters per call: smaller arrive sooner, larger cost
                fewer round trips. None (default): 16 characters first, then
                twice the last call up to 128 (`serving.streaming.MAX_CHUNK`).

        Returns:
            A `serving.streaming.TextStream`: iterate it for the pieces; its
            `checkpoint` after any piece continues the stream via `resume`.
        """
        return TextStream.start(self, model, prompt, max_tokens, temperature, top_k, seed, chunk_size)

    def resume(self, checkpoint):
        """Continues a stream from its `TextStream.checkpoint` (or that checkpoint's `to_dict()`)."""
        return TextStream.resume(self, checkpoint)

    def close(self):
        """Closes the HTTP connections or the gRPC channel."""
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _cached_signatures(self, model, version, label):
        key = (model, version, label)
        cached = self._signature_cache.get(key)
        fresh = cached is not None and (version is not None or time.monotonic() - cached[0] < _UNPINNED_SIGNATURE_TTL_S)
        if fresh:
            return cached[1]
        try:
            return self._fetch_signatures(model, version, label)[1]
        except ServingError as error:
            if error.code == Code.UNAVAILABLE:
                raise
            return None  # let predict itself report what is wrong

    def _fetch_signatures(self, model, version, label):
        """(resolved version, signatures) from the server, cached for the request's key and its version's."""
        resolved, signatures = self._retrying(self._transport.signature_defs, model, version, label)
        fetched = (time.monotonic(), signatures)
        self._signature_cache[(model, version, label)] = fetched
        if resolved is not None:  # a version's signatures never change
            self._signature_cache[(model, resolved, None)] = fetched
        return resolved, signatures


    def _retrying(self, call, *args):
        for attempt in range(self.retries + 1):
            try:
                return call(*args)
            except ServingError as error:
                if error.code != Code.UNAVAILABLE or attempt == self.retries:
                    raise
            wait = min(self.backoff * 2**attempt, self.max_backoff)
            time.sleep(wait * random.uniform(0.5, 1.0))


def _check_version_choice(version, label):
    if version is not None and label is not None:
        raise ValueError(f"Give a version or a label, not both. Received: version={version!r}, label={label!r}")
