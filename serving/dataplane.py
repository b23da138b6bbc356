"""The protocol-agnostic data plane: status, metadata, predict, classify and regress.

REST (`serving.rest`) and gRPC (`serving.grpc_service`) decode their requests,
call these methods, and encode what comes back; neither decides anything about
models, versions or tensors. Results are TF Serving's own protos for status and
metadata (the REST JSON is their proto-JSON form) and NumPy arrays for predict.
Every failure is a `ServingError` whose code the single table in
`serving.errors` turns into an HTTP status or a gRPC code.

The checks and their order follow TF Serving's predict path
(servables/tensorflow/predict_util.cc): signature, input count, input aliases
(and tensor decoding), output filter, then dtype and shape, then the run.
Classify, regress and MultiInference follow classifier.cc, regressor.cc and
multi_inference.cc: the signature must carry the matching method_name and one
string input `inputs` fed the serialized tf.Examples (a context example is
prepended byte-wise, which protobuf reads as a merge, as TF Serving does).
"""

import dataclasses
import weakref

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.errors import Code, ServingError, invalid_argument
from serving.limits import Limits
from serving.servable import DEFAULT_SIGNATURE, dtype_name, shape_string

__all__ = [
    "DataPlane",
    "PredictResult",
    "ClassifyResult",
    "RegressResult",
    "SIGNATURE_DEF_FIELD",
    "CLASSIFY_METHOD",
    "REGRESS_METHOD",
    "serialized_examples",
]

SIGNATURE_DEF_FIELD = "signature_def"  # the only metadata field TF Serving serves

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

_STATE_ENUM = get_model_status_pb2.ModelVersionStatus.State


@dataclasses.dataclass(frozen=True)
class PredictResult:
    """Outputs of one predict call and the servable that produced them.

    Attributes:
        outputs: output alias -> NumPy array.
        model_name: resolved model name.
        version: version that answered.
        signature_name: resolved signature (`serving_default` when the request left it empty).
    """

    outputs: dict
    model_name: str
    version: int
    signature_name: str


@dataclasses.dataclass(frozen=True)
class ClassifyResult:
    """One classify call: per example, `labels[i]` (bytes) and `scores[i]` (float) for each class.

    Attributes:
        labels: (B, C) object array of bytes, or None when the signature has no `classes`.
        scores: (B, C) float32 array, or None when the signature has no `scores`.
        model_name, version, signature_name: the servable and signature that answered.
    """

    labels: object
    scores: object
    model_name: str
    version: int
    signature_name: str

    @property
    def num_classes(self):
        return (self.labels if self.labels is not None else self.scores).shape[1]


@dataclasses.dataclass(frozen=True)
class RegressResult:
    """One regress call: `values` is a float32 (B,) array, one value per example."""

    values: object
    model_name: str
    version: int
    signature_name: str


def serialized_examples(examples, context=None):
    """The `inputs` tensor of classify/regress: each serialized example, after the context's bytes.

    Args:
        examples: `tf.train.Example` protos or their serialized bytes.
        context: optional Example (or bytes) shared by all; protobuf parses
            the concatenation as the context merged with each example.
    """
    prefix = b"" if context is None else _as_bytes(context)
    return [prefix + _as_bytes(example) for example in examples]


def _as_bytes(example):
    return example if isinstance(example, bytes) else example.SerializeToString()


def _debug_string(signature):
    return text_format.MessageToString(signature)


def _classify_signature_checks(signature):
    """(input alias, output aliases) of a classification SignatureDef (PreProcessClassification)."""
    _check_method(signature, CLASSIFY_METHOD, "classification")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if "inputs" not in signature.inputs:
        raise ServingError(
            Code.FAILED_PRECONDITION, f"No classification inputs found in SignatureDef: {_debug_string(signature)}"
        )
    outputs = [alias for alias in ("classes", "scores") if alias in signature.outputs]
    if not outputs:
        raise ServingError(
            Code.FAILED_PRECONDITION,
            'Expected classification signature outputs to contain at least one of "classes" or "scores". '
            f"Signature was: {_debug_string(signature)}",
        )
    return "inputs", outputs


def _regress_signature_checks(signature):
    """(input alias, output aliases) of a regression SignatureDef (PreProcessRegression)."""
    _check_method(signature, REGRESS_METHOD, "regression")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise ServingError(
            Code.FAILED_PRECONDITION, f"No regression inputs found in SignatureDef: {_debug_string(signature)}"
        )
    if "outputs" not in signature.outputs:
        raise ServingError(
            Code.FAILED_PRECONDITION, f"No regression outputs found in SignatureDef: {_debug_string(signature)}"
        )
    return "inputs", ["outputs"]


def _check_method(signature, method, kind):
    if signature.method_name != method:
        raise invalid_argument(f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")


def _shape_debug(array):
    return "[" + ",".join(str(n) for n in array.shape) + "]"


def _dtype_enum_name(array):
    enum = _dtype_enum_of(array)
    return types_pb2.DataType.Name(enum) if enum is not None else str(array.dtype)


def _checked_class_tensor(array, name, dtype, num_examples):
    if array.ndim != 2:
        raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {_shape_debug(array)}")
    if _dtype_enum_name(array) != dtype:
        raise invalid_argument(f"Expected {name} Tensor of {dtype}. Got: {_dtype_enum_name(array)}")
    if array.shape[0] != num_examples:
        raise invalid_argument(f"Expected {name} output batch size of {num_examples}. Got: {array.shape[0]}")
    return array


def _classify_outputs(outputs, num_examples):
    """(labels, scores) checked as PostProcessClassificationResult does."""
    labels = outputs.get("classes")
    scores = outputs.get("scores")
    if labels is not None:
        labels = _checked_class_tensor(np.asarray(labels), "classes", "DT_STRING", num_examples)
    if scores is not None:
        scores = _checked_class_tensor(np.asarray(scores), "scores", "DT_FLOAT", num_examples)
    if labels is not None and scores is not None and labels.shape[1] != scores.shape[1]:
        raise invalid_argument(
            f"Tensors class and score should match in dim_size(1). Got {labels.shape[1]} vs. {scores.shape[1]}"
        )
    return labels, scores


def _regress_outputs(outputs, num_examples):
    """The (B,) values, checked as PostProcessRegressionResult does."""
    values = np.asarray(outputs["outputs"])
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {_shape_debug(values)}"
        )
    if values.shape[0] != num_examples:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. {values.shape[0]}"
        )
    if _dtype_enum_name(values) != "DT_FLOAT":
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_enum_name(values)}")
    return values.reshape(-1)


_METHODS = {  # method_name -> (signature checks, output post-processing)
    CLASSIFY_METHOD: (_classify_signature_checks, _classify_outputs),
    REGRESS_METHOD: (_regress_signature_checks, _regress_outputs),
}


def _check_input_names(signature, inputs):
    expected, sent = set(signature.inputs), set(inputs)
    if len(inputs) != len(signature.inputs):
        raise invalid_argument(
            f"input size does not match signature: {len(inputs)}!={len(signature.inputs)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
        )


def _check_alias(signature, alias):
    if alias not in signature.inputs:
        raise invalid_argument(
            f"input tensor alias not found in signature: {alias}. "
            f"Inputs expected to be in the set {{{','.join(sorted(signature.inputs))}}}."
        )


def _output_aliases(signature, output_filter):
    if not output_filter:
        return sorted(signature.outputs)
    seen = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return seen


def _dtype_enum_of(array):
    try:
        return tf.dtypes.as_dtype(array.dtype).as_datatype_enum
    except TypeError:
        return None


def _check_tensor(index, alias, array, info):
    actual = _dtype_enum_of(array)
    if actual != info.dtype:
        provided = dtype_name(actual) if actual is not None else str(array.dtype)
        raise invalid_argument(f"Expects arg[{index}] to be {dtype_name(info.dtype)} but {provided} is provided")
    shape = info.tensor_shape
    if shape.unknown_rank:
        return
    dims = [d.size for d in shape.dim]
    if len(dims) != array.ndim or any(d >= 0 and d != n for d, n in zip(dims, array.shape, strict=True)):
        received = "[" + ",".join(str(n) for n in array.shape) + "]"
        raise invalid_argument(
            f"Input {alias!r} has an incompatible shape: the signature expects {shape_string(shape)}, "
            f"received {received}."
        )


class DataPlane:
    """Status, metadata and predict over a `ModelRepository`.

    Args:
        repository: the `serving.repository.ModelRepository` to serve from.
        limits: the `serving.limits.Limits` checked before a signature runs.
        executor: runs checked requests (`serving.execution.Executor`:
            batching, chunked generation); None runs each in its own thread.
    """

    def __init__(self, repository, limits=None, executor=None):
        self.repository = repository
        self.limits = limits if limits is not None else Limits()
        self.executor = executor
        self._metadata_responses = weakref.WeakKeyDictionary()  # servable -> its packed metadata, while it is loaded

    def resolve(self, name, version=None, label=None):
        """The `Servable` for (name, version | label | latest); see `ModelRepository.resolve`."""
        return self.repository.resolve(name, version=version, label=label)

    def status(self, name, version=None, label=None):
        """A `GetModelStatusResponse`, newest version first.

        A label is accepted and ignored, as in TF Serving (status reports
        every version unless a version number is given).
        """
        del label
        response = get_model_status_pb2.GetModelStatusResponse()
        for state in self.repository.status(name, version):
            entry = response.model_version_status.add()
            entry.version = state.version
            entry.state = _STATE_ENUM.Value(state.state)
            entry.status.error_code = int(state.error_code)
            entry.status.error_message = state.error_message
        return response

    def metadata(self, name, version=None, label=None, fields=(SIGNATURE_DEF_FIELD,)):
        """A `GetModelMetadataResponse` with the `SignatureDefMap` packed under `signature_def`.

        Raises:
            ServingError: INVALID_ARGUMENT when no field or an unknown field is
                asked for; resolution errors as in `resolve`.
        """
        if not fields:
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        return self.metadata_of(self.resolve(name, version=version, label=label))

    def metadata_of(self, servable):
        """`metadata`'s response for a resolved servable (a copy: the caller may change it)."""
        cached = self._metadata_responses.get(servable)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.CopyFrom(cached if cached is not None else self._build_metadata(servable))
        return response

    def _build_metadata(self, servable):
        # A version's signatures never change, and 64 streams starting at once each ask for them:
        # packing the map once per servable took most of their time to first piece.
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        self._metadata_responses[servable] = response
        return response

    def predict(self, servable, signature_name, inputs, output_filter=(), decode=None):
        """Runs one signature of a resolved servable.

        Args:
            servable: from `resolve`; pinned by the caller so a hot swap in
                between cannot change the version mid-request.
            signature_name: empty for `serving_default`.
            inputs: input alias -> array-like (or anything `decode` reads).
            output_filter: output aliases to return (all when empty).
            decode: optional `(alias, value) -> np.ndarray`, applied after the
                alias checks (gRPC passes its TensorProto reader here).

        Returns:
            A `PredictResult`.

        Raises:
            ServingError: FAILED_PRECONDITION for an unknown signature,
                INVALID_ARGUMENT for wrong aliases, dtypes or shapes or
                inputs past the server's `limits`, and
                TensorFlow's own code and message for run-time errors.
        """
        key = signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(key)
        if signature is None:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        _check_input_names(signature, inputs)
        feeds = {}
        for alias, value in inputs.items():
            _check_alias(signature, alias)
            feeds[alias] = self._decode(alias, value, decode)
        aliases = _output_aliases(signature, list(output_filter))
        for index, (alias, array) in enumerate(feeds.items()):
            _check_tensor(index, alias, array, signature.inputs[alias])
        self.limits.check_inputs(feeds)
        outputs = self._run(servable, key, feeds)
        return PredictResult({a: outputs[a] for a in aliases}, servable.name, servable.version, key)

    def _run(self, servable, key, feeds):
        if self.executor is None:
            return servable.run(key, feeds)
        return self.executor.run(servable, key, feeds)

    @staticmethod
    def _decode(alias, value, decode):
        if decode is None:
            return np.asarray(value)
        try:
            return np.asarray(decode(alias, value))
        except ServingError:
            raise
        except Exception as error:  # a TensorProto whose content does not match its shape or dtype
            raise invalid_argument(f"tensor parsing error: {alias}") from error

    # ------------------------------------------------ classify, regress, multi

    def classify(self, servable, signature_name, examples):
        """Runs a classification signature on serialized tf.Examples.

        Args:
            servable: from `resolve`.
            signature_name: empty for `serving_default`.
            examples: serialized tf.Example bytes (see `serialized_examples`).

        Returns:
            A `ClassifyResult`.

        Raises:
            ServingError: INVALID_ARGUMENT for an unknown signature, a wrong
                method_name, no examples or outputs of the wrong shape or
                dtype; FAILED_PRECONDITION for a signature without the
                `inputs` / `classes` / `scores` aliases.
        """
        key, labels_scores = self._run_examples(servable, signature_name, examples, CLASSIFY_METHOD)
        return ClassifyResult(*labels_scores, servable.name, servable.version, key)

    def regress(self, servable, signature_name, examples):
        """Runs a regression signature on serialized tf.Examples; see `classify`. Returns a `RegressResult`."""
        key, values = self._run_examples(servable, signature_name, examples, REGRESS_METHOD)
        return RegressResult(values, servable.name, servable.version, key)

    def _run_examples(self, servable, signature_name, examples, method):
        key = signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(key)
        if signature is None:
            raise invalid_argument(f"No signature was found with the name: {key}")
        checks, post_process = _METHODS[method]
        input_alias, _ = checks(signature)
        outputs = self._run_on_examples(servable, key, input_alias, examples)
        return key, post_process(outputs, len(examples))

    def _run_on_examples(self, servable, key, input_alias, examples):
        if not examples:
            raise invalid_argument("Input is empty.")
        tensor = np.empty(len(examples), dtype=object)
        tensor[:] = list(examples)
        return self._run(servable, key, {input_alias: tensor})

    def multi_inference(self, servable, tasks, examples):
        """Several classify/regress signatures of one servable on the same examples.

        Args:
            servable: resolved from the first task's model spec.
            tasks: (model name, signature name, method name) per task.
            examples: serialized tf.Example bytes.

        Returns:
            A list of `ClassifyResult` / `RegressResult`, one per task.

        Raises:
            ServingError: INVALID_ARGUMENT (empty or differing model names,
                a signature named twice or missing, signatures reading
                different input tensors), UNIMPLEMENTED for another method.
        """
        plan, input_name = [], None
        for model_name, signature_name, method in tasks:
            key, signature = self._multi_task_signature(servable, plan, model_name, signature_name)
            if method not in _METHODS:
                raise ServingError(Code.UNIMPLEMENTED, f"Unsupported signature method_name: {method}")
            alias, _ = _METHODS[method][0](signature)
            tensor_name = signature.inputs[alias].name
            if input_name is not None and tensor_name != input_name:
                raise invalid_argument("Input tensor must be the same for all Signatures.")
            input_name = tensor_name
            plan.append((key, method, alias))
        if not plan:
            raise invalid_argument("MultiInferenceRequest must contain at least one task.")
        results = []
        for key, method, alias in plan:
            outputs = self._run_on_examples(servable, key, alias, examples)
            value = _METHODS[method][1](outputs, len(examples))
            if method == CLASSIFY_METHOD:
                results.append(ClassifyResult(*value, servable.name, servable.version, key))
            else:
                results.append(RegressResult(value, servable.name, servable.version, key))
        return results

    @staticmethod
    def _multi_task_signature(servable, plan, model_name, signature_name):
        if not model_name:
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if model_name != servable.name:
            raise invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        key = signature_name or DEFAULT_SIGNATURE
        if any(key == planned for planned, _, _ in plan):
            raise invalid_argument(f"Duplicate evaluation of signature: {key}")
        signature = servable.signature_defs.get(key)
        if signature is None:
            raise invalid_argument(f"Requested signature not found in model graph: {key}")
        return key, signature
