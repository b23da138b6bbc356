"""The warmup file a SavedModel version ships, in TF Serving's own format (the writer).

TensorFlow optimises a graph the first time it runs, so the first request to a
freshly loaded version pays hundreds of milliseconds. TF Serving's remedy is a
file of sample requests inside the version, `assets.extra/tf_serving_warmup_requests`:
a TFRecord of `PredictionLog` protos (at most 1,000) replayed after loading and
before the version becomes AVAILABLE. The export writes it here; the server
reads it back through `serving.warmup`, with the constants below.
"""

import pathlib

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

__all__ = ["WARMUP_FILE", "MAX_WARMUP_RECORDS", "write_warmup_requests"]

WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses to load a version with more


def write_warmup_requests(version_dir, model_name, requests):
    """Writes `requests` as the warmup file of a SavedModel version folder.

    Args:
        version_dir: the version folder (before it is renamed into place).
        model_name: the name the requests carry in their ModelSpec.
        requests: a list of `(signature_name, {input alias: array-like})`.

    Returns:
        The path of the file written.

    Raises:
        ValueError: more than `MAX_WARMUP_RECORDS` requests.
    """
    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"TF Serving replays at most {MAX_WARMUP_RECORDS} warmup requests. Received: {len(requests)} requests"
        )
    path = pathlib.Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            for alias, value in inputs.items():
                request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
            record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(record.SerializeToString())
    return path
