"""`serving.deadline.Deadline.wait`: one blocking wait that a cancellation or the deadline ends."""

import threading
import time

import pytest

from serving.deadline import Deadline
from serving.errors import Code, ServingError


def test_wait_returns_once_the_work_is_done():
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    Deadline(5.0).wait(done)  # no error: the work finished in time


def test_a_cancellation_from_another_thread_wakes_the_waiter_at_once():
    deadline, done = Deadline(), threading.Event()
    threading.Timer(0.05, deadline.cancel, kwargs={"message": "gone"}).start()
    start = time.monotonic()
    with pytest.raises(ServingError, match="gone") as caught:
        deadline.wait(done)
    assert caught.value.code == Code.CANCELLED
    assert time.monotonic() - start < 2.0
    assert done.is_set()  # the waited event is how the waiter was woken: its owner reads it as "done or dropped"


def test_the_deadline_ends_the_wait_with_deadline_exceeded():
    start = time.monotonic()
    with pytest.raises(ServingError, match="Deadline Exceeded") as caught:
        Deadline(0.1).wait(threading.Event())
    assert caught.value.code == Code.DEADLINE_EXCEEDED
    assert 0.1 <= time.monotonic() - start < 2.0


def test_a_request_cancelled_before_it_waits_raises_without_waiting():
    deadline = Deadline()
    deadline.cancel(Code.DEADLINE_EXCEEDED, "late")
    deadline.cancel(message="second reason")  # the first reason given is the one reported
    with pytest.raises(ServingError, match="late"):
        deadline.wait(threading.Event())
