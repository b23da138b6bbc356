"""Canonical error codes and the one table that maps them to HTTP and gRPC.

Every failure inside the server is a `ServingError(code, message)`. The REST
adapter answers `{"error": message}` with `HTTP_STATUS[code]`, the gRPC adapter
aborts with `GRPC_STATUS[code]` and the message truncated as TF Serving does.
The table is read from TF Serving's `ToHTTPStatusCode` (see
`docs/tf-serving-protocol.md`); nothing else in the package decides a
status. The client raises the same exception type, rebuilt from what came
over the wire, so callers handle one exception whichever protocol they use.
"""

import enum
import re

import grpc

__all__ = [
    "Code",
    "ServingError",
    "invalid_argument",
    "HTTP_STATUS",
    "GRPC_STATUS",
    "GRPC_MESSAGE_LIMIT",
    "truncate_for_grpc",
    "graph_message",
    "from_exception",
    "from_http_status",
    "from_grpc_error",
]


class Code(enum.IntEnum):
    """TensorFlow's canonical status codes (`tensorflow/core/protobuf/error_codes.proto`)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# code -> (HTTP status, gRPC status), exactly TF Serving's mapping.
_TABLE = {
    Code.OK: (200, grpc.StatusCode.OK),
    Code.CANCELLED: (499, grpc.StatusCode.CANCELLED),
    Code.UNKNOWN: (500, grpc.StatusCode.UNKNOWN),
    Code.INVALID_ARGUMENT: (400, grpc.StatusCode.INVALID_ARGUMENT),
    Code.DEADLINE_EXCEEDED: (504, grpc.StatusCode.DEADLINE_EXCEEDED),
    Code.NOT_FOUND: (404, grpc.StatusCode.NOT_FOUND),
    Code.ALREADY_EXISTS: (409, grpc.StatusCode.ALREADY_EXISTS),
    Code.PERMISSION_DENIED: (403, grpc.StatusCode.PERMISSION_DENIED),
    Code.RESOURCE_EXHAUSTED: (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    Code.FAILED_PRECONDITION: (400, grpc.StatusCode.FAILED_PRECONDITION),
    Code.ABORTED: (409, grpc.StatusCode.ABORTED),
    Code.OUT_OF_RANGE: (400, grpc.StatusCode.OUT_OF_RANGE),
    Code.UNIMPLEMENTED: (501, grpc.StatusCode.UNIMPLEMENTED),
    Code.INTERNAL: (500, grpc.StatusCode.INTERNAL),
    Code.UNAVAILABLE: (503, grpc.StatusCode.UNAVAILABLE),
    Code.DATA_LOSS: (500, grpc.StatusCode.DATA_LOSS),
    Code.UNAUTHENTICATED: (401, grpc.StatusCode.UNAUTHENTICATED),
}
HTTP_STATUS = {code: http for code, (http, _) in _TABLE.items()}
GRPC_STATUS = {code: status for code, (_, status) in _TABLE.items()}

# Several codes share an HTTP status; a client seeing only the status gets the
# most common code behind it (the message still says what went wrong).
_CODE_FOR_HTTP = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    409: Code.ABORTED,
    429: Code.RESOURCE_EXHAUSTED,
    499: Code.CANCELLED,
    500: Code.INTERNAL,
    501: Code.UNIMPLEMENTED,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
}

# TF Serving cuts gRPC error messages at 1 KiB (model_servers/grpc_status_util.cc).
GRPC_MESSAGE_LIMIT = 1024
_TRUNCATED = "...TRUNCATED"


class ServingError(Exception):
    """A request failed with a canonical `code` and a human-readable `message`.

    Raised by the server's data plane and by `serving.client.Client` alike.

    Args:
        code: a `Code` (or its integer value).
        message: what was wrong, as TF Serving would word it.
        http_status: the status the client actually received over REST, when
            known; defaults to the table's status for `code`.
    """

    def __init__(self, code, message, http_status=None):
        self.code = Code(code)
        self.message = str(message)
        self._http_status = http_status
        super().__init__(f"{self.code.name}: {self.message}")

    @property
    def http_status(self):
        """HTTP status of this error (TF Serving's table unless received otherwise)."""
        return self._http_status if self._http_status is not None else HTTP_STATUS[self.code]

    @property
    def grpc_status(self):
        """The `grpc.StatusCode` of this error."""
        return GRPC_STATUS[self.code]

    def __reduce__(self):
        return (type(self), (self.code, self.message, self._http_status))


def invalid_argument(message):
    """The `ServingError` of a bad request: INVALID_ARGUMENT, HTTP 400."""
    return ServingError(Code.INVALID_ARGUMENT, message)


def truncate_for_grpc(message):
    """Cuts `message` to TF Serving's gRPC limit, marking the cut with `...TRUNCATED`."""
    if len(message) <= GRPC_MESSAGE_LIMIT:
        return message
    return message[:GRPC_MESSAGE_LIMIT] + _TRUNCATED


# What TensorFlow's Python runtime wraps around a graph's own error (atomic_function.py's
# InterpolateRuntimeError): a header, then per node "Detected at node ... defined at (most recent call
# last):" and its Python frames or "<stack traces unavailable>"; and the eager " [Op:<function>]" suffix.
# TF Serving runs graphs from C++ and sends the graph's message alone.
_PREAMBLE_HEADER = "Graph execution error:\n"
_PREAMBLE_LINE = re.compile(
    r"Detected at node .* defined at \(most recent call last\):"  # one per node the error names
    r"|<stack traces unavailable>|  .*|"  # then its frames ("  File ...", "    code"), or none; blank lines
)
_EAGER_SUFFIX = re.compile(r" \[Op:[^\]\s]*\]( name: .*)?$")


def graph_message(message):
    """An op error's message as the graph raised it, without the preamble and suffix Python's runtime adds."""
    if message.startswith(_PREAMBLE_HEADER):
        lines = message.split("\n")[1:]
        while lines and _PREAMBLE_LINE.fullmatch(lines[0]):
            lines.pop(0)
        message = "\n".join(lines)
    return _EAGER_SUFFIX.sub("", message)


def from_exception(error):
    """The `ServingError` for any exception raised while serving a request.

    `tf.errors.OpError` keeps its own canonical code and the graph's own
    message (for example an op's shape check is INVALID_ARGUMENT with the op's
    words), without the "Graph execution error: ... Detected at node ..."
    preamble TensorFlow's Python runtime adds (see `graph_message`); anything
    else is INTERNAL. Recognised by duck typing so this module never imports TF.
    """
    if isinstance(error, ServingError):
        return error
    code = getattr(error, "error_code", None)
    message = getattr(error, "message", None)
    if isinstance(code, int) and isinstance(message, str) and 0 < code <= max(Code):
        return ServingError(code, graph_message(message))
    return ServingError(Code.INTERNAL, f"{type(error).__name__}: {error}")


def from_http_status(status, message):
    """Client side: the `ServingError` for a non-200 REST answer."""
    return ServingError(_CODE_FOR_HTTP.get(status, Code.UNKNOWN), message, http_status=status)


def from_grpc_error(error):
    """Client side: the `ServingError` for a `grpc.RpcError`."""
    status = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    code = Code[status.name] if status is not None and status.name in Code.__members__ else Code.UNKNOWN
    return ServingError(code, details or "")
