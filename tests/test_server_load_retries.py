"""Load retries, as TF Serving's --max_num_load_retries and --load_retry_interval_micros.

A version caught half-copied (saved_model.pb truncated, variables missing)
stays LOADING and is loaded on a later attempt once its files are complete;
once the retries are spent it is END with its error, for good.
"""

import shutil
import time

import pytest

from serving.__main__ import DEFAULT_LOAD_RETRY_INTERVAL_MICROS as FLAG_INTERVAL
from serving.__main__ import DEFAULT_MAX_NUM_LOAD_RETRIES as FLAG_RETRIES
from serving.__main__ import build_parser
from serving.client import Client
from serving.errors import Code
from serving.repository import (
    DEFAULT_LOAD_RETRY_INTERVAL_MICROS,
    DEFAULT_MAX_NUM_LOAD_RETRIES,
    ModelConfig,
    ModelRepository,
)
from serving.servable import Servable
from serving.server import ModelServer

INTERVAL_MICROS = 10 * 1000 * 1000


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _half_copy(tiny_versions, base, version, as_version):
    """Version `as_version` as an interrupted copy leaves it: half of saved_model.pb, no variables."""
    target = base / str(as_version)
    target.mkdir()
    whole = (tiny_versions / str(version) / "saved_model.pb").read_bytes()
    (target / "saved_model.pb").write_bytes(whole[: len(whole) // 2])
    return target


def _finish_copy(tiny_versions, target, version):
    shutil.rmtree(target)
    shutil.copytree(tiny_versions / str(version), target)


def _states(repository):
    return [(s.version, s.state, s.error_code) for s in repository.status("m")]


def _counting_loader(calls):
    def load(name, version, path):
        calls.append(version)
        return Servable.load(name, version, path)

    return load


def test_a_half_copied_version_is_retried_and_loads_once_complete(make_base, tiny_versions):
    base = make_base(1)
    clock, calls = _Clock(), []
    repository = ModelRepository(
        [ModelConfig("m", str(base))], _counting_loader(calls), load_retry_interval_micros=INTERVAL_MICROS, clock=clock
    )
    repository.poll()
    target = _half_copy(tiny_versions, base, 2, 2)
    repository.poll()
    assert _states(repository) == [(2, "LOADING", Code.OK), (1, "AVAILABLE", Code.OK)]
    assert repository.resolve("m").version == 1  # the old version keeps serving meanwhile
    clock.now += 9.9
    repository.poll()  # not due yet: no attempt
    assert calls == [1, 2]
    _finish_copy(tiny_versions, target, 2)
    clock.now += 0.2
    repository.poll()
    assert calls == [1, 2, 2]
    assert _states(repository) == [(2, "AVAILABLE", Code.OK), (1, "END", Code.OK)]
    assert repository.resolve("m").version == 2


def test_after_the_last_retry_the_version_is_end_with_its_error_for_good(make_base, tiny_versions):
    base = make_base(1)
    clock, calls = _Clock(), []
    repository = ModelRepository(
        [ModelConfig("m", str(base))], _counting_loader(calls), max_num_load_retries=2,
        load_retry_interval_micros=INTERVAL_MICROS, clock=clock,
    )
    repository.poll()
    _half_copy(tiny_versions, base, 2, 2)
    for _ in range(3):  # the first attempt, then two retries
        repository.poll()
        assert repository.status("m", 2)[0].state == "LOADING" or calls.count(2) == 3
        clock.now += 10
    (newest,) = repository.status("m", 2)
    assert (newest.state, newest.error_code) == ("END", Code.DATA_LOSS)
    assert newest.error_message.startswith("Could not parse SavedModel at ")
    repository.poll()
    assert calls.count(2) == 3 and repository.resolve("m").version == 1


def test_zero_retries_fail_at_the_first_error(make_base):
    base = make_base(1)
    repository = ModelRepository([ModelConfig("m", str(base))], max_num_load_retries=0)
    repository.poll()
    (base / "2").mkdir()
    (base / "2" / "saved_model.pb").write_bytes(b"garbage")
    repository.poll()
    assert [(s.version, s.state) for s in repository.status("m")] == [(2, "END"), (1, "AVAILABLE")]


def test_a_version_removed_while_waiting_for_a_retry_ends_with_its_last_error(make_base, tiny_versions):
    base = make_base(1)
    clock = _Clock()
    repository = ModelRepository(
        [ModelConfig("m", str(base))], load_retry_interval_micros=INTERVAL_MICROS, clock=clock
    )
    repository.poll()
    target = _half_copy(tiny_versions, base, 2, 2)
    repository.poll()
    shutil.rmtree(target)
    repository.poll()
    assert _states(repository) == [(2, "END", Code.DATA_LOSS), (1, "AVAILABLE", Code.OK)]


@pytest.mark.slow
def test_the_server_poller_retries_and_the_version_becomes_available(make_base, tiny_versions):
    base = make_base(1)
    with ModelServer("m", str(base), file_system_poll_wait_seconds=0.1, load_retry_interval_micros=300_000) as server:
        client = Client(server.rest_target)
        target = _half_copy(tiny_versions, base, 2, 2)
        _wait_for(lambda: client.status("m")[0]["state"] == "LOADING")
        _finish_copy(tiny_versions, target, 2)
        _wait_for(lambda: client.status("m")[0]["state"] == "AVAILABLE")
        assert [(s["version"], s["state"]) for s in client.status("m")] == [(2, "AVAILABLE"), (1, "END")]


def _wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_flags_take_tf_servings_names_and_defaults():
    assert (FLAG_RETRIES, FLAG_INTERVAL) == (DEFAULT_MAX_NUM_LOAD_RETRIES, DEFAULT_LOAD_RETRY_INTERVAL_MICROS)
    assert (DEFAULT_MAX_NUM_LOAD_RETRIES, DEFAULT_LOAD_RETRY_INTERVAL_MICROS) == (5, 60_000_000)
    args = build_parser().parse_args([])
    assert (args.max_num_load_retries, args.load_retry_interval_micros) == (5, 60_000_000)
    args = build_parser().parse_args(["--max_num_load_retries=2", "--load_retry_interval_micros=1000"])
    assert (args.max_num_load_retries, args.load_retry_interval_micros) == (2, 1000)


@pytest.mark.parametrize("name", ["max_num_load_retries", "load_retry_interval_micros"])
def test_retry_arguments_must_be_non_negative(name):
    with pytest.raises(ValueError, match=rf"`{name}` must be a non-negative integer\. Received: {name}=-1"):
        ModelRepository([], **{name: -1})
