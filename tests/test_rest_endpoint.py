"""The REST side's ASGI endpoint on its own: the handler runs in a worker thread bound to the request's deadline,
which a client hang-up or the timeout ends, and the answer is TF Serving's.

Driven through `create_app` with ASGI messages, so each case is exact and fast; `test_server_rest.py` covers the
same app behind uvicorn over real sockets.
"""

import asyncio
import json
import threading
import time

import pytest

from serving.deadline import current
from serving.errors import Code
from serving.limits import Limits
from serving.rest import create_app


class _DataPlane:
    limits = Limits(max_request_size_bytes=100)


class _BlockingHandler:
    """Works, in its worker thread, until its request's deadline ends; records how it ended, then answers late."""

    def __init__(self):
        self.started, self.ended = threading.Event(), threading.Event()
        self.ended_with = None

    def handle(self, method, path, body):
        deadline = current()
        self.started.set()
        while deadline.error is None:
            time.sleep(0.005)
        self.ended_with = deadline.error.code
        self.ended.set()
        time.sleep(0.2)  # a chunk still running: the endpoint must not wait for it to answer a timeout
        return 200, b"{}", "application/json"


def _app(handler, timeout_ms=30000):
    app = create_app(_DataPlane(), timeout_ms=timeout_ms)
    app.endpoint.handler = handler
    return app


def _scope(path="/v1/models/m:predict", length=2):
    return {
        "type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(length).encode())],
    }


async def _call(app, body=b"{}", disconnect_when=None, scope=None):
    """The (status, headers, body) the app sends; `disconnect_when` (an Event) makes the client hang up once set."""
    sent, messages = [], [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop()
        while disconnect_when is None or not disconnect_when.is_set():
            await asyncio.sleep(0.005)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope or _scope(length=len(body)), receive, send)
    if not sent:
        return None
    start, answer = sent
    return start["status"], dict(start["headers"]), answer["body"]


def test_a_client_that_hangs_up_cancels_its_request():
    handler = _BlockingHandler()
    app = _app(handler)
    status, headers, _ = asyncio.run(_call(app, disconnect_when=handler.started))
    app.close()
    assert handler.ended.wait(5) and handler.ended_with == Code.CANCELLED
    assert status == 200 and headers[b"content-type"] == b"application/json"  # written to no one; nothing fails


def test_past_the_timeout_the_answer_is_504_and_the_work_is_told_to_stop():
    handler = _BlockingHandler()
    app = _app(handler, timeout_ms=50)
    status, headers, body = asyncio.run(_call(app))
    app.close()
    assert (status, json.loads(body)) == (504, {"error": "Deadline Exceeded"})
    assert headers[b"content-length"] == str(len(body)).encode()
    assert handler.ended.wait(5) and handler.ended_with == Code.DEADLINE_EXCEEDED


def test_a_body_over_the_limit_is_refused_before_it_is_read():
    app = _app(_BlockingHandler())
    status, _, body = asyncio.run(_call(app, body=b"x" * 101))
    app.close()
    assert status == 400 and "--max_request_size_bytes" in json.loads(body)["error"]


def test_a_client_gone_before_its_body_arrived_gets_no_answer():
    app = _app(_BlockingHandler())

    async def receive():
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(app(_scope(), receive, send))
    app.close()
    assert sent == []


@pytest.mark.parametrize("path", ["/v1/models/m:predict", "/V1/models/m/metadata"])
def test_v1_paths_reach_the_handler_without_the_router(path):
    app = _app(None)
    app.router = None  # a /v1/ path that reached the router would fail here
    seen = []

    class Recording:
        def handle(self, method, path, body):
            seen.append((method, path, body))
            return 200, b"{}", "application/json"

    app.endpoint.handler = Recording()
    status, _, _ = asyncio.run(_call(app, scope=_scope(path)))
    app.close()
    assert status == 200 and seen == [("POST", path, b"{}")]
