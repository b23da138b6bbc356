"""TF Serving's batching and monitoring config messages, for parsing the deploy configs.

The `tensorflow-serving-api` wheel ships `model_server_config_pb2` but not
`session_bundle_config_pb2` (BatchingParameters) nor `monitoring_config_pb2`
(MonitoringConfig). This module declares those two messages at run time with
the package, names, types and field numbers of TF Serving's own .proto files
(servables/tensorflow/session_bundle_config.proto, config/monitoring_config.proto),
so `text_format` parses `--batching_parameters_file` and
`--monitoring_config_file` exactly as `tensorflow_model_server` does and
rejects any field it would reject. Only the fields both files have carried
since TF Serving 1.x are declared (BatchingParameters fields 1-7).
"""

import google.protobuf.wrappers_pb2  # noqa: F401  (registers wrappers.proto in the default pool)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

__all__ = ["BatchingParameters", "MonitoringConfig", "PrometheusConfig", "parse_text"]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow.serving"


def _message(file_proto, name, fields):
    message = file_proto.message_type.add(name=name)
    for number, (field_name, kind, type_name, label) in enumerate(fields, start=1):
        if field_name is None:
            continue
        field = message.field.add(name=field_name, number=number, type=kind, label=label or _F.LABEL_OPTIONAL)
        if type_name:
            field.type_name = type_name


def _build():
    pool = descriptor_pool.Default()
    name = "rnn_zoo/tensorflow_serving_configs.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        file_proto = descriptor_pb2.FileDescriptorProto(
            name=name, package=_PACKAGE, syntax="proto3", dependency=["google/protobuf/wrappers.proto"]
        )
        int64 = (_F.TYPE_MESSAGE, ".google.protobuf.Int64Value", None)
        _message(
            file_proto,
            "BatchingParameters",
            [
                ("max_batch_size", *int64),
                ("batch_timeout_micros", *int64),
                ("max_enqueued_batches", *int64),
                ("num_batch_threads", *int64),
                ("thread_pool_name", _F.TYPE_MESSAGE, ".google.protobuf.StringValue", None),
                ("allowed_batch_sizes", _F.TYPE_INT64, None, _F.LABEL_REPEATED),
                ("pad_variable_length_inputs", _F.TYPE_BOOL, None, None),
            ],
        )
        _message(
            file_proto, "PrometheusConfig", [("enable", _F.TYPE_BOOL, None, None), ("path", _F.TYPE_STRING, None, None)]
        )
        prometheus = f".{_PACKAGE}.PrometheusConfig"
        _message(file_proto, "MonitoringConfig", [("prometheus_config", _F.TYPE_MESSAGE, prometheus, None)])
        pool.Add(file_proto)
    classes = {}
    for message_name in ("BatchingParameters", "PrometheusConfig", "MonitoringConfig"):
        descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.{message_name}")
        classes[message_name] = message_factory.GetMessageClass(descriptor)
    return classes


_CLASSES = _build()
BatchingParameters = _CLASSES["BatchingParameters"]
PrometheusConfig = _CLASSES["PrometheusConfig"]
MonitoringConfig = _CLASSES["MonitoringConfig"]


def parse_text(text, message_class):
    """A text-format config as `message_class` (raises `text_format.ParseError` on any unknown field)."""
    return text_format.Parse(text, message_class())
