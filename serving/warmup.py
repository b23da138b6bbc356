"""SavedModel warmup, in TF Serving's own format.

TensorFlow optimises a graph the first time it runs, so the first request to a
freshly loaded version pays hundreds of milliseconds (for a streamed text, that
is the time to the first piece). TF Serving's remedy, which this module follows,
is a file of sample requests shipped inside the version,
`assets.extra/tf_serving_warmup_requests`: a TFRecord of `PredictionLog`
protos (at most 1,000) that the server replays after loading and before the
version becomes AVAILABLE. Real TF Serving (`--enable_model_warmup`, on by
default) reads the same file, so an export warmed here is warm there too.

This module reads the file; the export writes it (`zoo.export.write_warmup_requests`),
and both take the file's place and limit from `zoo.export`.
"""

import logging
import pathlib

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from zoo.export import MAX_WARMUP_RECORDS, WARMUP_FILE

__all__ = ["WARMUP_FILE", "MAX_WARMUP_RECORDS", "read_warmup_requests", "warm_up"]

log = logging.getLogger(__name__)


def read_warmup_requests(version_dir):
    """The `(signature_name, {alias: np.ndarray})` predict requests of a version's warmup file.

    Returns an empty list when the version has no warmup file. Records of other
    kinds (classify, regress, multi-inference) are skipped with a log line.

    Raises:
        ValueError: more than `MAX_WARMUP_RECORDS` records, as TF Serving refuses.
    """
    path = pathlib.Path(version_dir) / WARMUP_FILE
    if not path.exists():
        return []
    requests = []
    for count, serialized in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator(), start=1):
        if count > MAX_WARMUP_RECORDS:
            raise ValueError(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")
        record = prediction_log_pb2.PredictionLog.FromString(serialized)
        if record.WhichOneof("log_type") != "predict_log":
            log.info("Skipping a %s warmup record in %s", record.WhichOneof("log_type"), path)
            continue
        request = record.predict_log.request
        inputs = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
        requests.append((request.model_spec.signature_name, inputs))
    return requests


def warm_up(run, version_dir, iterations=1):
    """Replays a version's warmup requests through `run(signature_name, feeds)`; returns how many ran.

    An error propagates: as in TF Serving, a version whose own warmup fails
    does not become AVAILABLE.
    """
    requests = read_warmup_requests(version_dir)
    for _ in range(iterations):
        for signature_name, feeds in requests:
            run(signature_name or "serving_default", {k: np.asarray(v) for k, v in feeds.items()})
    return len(requests) * iterations
