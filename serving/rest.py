"""TF Serving's REST API over the data plane, as a Starlette app.

Routing is TF Serving's (model_servers/http_rest_api_util.cc): only paths
matching `(?i)/v1/.*` reach the handler, POST paths must match the predict
regex and GET paths the status/metadata regex, and anything else under /v1/
is 400 `Malformed request: <METHOD> <path>`. The regexes run on the raw path,
then the model name and label are percent-decoded, as TF Serving does. Every
answer from the handler is `application/json`; errors are `{"error": msg}`
with the status from `serving.errors`.

`RestHandler.handle` is plain synchronous Python (method, path, body) ->
(status, body); the ASGI glue runs it in a worker thread (`--rest_api_num_threads`
of them) so TensorFlow never blocks the event loop, and answers 504 past
`--rest_api_timeout_in_ms`.
"""

import asyncio
import concurrent.futures
import json
import re
import urllib.parse
import weakref

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.routing import Route
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import json_codec
from serving.dataplane import SIGNATURE_DEF_FIELD
from serving.deadline import DEADLINE_EXCEEDED_MESSAGE, Deadline, bound
from serving.errors import Code, ServingError, from_exception, invalid_argument
from serving.execution import DEFAULT_REST_API_NUM_THREADS
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.servable import DEFAULT_SIGNATURE

__all__ = ["RestHandler", "RestApp", "create_app", "METRICS_PATH", "JSON_CONTENT_TYPE"]

METRICS_PATH = "/monitoring/prometheus/metrics"
JSON_CONTENT_TYPE = "application/json"

_FLAGS = re.IGNORECASE | re.ASCII
_V1 = re.compile(r"/v1/.*", _FLAGS | re.DOTALL)
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", _FLAGS
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", _FLAGS
)
_INT64_MAX = 2**63 - 1


def _parse_route(method, path):
    """(name, version, label, verb) from a /v1/ path, or None when no regex matches.

    Raises:
        ServingError: INVALID_ARGUMENT when the version does not fit int64.
    """
    if method == "POST":
        match = _PREDICT.fullmatch(path)
    elif method == "GET":
        match = _STATUS.fullmatch(path)
    else:
        return None
    if match is None:
        return None
    name, version_text, label, verb = match.groups()
    version = None
    if version_text:
        version = int(version_text)
        if version > _INT64_MAX:
            raise invalid_argument(f"Failed to convert version: {version_text} to numeric.")
    name = urllib.parse.unquote(name) if name else ""
    label = urllib.parse.unquote(label) if label else None
    return name, version, label, verb or ""


def _malformed(method, path):
    return invalid_argument(f"Malformed request: {method} {path}")


def _proto_json(message, preserve_names):
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=preserve_names
    )


class RestHandler:
    """TF Serving's REST handler over a `DataPlane`.

    Args:
        dataplane: the `serving.dataplane.DataPlane` to call.
        metrics: optional `serving.metrics.Metrics` counting predict requests.
    """

    def __init__(self, dataplane, metrics=None):
        self.dataplane = dataplane
        self.metrics = metrics
        self._runners = {"predict": self._run_predict, "classify": self._run_classify, "regress": self._run_regress}
        self._metadata_texts = weakref.WeakKeyDictionary()  # servable -> its metadata JSON (signatures never change)

    def handle(self, method, path, body):
        """Answers one request.

        Args:
            method: HTTP method.
            path: the raw (still percent-encoded) path, without query string.
            body: the request body (bytes).

        Returns:
            (HTTP status, body bytes, content type).
        """
        if path == METRICS_PATH and method == "GET" and self.metrics is not None:
            return 200, self.metrics.exposition(), METRICS_CONTENT_TYPE
        if not _V1.fullmatch(path):
            return 404, b"Not Found", "text/plain"
        try:
            return 200, self._dispatch(method, path, body).encode("utf-8"), JSON_CONTENT_TYPE
        except Exception as error:  # every failure becomes {"error": ...}, never a bare 500 page
            failure = from_exception(error)
            return failure.http_status, _error_body(failure), JSON_CONTENT_TYPE

    def _dispatch(self, method, path, body):
        route = _parse_route(method, path)
        if route is None:
            raise _malformed(method, path)
        name, version, label, verb = route
        if method == "POST":
            run = self._runners.get(verb)  # the verb is case-sensitive although the regex is not
            if run is None:
                raise _malformed(method, path)
            if self.metrics is None:
                return run(name, version, label, body)
            with self.metrics.track(name, verb, "REST"):
                return run(name, version, label, body)
        if not name:
            raise invalid_argument("Missing model name in request.")
        if verb == "metadata":  # "METADATA" matches the regex but, as in TF Serving, means status
            return self._metadata(name, version, label)
        return json.dumps(_proto_json(self.dataplane.status(name, version, label), preserve_names=False))

    def _metadata(self, name, version, label):
        servable = self.dataplane.resolve(name, version=version, label=label)
        text = self._metadata_texts.get(servable)
        if text is None:
            text = self._metadata_texts[servable] = self._metadata_text(servable)
        return text

    def _metadata_text(self, servable):
        response = self.dataplane.metadata_of(servable)
        unpacked = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(unpacked)
        document = {
            "model_spec": _proto_json(response.model_spec, preserve_names=True),
            "metadata": {"signature_def": _proto_json(unpacked, preserve_names=True)},
        }
        return json.dumps(document)

    def _run_predict(self, name, version, label, body):
        # TF Serving's order: parse JSON, read signature_name, resolve the
        # servable and signature, then parse tensors (bad JSON to an unknown
        # model is 400, not 404).
        doc = json_codec.parse_body(body)
        signature_name = json_codec.signature_name_of(doc)
        servable = self.dataplane.resolve(name, version=version, label=label)
        key = signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(key)
        if signature is None:
            raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
        inputs, fmt = json_codec.decode_inputs(doc, signature.inputs, signature_name)
        result = self.dataplane.predict(servable, signature_name, inputs)
        return json_codec.encode_outputs(result.outputs, fmt)

    def _examples_request(self, name, version, label, body):
        # TF Serving reads the whole request (examples too) before resolving the model.
        doc = json_codec.parse_body(body)
        signature_name = json_codec.signature_name_of(doc)
        examples = json_codec.decode_examples(doc)
        return self.dataplane.resolve(name, version=version, label=label), signature_name, examples

    def _run_classify(self, name, version, label, body):
        result = self.dataplane.classify(*self._examples_request(name, version, label, body))
        return json_codec.encode_classify(result.labels, result.scores)

    def _run_regress(self, name, version, label, body):
        result = self.dataplane.regress(*self._examples_request(name, version, label, body))
        return json_codec.encode_regress(result.values)


def _error_body(error):
    return json.dumps({"error": error.message}, ensure_ascii=False).encode("utf-8")


class _Endpoint:
    """ASGI app for TF Serving's paths: reads the body, runs the handler in a worker thread, writes the answer.

    Plain ASGI on asyncio and a thread pool of its own, not Starlette's request
    and response objects and anyio's task groups, whose cost showed in the
    server's profile under 64 concurrent REST streams (BENCHMARKS.md, "Serving
    under load").

    Args:
        handler: the `RestHandler`.
        timeout_ms: per-request deadline; 0 or None = none.
        limits: the `serving.limits.Limits` bounding the body size.
        num_threads: worker threads; requests beyond them wait for one (a
            `generate` request holds its thread until its rows are done, so
            batching merges at most this many REST requests).
    """

    def __init__(self, handler, timeout_ms, limits, num_threads=DEFAULT_REST_API_NUM_THREADS):
        self.handler = handler
        self.timeout_s = timeout_ms / 1000 if timeout_ms and timeout_ms > 0 else None
        self.limits = limits
        self._pool = concurrent.futures.ThreadPoolExecutor(num_threads, thread_name_prefix="rest-worker")

    async def __call__(self, scope, receive, send):
        try:
            body = await self._read_body(scope, receive)
        except ServingError as error:
            await _answer(send, error.http_status, _error_body(error), JSON_CONTENT_TYPE)
            return
        if body is None:  # the client left before sending the whole body: no one to answer
            return
        raw = scope.get("raw_path")
        path = raw.decode("latin-1").split("?", 1)[0] if raw else scope["path"]
        # A TensorFlow call cannot be stopped; past the timeout, or once the client hangs up, the
        # deadline tells whatever runs the request in chunks to stop before its next one.
        deadline = Deadline(self.timeout_s)
        await _answer(send, *await self._handle(scope["method"], path, body, receive, deadline))

    async def _read_body(self, scope, receive):
        """The body (None if the client disconnected first), refused (ServingError) as soon as it is known to be
        over the size limit."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                self.limits.check_body_size(int(value))  # before reading a byte of it
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            self.limits.check_body_size(size)  # chunked bodies declare no length
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _handle(self, method, path, body, receive, deadline):
        """(status, body, content type): the handler's answer, computed in a worker thread while the connection
        is watched, or 504 past the deadline."""

        def handle():
            with bound(deadline):
                return self.handler.handle(method, path, body)

        async def watch_disconnect():
            while (await receive())["type"] != "http.disconnect":
                pass
            deadline.cancel(Code.CANCELLED, "The client closed the connection")

        loop = asyncio.get_running_loop()
        answer = loop.run_in_executor(self._pool, handle)
        watcher = loop.create_task(watch_disconnect())
        try:
            # shield: past the timeout the thread runs on (it cannot be stopped) while the client gets its 504
            return await asyncio.wait_for(asyncio.shield(answer), self.timeout_s)
        except asyncio.TimeoutError:
            deadline.cancel(Code.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE)
            return 504, json.dumps({"error": DEADLINE_EXCEEDED_MESSAGE}).encode("utf-8"), JSON_CONTENT_TYPE
        except BaseException:  # the server is shutting down: let the work stop within a chunk
            deadline.cancel(Code.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE)
            raise
        finally:
            watcher.cancel()

    def close(self):
        """Lets the worker threads end once their requests are done; no new request is taken."""
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _answer(send, status, content, media_type):
    headers = [(b"content-type", media_type.encode("latin-1")), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


class RestApp:
    """The ASGI app serving TF Serving's REST API: `/v1/` paths go straight to the endpoint; every other
    path (the metrics, the model browser's pages, anything unknown) through a Starlette router to the same
    endpoint, past the browser's routes."""

    def __init__(self, endpoint, browser=None):
        self.endpoint = endpoint
        extra = browser.routes() if browser is not None else []
        self.router = Starlette(routes=[*extra, Route("/{path:path}", endpoint=endpoint)])

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and _V1.match(scope["path"]):
            await self.endpoint(scope, receive, send)
        else:
            await self.router(scope, receive, send)

    def close(self):
        """Ends the endpoint's worker threads once their requests are done (after the server stopped)."""
        self.endpoint.close()


def create_app(dataplane, metrics=None, timeout_ms=30000, browser=None, num_threads=DEFAULT_REST_API_NUM_THREADS):
    """The ASGI app (`RestApp`) serving TF Serving's REST API.

    Args:
        dataplane: a `serving.dataplane.DataPlane` (its `limits` bound the body size).
        metrics: optional `serving.metrics.Metrics` (enables /monitoring/prometheus/metrics).
        timeout_ms: per-request deadline (TF Serving's `--rest_api_timeout_in_ms`); 0 = none.
        browser: optional `serving.model_browser.ModelBrowser`, whose read-only GET routes under
            /browser/ come before TF Serving's; every other request reaches the handler as without it.
        num_threads: threads running requests (`--rest_api_num_threads`).
    """
    endpoint = _Endpoint(RestHandler(dataplane, metrics), timeout_ms, dataplane.limits, num_threads)
    return RestApp(endpoint, browser)
