"""What one streaming call costs, piece by piece, in one process: the serving path taken apart.

    python -m benchmarks.serving_pieces                  # char_lstm's generate, one row, 1,024-float state

One `generate` call of a stream (one row, the shipped `char_lstm`'s 1,024-float
state, 8 characters: one chunk of the generation lane) is timed in the pieces the server and the client
spend CPU on, each alone, none over a socket:

- `signature`: `Servable.run`, the SavedModel call itself (the reference);
- `data_plane`: `DataPlane.predict` with continuous batching on: the checks,
  the limits and the hand-off to the generation lane around the same call;
- REST: the client writing the request body, the server reading it
  (`parse_body` + `decode_inputs`), the server writing the answer
  (`encode_outputs`, TF Serving's number forms), the client reading it;
  the same four for `generate_bytes` (the state as base64 bytes), what a
  REST stream calls, and its data plane (`serving.state_bytes`);
- gRPC: the client writing the `PredictRequest`, the server reading its
  tensors (`serving.tensor_protos`, and for comparison TensorFlow's own
  `tf.make_ndarray`), the server writing the answer's tensors, the servicer's
  `Predict` around the data plane (so its own share is
  `grpc_servicer - data_plane`), the client reading the answer.

CPU time of the calling process per call (the lane thread's included),
median and range over interleaved rounds. The request body sizes are
recorded too. Results: `benchmarks/results/serving_pieces.json`.
"""

import argparse
import json
import statistics
import time

import numpy as np

from benchmarks.machine import describe_machine, write_results
from serving.execution import DEFAULT_GENERATION_CHUNK_STEPS

STEPS = DEFAULT_GENERATION_CHUNK_STEPS  # one chunk: the data plane makes the same one signature call


def _inputs(width):
    state = np.tanh(np.random.default_rng(0).standard_normal((1, width))).astype(np.float32)
    return {
        "prompt": np.array([b"R"], object), "state": state, "steps": np.array([STEPS], np.int32),
        "temperature": np.array([0.8], np.float32), "top_k": np.array([0], np.int32),
        "seed": np.array([1], np.int64), "position": np.array([0], np.int64),
    }


def _pieces(servable, feeds):
    """name -> a no-argument callable timing that piece, and the request bodies' sizes."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from serving import json_codec, state_bytes
    from serving.batching import BatchingOptions
    from serving.client import _array_from_json, _array_to_json, predict_body
    from serving.dataplane import DataPlane
    from serving.execution import Executor
    from serving.grpc_service import PredictionServicer
    from serving.tensor_protos import array_from_tensor_proto, fill_packed_tensor_proto, tensor_proto_from_array

    class Repository:
        def resolve(self, *args, **kwargs):
            return servable

    dataplane = DataPlane(Repository(), executor=Executor(BatchingOptions(max_batch_size=64)))
    signature = servable.signature_defs["generate"]
    outputs = servable.run("generate", feeds)

    def rest_body():
        return predict_body(feeds, "generate")

    body = rest_body().encode()
    answer = json_codec.encode_outputs(outputs, json_codec.COLUMNAR)
    float64_body = json.dumps({"inputs": {n: _array_to_json(a) for n, a in feeds.items()},
                               "signature_name": "generate"}).encode()

    def rest_server_read():
        return json_codec.decode_inputs(json_codec.parse_body(body), signature.inputs, "generate")

    bytes_signature = servable.signature_defs["generate_bytes"]
    bytes_feeds = {name: array for name, array in feeds.items() if name != "state"}
    bytes_feeds[state_bytes.STATE_BYTES] = state_bytes.pack(feeds["state"])
    bytes_outputs = dataplane.predict(servable, "generate_bytes", bytes_feeds).outputs
    bytes_body = predict_body(bytes_feeds, "generate_bytes").encode()
    bytes_answer = json_codec.encode_outputs(bytes_outputs, json_codec.COLUMNAR)

    def rest_bytes_client_read():
        document = json.loads(bytes_answer)["outputs"]
        packed = _array_from_json(document[state_bytes.STATE_BYTES], np.dtype(object))
        return state_bytes.unpack(packed, feeds["state"].shape[1]), document["text"]

    def grpc_request():
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "char_lstm", "generate"
        for name, array in feeds.items():
            fill_packed_tensor_proto(request.inputs[name], array)
        return request

    request = grpc_request()
    response = PredictionServicer(dataplane).Predict(request, _Context())

    pieces = {
        "signature": lambda: servable.run("generate", feeds),
        "data_plane": lambda: dataplane.predict(servable, "generate", feeds),
        "rest_client_write": rest_body,
        "rest_server_read": rest_server_read,
        "rest_server_write": lambda: json_codec.encode_outputs(outputs, json_codec.COLUMNAR),
        "rest_client_read": lambda: json.loads(answer),
        "data_plane_bytes": lambda: dataplane.predict(servable, "generate_bytes", bytes_feeds),
        "rest_bytes_client_write": lambda: predict_body(bytes_feeds, "generate_bytes"),
        "rest_bytes_server_read": lambda: json_codec.decode_inputs(
            json_codec.parse_body(bytes_body), bytes_signature.inputs, "generate_bytes"),
        "rest_bytes_server_write": lambda: json_codec.encode_outputs(bytes_outputs, json_codec.COLUMNAR),
        "rest_bytes_client_read": rest_bytes_client_read,
        "grpc_client_write": grpc_request,
        "grpc_server_read": lambda: {name: array_from_tensor_proto(p) for name, p in request.inputs.items()},
        "grpc_server_read_tf": lambda: {name: tf.make_ndarray(p) for name, p in request.inputs.items()},
        "grpc_server_write": lambda: [tensor_proto_from_array(array) for array in outputs.values()],
        "grpc_servicer": lambda: PredictionServicer(dataplane).Predict(request, _Context()),
        "grpc_client_read": lambda: {name: array_from_tensor_proto(p) for name, p in response.outputs.items()},
    }
    sizes = {"rest_request_bytes": len(body), "rest_request_bytes_float64_digits": len(float64_body),
             "rest_answer_bytes": len(answer), "rest_bytes_request_bytes": len(bytes_body),
             "rest_bytes_answer_bytes": len(bytes_answer), "grpc_request_bytes": request.ByteSize(),
             "grpc_answer_bytes": response.ByteSize()}
    return pieces, sizes, dataplane


class _Context:
    """The little of `grpc.ServicerContext` the servicer asks for."""

    def time_remaining(self):
        return None

    def add_callback(self, callback):
        return True

    def abort(self, code, details):
        raise RuntimeError(f"{code}: {details}")


def measure(pieces, calls, rounds):
    """name -> CPU microseconds per call, one figure per round; the pieces interleaved, order reversed every
    other round."""
    times = {name: [] for name in pieces}
    for piece in pieces.values():  # warm: the first calls trace and allocate
        for _ in range(10):
            piece()
    for round_index in range(rounds):
        names = list(pieces) if round_index % 2 == 0 else list(pieces)[::-1]
        for name in names:
            start = time.process_time()
            for _ in range(calls):
                pieces[name]()
            times[name].append((time.process_time() - start) / calls * 1e6)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls of each piece per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/serving_pieces.json")
    args = parser.parse_args(argv)
    import pathlib

    from serving.repository import scan_versions
    from serving.servable import Servable

    base = pathlib.Path(__file__).resolve().parent.parent / "saved_models" / "char_lstm"
    version = max(scan_versions(base))
    servable = Servable.load("char_lstm", version, str(base / str(version)))
    width = servable.signature_defs["generate"].inputs["state"].tensor_shape.dim[1].size
    pieces, sizes, dataplane = _pieces(servable, _inputs(width))
    try:
        times = measure(pieces, args.calls, args.rounds)
    finally:
        dataplane.executor.stop()
    figures = {name: {"median_us": statistics.median(t), "min_us": min(t), "max_us": max(t)}
               for name, t in times.items()}
    for name, f in figures.items():
        print(f"{name:20s} {f['median_us']:8.0f} us ({f['min_us']:.0f}-{f['max_us']:.0f})")
    write_results({"machine": describe_machine(), "model": "char_lstm", "version": version, "state_width": width,
                   "steps": STEPS, "calls_per_round": args.calls, "rounds": args.rounds, "cpu_us_per_call": figures,
                   **sizes}, args.out)


if __name__ == "__main__":
    main()
