"""TF Serving's gRPC services over the data plane.

`PredictionServicer` (tensorflow.serving.PredictionService) and `ModelServicer`
(tensorflow.serving.ModelService) are the official generated servicers from
the `tensorflow-serving-api` wheel, filled in with calls to the data plane.
They translate protos to NumPy and back and every `ServingError` to its gRPC
code through the table in `serving.errors`, with TF Serving's 1 KiB message
cut. Outputs are written into the typed `*_val` fields, as TF Serving's
default `AsProtoField` does, so clients that only read those fields work too.
"""

import functools
import logging

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.dataplane import ClassifyResult, serialized_examples
from serving.deadline import Deadline, bound
from serving.errors import Code, ServingError, from_exception, truncate_for_grpc
from serving.repository import parse_model_config
from serving.tensor_protos import array_from_tensor_proto, tensor_proto_from_array

__all__ = [
    "PredictionServicer",
    "ModelServicer",
    "GRPC_OPTIONS",
    "tensor_proto_from_array",
    "array_from_tensor_proto",
    "add_services",
]

log = logging.getLogger(__name__)

# TF Serving accepts messages up to 2 GiB; grpcio's default receive limit is 4 MB.
GRPC_OPTIONS = (
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2**31 - 1),
)

def _declared_elements(proto):
    """Elements a `TensorProto` declares, read from its shape before any array is built."""
    return int(np.prod([max(dim.size, 0) for dim in proto.tensor_shape.dim], dtype=np.float64))


def _version_choice(model_spec):
    """(version, label) of a `ModelSpec`, each None when not set."""
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return version, label


def _require_model_spec(request):
    if not request.HasField("model_spec"):
        raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")


def _examples_of(request_input):
    """Serialized examples of a tensorflow.serving.Input (none when its kind is unset)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return serialized_examples(request_input.example_list.examples)
    if kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        return serialized_examples(with_context.examples, with_context.context)
    return []


def _fill_spec(model_spec, result):
    model_spec.name = result.model_name
    model_spec.version.value = result.version
    model_spec.signature_name = result.signature_name


def _fill_classification(proto, result):
    """A ClassificationResult from a `ClassifyResult` (label "" / score 0 where the signature lacks one)."""
    batch = (result.labels if result.labels is not None else result.scores).shape[0]
    for i in range(batch):
        classes = proto.classifications.add()
        for c in range(result.num_classes):
            entry = classes.classes.add()
            if result.labels is not None:
                entry.label = _as_text(result.labels[i, c])
            if result.scores is not None:
                entry.score = float(result.scores[i, c])


def _fill_regression(proto, result):
    for value in result.values.tolist():
        proto.regressions.add().value = value


def _as_text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _check_deadline(context):
    # A call whose deadline passed while it waited for a worker thread is not
    # run: its client has already given up (TF Serving passes the deadline to
    # the session run the same way).
    remaining = context.time_remaining() if context is not None else None
    if remaining is not None and remaining <= 0:
        raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded")


def _rpc(method):
    """Maps any exception of a servicer method to its gRPC status and message."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            _check_deadline(context)
            # The call's deadline, and a cancellation when the RPC ends early, reach whatever runs it in chunks.
            deadline = Deadline(context.time_remaining() if context is not None else None)
            if context is not None:
                context.add_callback(deadline.cancel)
            with bound(deadline):
                return method(self, request, context)
        except Exception as error:
            failure = from_exception(error)
            if failure.code == Code.INTERNAL:
                log.exception("Internal error in %s", method.__name__)
            context.abort(failure.grpc_status, truncate_for_grpc(failure.message))

    return wrapper


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict, Classify, Regress, MultiInference, GetModelMetadata.

    Args:
        dataplane: the `serving.dataplane.DataPlane` to call.
        metrics: optional `serving.metrics.Metrics`.
    """

    def __init__(self, dataplane, metrics=None):
        self.dataplane = dataplane
        self.metrics = metrics

    @_rpc
    def Predict(self, request, context):
        return self._tracked(request.model_spec.name, "predict", self._predict, request)

    def _predict(self, request):
        _require_model_spec(request)
        version, label = _version_choice(request.model_spec)
        servable = self.dataplane.resolve(request.model_spec.name, version=version, label=label)
        self.dataplane.limits.check_elements(sum(_declared_elements(proto) for proto in request.inputs.values()))
        result = self.dataplane.predict(
            servable,
            request.model_spec.signature_name,
            dict(request.inputs),
            output_filter=list(request.output_filter),
            decode=lambda alias, proto: array_from_tensor_proto(proto),
        )
        response = predict_pb2.PredictResponse()
        response.model_spec.name = result.model_name
        response.model_spec.version.value = result.version
        response.model_spec.signature_name = result.signature_name
        for alias, array in result.outputs.items():
            response.outputs[alias].CopyFrom(tensor_proto_from_array(array))
        return response

    @_rpc
    def GetModelMetadata(self, request, context):
        _require_model_spec(request)
        version, label = _version_choice(request.model_spec)
        return self.dataplane.metadata(
            request.model_spec.name, version=version, label=label, fields=list(request.metadata_field)
        )

    def _tracked(self, name, api, function, request):
        if self.metrics is None:
            return function(request)
        with self.metrics.track(name, api, "GRPC"):
            return function(request)

    @_rpc
    def Classify(self, request, context):
        return self._tracked(request.model_spec.name, "classify", self._classify, request)

    def _classify(self, request):
        response = classification_pb2.ClassificationResponse()
        return self._on_examples(request, self.dataplane.classify, response, _fill_classification)

    @_rpc
    def Regress(self, request, context):
        return self._tracked(request.model_spec.name, "regress", self._regress, request)

    def _regress(self, request):
        response = regression_pb2.RegressionResponse()
        return self._on_examples(request, self.dataplane.regress, response, _fill_regression)

    def _on_examples(self, request, run, response, fill):
        """Classify/Regress: model spec, servable, run on the request's examples, fill the response."""
        _require_model_spec(request)
        version, label = _version_choice(request.model_spec)
        servable = self.dataplane.resolve(request.model_spec.name, version=version, label=label)
        result = run(servable, request.model_spec.signature_name, _examples_of(request.input))
        _fill_spec(response.model_spec, result)
        fill(response.result, result)
        return response

    @_rpc
    def MultiInference(self, request, context):
        name = request.tasks[0].model_spec.name if request.tasks else ""
        return self._tracked(name, "MultiInference", self._multi_inference, request)

    def _multi_inference(self, request):
        if not request.tasks:
            raise ServingError(Code.INVALID_ARGUMENT, "MultiInferenceRequest must contain at least one task.")
        first = request.tasks[0].model_spec  # TF Serving resolves the servable from the first task
        version, label = _version_choice(first)
        servable = self.dataplane.resolve(first.name, version=version, label=label)
        tasks = [(t.model_spec.name, t.model_spec.signature_name, t.method_name) for t in request.tasks]
        results = self.dataplane.multi_inference(servable, tasks, _examples_of(request.input))
        response = inference_pb2.MultiInferenceResponse()
        for result in results:
            entry = response.results.add()
            _fill_spec(entry.model_spec, result)
            if isinstance(result, ClassifyResult):
                _fill_classification(entry.classification_result, result)
            else:
                _fill_regression(entry.regression_result, result)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus and HandleReloadConfigRequest.

    Args:
        dataplane: the `serving.dataplane.DataPlane` to call.
    """

    def __init__(self, dataplane):
        self.dataplane = dataplane

    @_rpc
    def GetModelStatus(self, request, context):
        _require_model_spec(request)
        version, _ = _version_choice(request.model_spec)
        return self.dataplane.status(request.model_spec.name, version)

    @_rpc
    def HandleReloadConfigRequest(self, request, context):
        models = parse_model_config(request.config)
        self.dataplane.repository.reload_config(models)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = int(Code.OK)
        return response


def add_services(server, dataplane, metrics=None):
    """Registers both services on a `grpc.Server`."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(dataplane, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(dataplane), server)
