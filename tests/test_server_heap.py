"""`ModelServer(freeze_heap=True)`: the loaded models frozen out of the collector, unloaded ones still freed."""

import gc
import time
import weakref

import pytest

from serving.__main__ import build_parser
from serving.server import ModelServer
from tests.serving_models import add_version


def _wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_frozen_while_serving_and_an_unloaded_version_is_still_collected(make_base, tiny_versions):
    base = make_base(1)
    with ModelServer("model", str(base), rest_api_port=None, file_system_poll_wait_seconds=0.05,
                     freeze_heap=True) as server:
        assert gc.get_freeze_count() > 0
        # A function graph sits in reference cycles: only the collector frees it, so a version frozen for good
        # would keep its memory after it is unloaded.
        first = weakref.ref(server.repository.resolve("model")._functions["serving_default"].graph)
        add_version(base, tiny_versions, 2)  # the default policy serves the newest only: version 1 unloads
        _wait_for(lambda: server.repository.loaded() == {("model", 2)}, "version 2 alone")
        _wait_for(lambda: first() is None and gc.get_freeze_count() > 0, "version 1's graph collected, the rest frozen")
    assert gc.get_freeze_count() == 0  # the process gets its collector back


def test_off_by_default():
    assert ModelServer("model", "/nonexistent").freeze_heap is False
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("flags, frozen", [([], True), (["--freeze_heap"], True), (["--freeze_heap=false"], False),
                                           (["--freeze_heap", "no"], False)])
def test_python_m_serving_freezes_unless_told_not_to(flags, frozen):
    assert build_parser().parse_args(["--model_base_path=m", *flags]).freeze_heap is frozen
