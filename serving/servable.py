"""One loaded version of a SavedModel: its signature protos and its functions.

Metadata comes from `saved_model.pb` itself (the meta graph tagged `serve`),
so `GetModelMetadata` returns the same `SignatureDef` protos TF Serving would,
tensor names and all, for any SavedModel (Keras export, `tf.Module`, TF1).
Execution goes through `tf.saved_model.load(...).signatures`; on one thread
(one intra-op and one inter-op thread), through the whole-kernel forms a zoo
export carries beside them (`zoo.export.loaded_forms`), when they give the
signatures' outputs bit for bit on the version's warmup requests. A `Servable`
is immutable once loaded: a request holding one keeps using it even after the
repository has unloaded that version.
"""

import logging
import os

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

from serving.errors import Code, ServingError, from_exception
from serving.warmup import read_warmup_requests, warm_up
from zoo.export import differing_output, loaded_forms
from zoo.layers._loop import runs_on_one_thread

__all__ = [
    "SERVE_TAG",
    "DEFAULT_SIGNATURE",
    "Servable",
    "read_signature_defs",
    "dtype_name",
    "numpy_dtype",
    "shape_string",
]

log = logging.getLogger(__name__)

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"


def dtype_name(dtype_enum):
    """TensorFlow's `DataTypeString` for a `DataType` enum: DT_FLOAT -> "float"."""
    try:
        return types_pb2.DataType.Name(dtype_enum)[len("DT_") :].lower()
    except ValueError:
        return f"unknown dtype {dtype_enum}"


def numpy_dtype(dtype_enum):
    """The NumPy dtype that holds a `DataType` (strings are `object` arrays of bytes)."""
    return np.dtype(tf.dtypes.as_dtype(dtype_enum).as_numpy_dtype)


def shape_string(shape_proto):
    """A `TensorShapeProto` as `[?,1]` (unknown dims `?`, unknown rank `<unknown>`)."""
    if shape_proto.unknown_rank:
        return "<unknown>"
    return "[" + ",".join("?" if d.size < 0 else str(d.size) for d in shape_proto.dim) + "]"


def read_signature_defs(path):
    """The `SignatureDef` map of the `serve` meta graph of the SavedModel at `path`.

    Raises:
        ServingError: NOT_FOUND without `saved_model.pb(txt)`, DATA_LOSS when it
            does not parse, NOT_FOUND when no meta graph carries the `serve` tag.
    """
    saved_model = saved_model_pb2.SavedModel()
    binary, text = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    try:
        if os.path.exists(binary):
            with open(binary, "rb") as f:
                saved_model.ParseFromString(f.read())
        elif os.path.exists(text):
            with open(text, encoding="utf-8") as f:
                text_format.Parse(f.read(), saved_model)
        else:
            raise ServingError(Code.NOT_FOUND, f"SavedModel not found in export directory: {path}")
    except ServingError:
        raise
    except Exception as error:  # a truncated or foreign file: report, never crash the server
        raise ServingError(Code.DATA_LOSS, f"Could not parse SavedModel at {path}: {error}") from error
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    tags = [list(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise ServingError(
        Code.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}. "
        f"Available tags in the SavedModel at {path}: {tags}",
    )


class Servable:
    """One version of one model, loaded and ready to run.

    Args:
        name: model name.
        version: integer version.
        path: the version folder.
        signature_defs: signature name -> `SignatureDef` proto, from the file.
        functions: signature name -> callable taking the inputs as keyword
            tensors and returning a dict of output tensors.
        loaded: the object returned by `tf.saved_model.load`, kept alive
            because the functions reference its variables.
        whole_kernel_signatures: the names of the signatures whose
            whole-kernel forms run in their place.
    """

    def __init__(self, name, version, path, signature_defs, functions, loaded=None, whole_kernel_signatures=()):
        self.name = name
        self.version = int(version)
        self.path = path
        self.signature_defs = signature_defs
        self._functions = functions
        self._loaded = loaded
        self.whole_kernel_signatures = tuple(sorted(whole_kernel_signatures))

    @classmethod
    def load(cls, name, version, path):
        """Loads the SavedModel at `path`.

        Raises:
            ServingError: the SavedModel is missing, corrupt or fails to load
                (the code of TensorFlow's own error where it has one).
        """
        signature_defs = read_signature_defs(path)
        try:
            loaded = tf.saved_model.load(path, tags=[SERVE_TAG])
        except Exception as error:
            raise (
                from_exception(error)
                if isinstance(error, tf.errors.OpError)
                else ServingError(Code.UNKNOWN, f"Failed to load SavedModel at {path}: {type(error).__name__}: {error}")
            ) from error
        servable = cls(name, version, path, signature_defs, dict(loaded.signatures), loaded)
        # A step's column blocks (`zoo.layers._loop.StoredColumnBlocks`) are independent ops for the inter-op
        # threads to run side by side; on one thread they only cost.
        forms = loaded_forms(loaded) if runs_on_one_thread() else {}
        if forms:
            return servable._with_forms(forms)  # its check replays the warmup requests through both
        warm_up(servable.run, path)  # before AVAILABLE, as TF Serving does; a failure fails the load
        return servable

    def _with_forms(self, forms):
        """This version running whole-kernel `forms` in place of its signatures, when they give the signatures'
        outputs bit for bit on every warmup request; else itself, with a warning. Both are warmed up: every
        request runs through each, and a signature that fails its request fails the load, as in `warm_up`."""
        faster = Servable(self.name, self.version, self.path, self.signature_defs, {**self._functions, **forms},
                          self._loaded, whole_kernel_signatures=forms)
        for signature_name, feeds in read_warmup_requests(self.path):
            signature_name = signature_name or DEFAULT_SIGNATURE
            expected = self.run(signature_name, feeds)
            try:
                differing = differing_output(expected, faster.run(signature_name, feeds))
                problem = differing and f"its output {differing!r} differs from the signature's"
            except ServingError as error:  # the signature ran: serve it rather than fail the load
                problem = f"it fails where the signature runs: {error.message}"
            if problem:
                log.warning("Serving %s version %d through its signatures: on a warmup request of %r, the "
                            "whole-kernel form would serve wrong answers (%s).",
                            self.name, self.version, signature_name, problem)
                return self
        log.info("Serving %s version %d through the whole-kernel forms of %s: TensorFlow runs on one thread.",
                 self.name, self.version, ", ".join(faster.whole_kernel_signatures))
        return faster

    def __repr__(self):
        return f"Servable({self.name!r}, version={self.version}, path={self.path!r})"

    def run(self, signature_name, feeds):
        """Runs one signature.

        Args:
            signature_name: a key of `signature_defs` with a loaded function.
            feeds: input alias -> NumPy array, already checked against the
                signature (aliases, dtypes, shapes).

        Returns:
            Output alias -> NumPy array, for every output of the signature.

        Raises:
            ServingError: TensorFlow's run-time error with its own code and
                message (an op's shape check is INVALID_ARGUMENT).
        """
        function = self._functions.get(signature_name)
        if function is None:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" has no runnable function in {self.path}.',
            )
        inputs = self.signature_defs[signature_name].inputs
        try:
            tensors = {
                alias: tf.convert_to_tensor(value, dtype=tf.dtypes.as_dtype(inputs[alias].dtype))
                for alias, value in feeds.items()
            }
            outputs = function(**tensors)
        except tf.errors.OpError as error:
            raise from_exception(error) from error
        except (TypeError, ValueError) as error:  # argument binding; checked earlier, kept as a net
            raise ServingError(Code.INVALID_ARGUMENT, str(error)) from error
        return {alias: _to_numpy(tensor) for alias, tensor in outputs.items()}


def _to_numpy(tensor):
    value = tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)
    return np.asarray(value)
