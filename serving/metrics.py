"""Prometheus metrics under TF Serving's names, served at /monitoring/prometheus/metrics.

TF Serving exports `/tensorflow/serving/request_count{model_name,status}` and
`/tensorflow/serving/request_latency{model_name,API,entrypoint}` (microseconds),
which its Prometheus exporter renames with `:` for `/`. The text is written
here rather than through `prometheus_client.Counter`, which would rename the
counter to `..._total` and add `_created` series TF Serving does not have;
`prometheus_client` still supplies the content type and number formatting.

Continuous batching of `generate` is this server's own, so are its counters, under
`/rnn_zoo/serving/generation/` in the same style: the calls the generation engine
made per model, the sampling steps they ran and the characters they drew for their
rows. Characters over steps is how many rows a step carried on average.
"""

import bisect
import contextlib
import threading
import time

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from serving.errors import Code, from_exception

__all__ = ["Metrics", "CONTENT_TYPE", "REQUEST_COUNT", "REQUEST_LATENCY", "GENERATION_COUNTERS"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
# name -> help, in the order `Metrics.generation` returns them
GENERATION_COUNTERS = {
    ":rnn_zoo:serving:generation:call_count": "Calls of generate signatures made by continuous batching.",
    ":rnn_zoo:serving:generation:step_count": "Sampling steps those calls ran (each as many as its longest row).",
    ":rnn_zoo:serving:generation:row_step_count": "Characters those calls drew, summed over their rows.",
}
# TF Serving's buckets: exponential from 10 us, factor 1.8, 33 of them.
_BUCKETS = tuple(10.0 * 1.8**i for i in range(33))


def _labels(**labels):
    escaped = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in labels.values())
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(labels, escaped, strict=True)) + "}"


class Metrics:
    """Request counts and latencies of one server (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {}  # (model_name, status) -> requests
        self._latency = {}  # (model_name, api, entrypoint) -> [bucket counts..., sum, count]
        self._generation = {}  # model_name -> [calls, steps, row steps]

    @contextlib.contextmanager
    def track(self, model_name, api, entrypoint):
        """Counts the request in the `with` block by outcome and times it.

        Args:
            model_name: the model the request named.
            api: "predict", "classify", "regress", "GetModelMetadata", ...
            entrypoint: "REST" or "GRPC".
        """
        start = time.perf_counter()
        code = Code.OK
        try:
            yield
        except BaseException as error:
            code = from_exception(error).code
            raise
        finally:
            self.record(model_name, api, entrypoint, code, (time.perf_counter() - start) * 1e6)

    def record(self, model_name, api, entrypoint, code, latency_us):
        """Adds one finished request."""
        with self._lock:
            key = (model_name, Code(code).name)
            self._counts[key] = self._counts.get(key, 0) + 1
            if code == Code.OK:  # TF Serving times successful requests only
                series = self._latency.setdefault((model_name, api, entrypoint), [0] * (len(_BUCKETS) + 3))
                series[bisect.bisect_left(_BUCKETS, latency_us)] += 1
                series[-2] += latency_us
                series[-1] += 1

    def record_generation_call(self, model_name, steps, row_steps):
        """Adds one `generate` call of the generation engine: the steps it ran and the characters it drew."""
        with self._lock:
            counts = self._generation.setdefault(model_name, [0, 0, 0])
            counts[0] += 1
            counts[1] += steps
            counts[2] += row_steps

    def generation(self, model_name):
        """(calls, steps, row steps) of the generation engine for `model_name` so far."""
        with self._lock:
            return tuple(self._generation.get(model_name, (0, 0, 0)))

    def request_count(self, model_name, status="OK"):
        """How many requests for `model_name` ended with `status` (a code name)."""
        with self._lock:
            return self._counts.get((model_name, status), 0)

    def exposition(self):
        """The Prometheus text exposition (format 0.0.4) of every series."""
        with self._lock:
            counts = sorted(self._counts.items())
            latency = sorted((k, list(v)) for k, v in self._latency.items())
            generation = sorted((k, list(v)) for k, v in self._generation.items())
        lines = [f"# HELP {REQUEST_COUNT} The total number of requests.", f"# TYPE {REQUEST_COUNT} counter"]
        for (model, status), value in counts:
            lines.append(f"{REQUEST_COUNT}{_labels(model_name=model, status=status)} {floatToGoString(value)}")
        lines += [
            f"# HELP {REQUEST_LATENCY} Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            f"# TYPE {REQUEST_LATENCY} histogram",
        ]
        for (model, api, entrypoint), series in latency:
            cumulative = 0
            for bound, count in zip(list(_BUCKETS) + [float("inf")], series[:-2], strict=True):
                cumulative += count
                labels = _labels(model_name=model, API=api, entrypoint=entrypoint, le=floatToGoString(bound))
                lines.append(f"{REQUEST_LATENCY}_bucket{labels} {floatToGoString(cumulative)}")
            labels = _labels(model_name=model, API=api, entrypoint=entrypoint)
            lines.append(f"{REQUEST_LATENCY}_sum{labels} {floatToGoString(series[-2])}")
            lines.append(f"{REQUEST_LATENCY}_count{labels} {floatToGoString(series[-1])}")
        for i, (name, text) in enumerate(GENERATION_COUNTERS.items()):
            if generation:
                lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
            lines += [f"{name}{_labels(model_name=model)} {floatToGoString(values[i])}" for model, values in generation]
        return ("\n".join(lines) + "\n").encode("utf-8")
