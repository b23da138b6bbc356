"""How long a request is still worth computing: its deadline and its cancellation.

A TensorFlow call cannot be interrupted, so the server stops a request
between calls: the REST and gRPC adapters bind a `Deadline` to the request's
thread (`bound`), and whatever runs it in pieces (the request batcher before a
batch, the generation engine before each chunk) asks `current()` whether the
request is still wanted. The REST adapter cancels it on
`--rest_api_timeout_in_ms` or when the client disconnects; gRPC gives the
call's own deadline and cancels it when the RPC ends early.
"""

import contextlib
import contextvars
import threading
import time

from serving.errors import Code, ServingError

__all__ = ["Deadline", "bound", "current", "DEADLINE_EXCEEDED_MESSAGE"]

DEADLINE_EXCEEDED_MESSAGE = "Deadline Exceeded"  # TF Serving's and grpc-core's wording

_CURRENT = contextvars.ContextVar("serving_deadline", default=None)


class Deadline:
    """A point in time past which a request is dropped, and a switch to drop it sooner.

    Args:
        timeout_s: seconds from now; None = no time limit.
    """

    def __init__(self, timeout_s=None):
        self._expires = None if timeout_s is None else time.monotonic() + timeout_s
        self._cancelled = threading.Event()
        self._error = None
        self._lock = threading.Lock()
        self._waiting = set()  # events `wait` is blocked on: a cancellation sets them, so no waiter polls

    def cancel(self, code=Code.CANCELLED, message="The client cancelled the request"):
        """Marks the request abandoned; the first reason given is the one reported."""
        with self._lock:
            if self._cancelled.is_set():
                return
            self._error = ServingError(code, message)
            self._cancelled.set()
            waiting = list(self._waiting)
        for event in waiting:
            event.set()

    def remaining(self):
        """Seconds left (None without a time limit); <= 0 once past it."""
        return None if self._expires is None else self._expires - time.monotonic()

    @property
    def error(self):
        """The `ServingError` to answer with once the request is dropped, else None."""
        if self._cancelled.is_set():
            return self._error
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            return ServingError(Code.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE)
        return None

    def check(self):
        """Raises the request's `error`, if it has one."""
        error = self.error
        if error is not None:
            raise error

    def wait(self, event):
        """Waits for `event`; raises `error` as soon as the request is dropped first.

        One blocking wait, not a poll: `cancel` also sets `event` to wake the
        waiter, and the wait's timeout is the deadline itself. (A 20 ms poll
        by each of 64 waiting requests cost more server CPU than their JSON
        coding.) Whoever owns `event` must therefore read a set event as
        "done or dropped", and this method tells which by raising.
        """
        with self._lock:
            self._waiting.add(event)
        try:
            while True:
                if self._cancelled.is_set():
                    raise self._error
                if event.wait(self.remaining()):
                    if self._cancelled.is_set():
                        raise self._error
                    return
                self.check()  # past the deadline; a timed wait that woke early goes round again
        finally:
            with self._lock:
                self._waiting.discard(event)


def current():
    """The `Deadline` bound to this request's context, or None (no limit)."""
    return _CURRENT.get()


@contextlib.contextmanager
def bound(deadline):
    """Binds `deadline` to the calling context for the duration of the block."""
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)
