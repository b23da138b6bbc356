"""TF Serving's request batching (`serving.batching`): options, merge and split, the shared scheduler."""

import pathlib
import threading
import time

import numpy as np
import pytest

from serving.batching import (
    QUEUE_FULL_MESSAGE,
    BatchingOptions,
    BatchScheduler,
    batch_size_of,
    merge_inputs,
    split_outputs,
)
from serving.deadline import Deadline
from serving.errors import Code, ServingError

DEPLOY = pathlib.Path(__file__).resolve().parents[1] / "serving" / "deploy"


class Recorder:
    """A signature `feeds -> {"y": 2x, "rows": row count}` that records every call; `hold` blocks calls."""

    def __init__(self):
        self.calls = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def __call__(self, feeds):
        self.entered.set()
        self.hold.wait(10)
        x = feeds["x"]
        self.calls.append(x.copy())
        return {"y": 2 * x, "rows": np.full(len(x), len(x))}


def _x(*values):
    return {"x": np.array(values, np.float32).reshape(-1, 1)}


def _in_threads(calls):
    """Runs each zero-argument callable in its own thread; returns their results or exceptions in order."""
    results = [None] * len(calls)

    def target(i):
        try:
            results[i] = calls[i]()
        except Exception as error:  # collected for the assertions
            results[i] = error

    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # in order
    return threads, results


# ------------------------------------------------------------------ options


def test_defaults_are_tf_servings():
    options = BatchingOptions()
    assert (options.max_batch_size, options.batch_timeout_micros, options.max_enqueued_batches) == (1000, 0, 10)
    assert options.num_batch_threads >= 1 and options.allowed_batch_sizes == ()
    assert options.pad_variable_length_inputs is False


def test_the_deploy_parameters_file_loads():
    options = BatchingOptions.from_file(DEPLOY / "batching_parameters.txt")
    assert options.max_batch_size == 32 and options.allowed_batch_sizes[-1] == 32
    assert options.padded_size(3) == 4 and options.padded_size(32) == 32


def test_unset_fields_keep_the_defaults():
    options = BatchingOptions.from_text("max_batch_size { value: 8 }")
    assert (options.max_batch_size, options.max_enqueued_batches, options.batch_timeout_micros) == (8, 10, 0)


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: 2 allowed_batch_sizes: 4",
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; expected 8",
        ),
        (
            "max_batch_size { value: 4 } allowed_batch_sizes: 4 allowed_batch_sizes: 2 allowed_batch_sizes: 4",
            r"monotonically increasing. Received: allowed_batch_sizes=\[4, 2, 4\]",
        ),
        ("max_batch_size { value: 0 }", "`max_batch_size` must be an integer >= 1. Received: max_batch_size=0"),
        ("num_batch_threads { value: 0 }", "`num_batch_threads` must be an integer >= 1"),
        ("batch_timeout_micros { value: -1 }", "`batch_timeout_micros` must be an integer >= 0"),
        ("max_batch_sizes { value: 8 }", "Invalid BatchingParameters: .*max_batch_sizes"),
    ],
)
def test_bad_parameters_are_refused(text, match):
    with pytest.raises(ValueError, match=match):
        BatchingOptions.from_text(text)


# ------------------------------------------------------------ merge, split


@pytest.mark.parametrize(
    "feeds, match",
    [
        ({}, "Batching Run\\(\\) must have at least one input tensor"),
        ({"x": np.float32(1)}, "Batching Run\\(\\) input tensors must have at least one dimension"),
        ({"a": np.zeros(2), "b": np.zeros(3)}, "Batching Run\\(\\) input tensors must have equal 0th-dimension size"),
    ],
)
def test_a_request_needs_one_batch_dimension(feeds, match):
    with pytest.raises(ServingError, match=match) as caught:
        batch_size_of(feeds)
    assert caught.value.code == Code.INVALID_ARGUMENT


def test_padding_up_to_an_allowed_size_repeats_the_last_requests_first_row():
    merged = merge_inputs([_x(1, 2), _x(3, 4)], padded_rows=6)
    np.testing.assert_array_equal(merged["x"][:, 0], [1, 2, 3, 4, 3, 3])
    parts = split_outputs({"y": 2 * merged["x"]}, [2, 2], padded_rows=6)
    np.testing.assert_array_equal(parts[1]["y"][:, 0], [6, 8])


def test_variable_length_inputs_are_padded_with_their_own_first_element():
    short, long = {"t": np.array([[5, 6]])}, {"t": np.array([[7, 8, 9]])}
    merged = merge_inputs([short, long], padded_rows=2, pad_variable_length_inputs=True)
    np.testing.assert_array_equal(merged["t"], [[5, 6, 5], [7, 8, 9]])
    with pytest.raises(ServingError, match="Got empty tensor in batch of non-empty tensors."):
        merge_inputs([{"t": np.zeros((1, 0))}, long], padded_rows=2, pad_variable_length_inputs=True)


def test_outputs_without_a_matching_batch_dimension_fail_as_in_tf_serving():
    with pytest.raises(ServingError, match="Batched output tensor has 0 dimensions") as caught:
        split_outputs({"total": np.float32(3)}, [1, 1])
    assert caught.value.code == Code.FAILED_PRECONDITION
    with pytest.raises(ServingError, match="0th dimension does not equal the sum of the 0th dimension sizes"):
        split_outputs({"first": np.zeros((1, 1))}, [1, 1])


# --------------------------------------------------------------- scheduler


@pytest.fixture
def scheduler_factory():
    made = []

    def make(**options):
        scheduler = BatchScheduler(BatchingOptions(**options))
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.stop()


def test_requests_arriving_while_the_thread_is_busy_are_merged_and_split_back(scheduler_factory):
    scheduler = scheduler_factory(num_batch_threads=1, max_batch_size=8)
    run = Recorder()
    run.hold.clear()
    threads, results = _in_threads([lambda v=v: scheduler.run("k", run, _x(v, v + 0.5)) for v in (1, 2, 3)])
    run.hold.set()
    for thread in threads:
        thread.join(10)
    assert [len(call) for call in run.calls] == [2, 4]  # the first ran alone, the other two together
    for v, result in zip((1, 2, 3), results, strict=True):
        np.testing.assert_array_equal(result["y"][:, 0], [2 * v, 2 * v + 1])
    assert results[2]["rows"].tolist() == [4, 4]


def test_allowed_batch_sizes_pad_the_merged_call(scheduler_factory):
    scheduler = scheduler_factory(num_batch_threads=1, max_batch_size=8, allowed_batch_sizes=(4, 8))
    run = Recorder()
    result = scheduler.run("k", run, _x(7))
    assert [len(call) for call in run.calls] == [4]
    np.testing.assert_array_equal(run.calls[0][:, 0], [7, 7, 7, 7])
    assert result["y"].shape == (1, 1) and result["rows"].tolist() == [4]


def test_a_request_larger_than_max_batch_size_is_refused(scheduler_factory):
    scheduler = scheduler_factory(max_batch_size=2)
    with pytest.raises(ServingError, match="Task size 3 is larger than maximum input batch size 2") as caught:
        scheduler.run("k", Recorder(), _x(1, 2, 3))
    assert caught.value.code == Code.INVALID_ARGUMENT


def test_a_full_queue_answers_unavailable(scheduler_factory):
    scheduler = scheduler_factory(num_batch_threads=1, max_batch_size=1, max_enqueued_batches=1)
    run = Recorder()
    run.hold.clear()
    threads, results = _in_threads([lambda: scheduler.run("k", run, _x(1)), lambda: scheduler.run("k", run, _x(2))])
    assert run.entered.wait(5)
    with pytest.raises(ServingError, match=f"{QUEUE_FULL_MESSAGE}$") as caught:
        scheduler.run("k", run, _x(3))
    assert (caught.value.code, caught.value.message) == (Code.UNAVAILABLE, QUEUE_FULL_MESSAGE)
    run.hold.set()
    for thread in threads:
        thread.join(10)
    assert [r["y"][0, 0] for r in results] == [2, 4]


def test_queues_are_per_key(scheduler_factory):
    scheduler = scheduler_factory(num_batch_threads=1, max_batch_size=1, max_enqueued_batches=1)
    run = Recorder()
    run.hold.clear()
    threads, _ = _in_threads([lambda: scheduler.run("a", run, _x(1)), lambda: scheduler.run("a", run, _x(2))])
    other = threading.Thread(target=lambda: scheduler.run("b", run, _x(3)))
    other.start()  # queue "b" has room though "a" is full
    run.hold.set()
    for thread in [*threads, other]:
        thread.join(10)
    assert sorted(call[0, 0] for call in run.calls) == [1, 2, 3]


def test_different_shapes_without_padding_run_as_separate_calls(scheduler_factory):
    scheduler = scheduler_factory(num_batch_threads=1, max_batch_size=8)
    seen = []
    gate = threading.Event()

    def run(feeds):
        gate.wait(10)
        seen.append(feeds["t"].shape)
        return {"t": feeds["t"] + 1}

    feeds = [{"t": np.zeros((1, 2))}, {"t": np.zeros((1, 2))}, {"t": np.zeros((2, 3))}, {"t": np.zeros((1, 2))}]
    threads, results = _in_threads([lambda f=f: scheduler.run("k", run, f) for f in feeds])
    gate.set()
    for thread in threads:
        thread.join(10)
    assert sorted(seen) == [(1, 2), (2, 2), (2, 3)]  # the first alone, then the two shapes of the merged batch
    assert [r["t"].shape for r in results] == [(1, 2), (1, 2), (2, 3), (1, 2)]


def test_batch_timeout_lets_a_batch_wait_for_more_requests(scheduler_factory):
    scheduler = scheduler_factory(num_batch_threads=2, max_batch_size=8, batch_timeout_micros=300_000)
    run = Recorder()
    start = time.perf_counter()
    threads, _ = _in_threads([lambda v=v: scheduler.run("k", run, _x(v)) for v in (1, 2)])
    for thread in threads:
        thread.join(10)
    assert [len(call) for call in run.calls] == [2]  # free threads, yet one call: the batch waited
    assert time.perf_counter() - start >= 0.25


def test_a_request_past_its_deadline_is_not_run(scheduler_factory):
    scheduler = scheduler_factory(num_batch_threads=1, max_batch_size=1)
    run = Recorder()
    run.hold.clear()
    blocker, _ = _in_threads([lambda: scheduler.run("k", run, _x(1))])
    assert run.entered.wait(5)
    with pytest.raises(ServingError, match="Deadline Exceeded") as caught:
        scheduler.run("k", run, _x(2), deadline=Deadline(0.1))
    assert caught.value.code == Code.DEADLINE_EXCEEDED
    run.hold.set()
    blocker[0].join(10)
    time.sleep(0.1)
    assert [call[0, 0] for call in run.calls] == [1]


def test_stop_fails_queued_requests_and_ends_the_threads():
    scheduler = BatchScheduler(BatchingOptions(num_batch_threads=1, max_batch_size=1))
    run = Recorder()
    run.hold.clear()
    threads, results = _in_threads([lambda: scheduler.run("k", run, _x(1)), lambda: scheduler.run("k", run, _x(2))])
    assert run.entered.wait(5)
    stopper = threading.Thread(target=scheduler.stop)
    stopper.start()
    time.sleep(0.1)
    run.hold.set()
    stopper.join(10)
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in scheduler.threads)
    assert results[0]["y"][0, 0] == 2  # the batch already running finishes
    assert isinstance(results[1], ServingError) and results[1].code == Code.UNAVAILABLE
    with pytest.raises(ServingError, match="The server is shutting down"):
        scheduler.run("k", run, _x(3))


def test_a_failing_request_fails_alone(scheduler_factory):
    scheduler = scheduler_factory(num_batch_threads=1, max_batch_size=8)
    gate = threading.Event()

    def run(feeds):
        gate.wait(10)
        if (feeds["x"] < 0).any():
            raise ServingError(Code.INVALID_ARGUMENT, "x must be >= 0")
        return {"y": 2 * feeds["x"]}

    threads, results = _in_threads([lambda v=v: scheduler.run("k", run, _x(v)) for v in (1, 2, -3, 4)])
    gate.set()
    for thread in threads:
        thread.join(10)
    assert [r["y"][0, 0] for r in (results[0], results[1], results[3])] == [2, 4, 8]
    assert isinstance(results[2], ServingError) and results[2].message == "x must be >= 0"
