"""Per-request overhead of the embedded server over calling the same signature in-process, and load.

    python -m benchmarks.serving                  # defaults below
    python -m benchmarks.serving --requests 2000 --seconds 5

The model is tiny (y = a·x + b on one float), so the signature itself costs
next to nothing and the figures are the serving path: HTTP or gRPC framing,
JSON or proto decoding, routing, the checks, encoding. Three contenders call
`serving_default` with a batch of one:

- in-process: `Servable.run` on the loaded SavedModel (the reference);
- gRPC: the official `PredictionServiceStub` on one channel;
- REST: `requests.Session` (keep-alive) posting `{"instances": [[1.0]]}`.

Latency is measured in rounds, each timing a block of calls of every
contender in turn (order reversed every other round), so load from other
processes on a shared machine falls on all alike. Overhead = protocol latency
minus in-process latency, at the median and at p99 over all calls.
Load: 1, 4 and 16 concurrent clients (threads, one connection each) per
protocol for a fixed time; throughput in requests/s and every non-200 /
non-OK answer counted as an error. Results: `benchmarks/results/serving.json`.
"""

import argparse
import json
import pathlib
import tempfile
import threading
import time

import numpy as np

from benchmarks.machine import describe_machine, write_results

BARS_MS = {"grpc": 1.0, "rest": 2.0}  # median overhead bars of issue 4
RESULTS = pathlib.Path(__file__).parent / "results" / "serving.json"


def _save_tiny_model(path):
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = tf.Variable(0.5), tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.a * x + self.b}

    module = Tiny()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _callers(server, servable):
    """name -> (make a caller for one thread: () -> bool ok)."""
    import grpc
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    x = np.array([[1.0]], np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    url = server.rest_target + "/v1/models/tiny:predict"
    body = json.dumps({"instances": [[1.0]]})

    def in_process():
        return lambda: float(servable.run("serving_default", {"x": x})["y"][0, 0]) == 2.5

    def grpc_caller():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc_target))

        def call():
            try:
                return stub.Predict(request, timeout=30).outputs["y"].float_val[0] == 2.5
            except grpc.RpcError:
                return False

        return call

    def rest_caller():
        session = requests.Session()

        def call():
            try:
                reply = session.post(url, data=body, timeout=30)
                return reply.status_code == 200 and reply.json() == {"predictions": [[2.5]]}
            except requests.RequestException:
                return False

        return call

    return {"in_process": in_process, "grpc": grpc_caller, "rest": rest_caller}


def measure_latency(callers, total, rounds):
    """Per-call latencies (s) of each contender, interleaved in `rounds` blocks."""
    calls = {name: make() for name, make in callers.items()}
    for call in calls.values():  # warm up: first calls trace and connect
        for _ in range(20):
            call()
    times = {name: [] for name in calls}
    block = max(1, total // rounds)
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            call = calls[name]
            for _ in range(block):
                start = time.perf_counter()
                ok = call()
                times[name].append(time.perf_counter() - start)
                if not ok:
                    raise RuntimeError(f"{name} answered wrongly during the latency run")
    return {name: np.array(values) for name, values in times.items()}


def measure_load(make_caller, clients, seconds):
    """(requests/s, errors) of `clients` threads calling for `seconds`."""
    counts, errors, stop = [0] * clients, [0] * clients, threading.Event()

    def run(i):
        call = make_caller()
        call()  # connect before the clock starts
        barrier.wait()
        while not stop.is_set():
            if call():
                counts[i] += 1
            else:
                errors[i] += 1

    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return (sum(counts) + sum(errors)) / elapsed, sum(errors)


def _ms(seconds):
    return round(float(seconds) * 1e3, 4)


def summarise(times):
    reference = times["in_process"]
    out = {"in_process": {"median_ms": _ms(np.median(reference)), "p99_ms": _ms(np.percentile(reference, 99))}}
    for name in ("grpc", "rest"):
        t = times[name]
        overhead_median = np.median(t) - np.median(reference)
        out[name] = {
            "median_ms": _ms(np.median(t)),
            "p99_ms": _ms(np.percentile(t, 99)),
            "overhead_median_ms": _ms(overhead_median),
            "overhead_p99_ms": _ms(np.percentile(t, 99) - np.percentile(reference, 99)),
            "ratio_to_in_process_median": round(float(np.median(t) / np.median(reference)), 2),
            "bar_overhead_median_ms": BARS_MS[name],
            "meets_bar": bool(overhead_median * 1e3 <= BARS_MS[name]),
        }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="latency calls per contender")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved latency rounds")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each load run")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--output", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)

    from serving.server import ModelServer

    with tempfile.TemporaryDirectory() as root:
        _save_tiny_model(pathlib.Path(root) / "tiny" / "1")
        with ModelServer("tiny", str(pathlib.Path(root) / "tiny"), file_system_poll_wait_seconds=0) as server:
            servable = server.repository.resolve("tiny")
            callers = _callers(server, servable)
            latency = summarise(measure_latency(callers, args.requests, args.rounds))
            load = {}
            for name in ("in_process", "grpc", "rest"):
                load[name] = {}
                for clients in args.clients:
                    rate, errors = measure_load(callers[name], clients, args.seconds)
                    load[name][str(clients)] = {"requests_per_s": round(rate, 1), "errors": errors}
                    print(f"{name:10s} {clients:3d} clients: {rate:8.1f} req/s, {errors} errors", flush=True)
    result = {
        "benchmark": "serving",
        "machine": describe_machine(),
        "settings": vars(args) | {"output": args.output.name},
        "latency": latency,
        "load": load,
        "errors_total": sum(v["errors"] for per in load.values() for v in per.values()),
    }
    write_results(result, args.output)
    print(json.dumps(latency, indent=2))
    return result


if __name__ == "__main__":
    main()
